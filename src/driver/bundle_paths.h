// Paths and small files every flavor's bundle is made of: lexical path
// cleaning and containment (Go's filepath.Clean and "is inside"), the
// task's generated files (resolv.conf, hosts, machine-id) written
// atomically, host files read for copying, and OCI bind mounts, with the
// Nomad task directories (alloc, local, secrets) every flavor binds.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "driver/task_spec.h"
#include "oci/spec.h"

namespace husk::driver {

// Lexical clean of an absolute path: "//a/./b/../c" -> "/a/c".
std::string clean_path(std::string_view p);
// `path` is `parent` or below it (both clean).
bool is_within(const std::string& parent, const std::string& path);
// Writes `content` to `path` through a temporary file and a rename.
Result<> write_task_file(const std::string& path, const std::string& content);
// A host file's content, "" when unreadable (at most 1 MiB).
std::string read_host_file(const std::string& path);
oci::Mount bind_mount(std::string src, std::string dst, std::vector<std::string> opts);
// The task's env value for `key`, or `fallback` when unset or empty.
std::string task_env_or(const TaskSpec& task, const char* key, const char* fallback);
// Binds of the allocation's shared directory and the task's local/ and
// secrets/ at the paths the Nomad env names (NOMAD_ALLOC_DIR, ...).
void add_task_dir_mounts(oci::Spec& spec, const TaskSpec& task);

}  // namespace husk::driver
