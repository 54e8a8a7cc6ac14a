// A container's network, as the runtime drives it (create.cc, ops.cc):
//   plan()    before the init is cloned: the spec's network namespace for
//             the mode (host: none of its own, ns:/container: a path, the
//             others: a new one) and bind mounts of the generated
//             /etc/hosts, /etc/resolv.conf, /etc/hostname;
//   attach()  once the init's netns exists, before any hook: bridge or
//             helper, then the files' contents;
//   detach()  on delete and on a failed create: everything attach made,
//             from the record it keeps in the state directory ("network").
// Nothing happens for a bundle without run.husk.* network annotations.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include "common/error.h"
#include "net/config.h"
#include "net/ipam.h"
#include "oci/spec.h"

namespace husk::net {

inline constexpr const char* kRecordFile = "network";

struct Context {
  std::string id;
  std::string state_dir;  // the container's directory
  std::string ipam_root;  // <state root>/.networks
  bool rootless = false;
  AliveFn alive;  // pid + start time still running
  std::function<uint64_t(pid_t)> start_time;
};

// join_path: the netns file for Mode::Path, /proc/<pid>/ns/net of the
// other container for Mode::Container.
Result<> plan(const Config& cfg, oci::Spec& spec, const std::string& state_dir, const std::string& join_path);

// netns_fd: the init's network namespace (sent by the init itself).
Result<> attach(const Config& cfg, const Context& ctx, const oci::Spec& spec, pid_t pid, uint64_t pid_start,
                int netns_fd);

// Idempotent; no record = nothing to do.
Result<> detach(const std::string& state_dir, const std::string& id, const AliveFn& alive);

}  // namespace husk::net
