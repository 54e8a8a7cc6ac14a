// Inside the podman flavor: its plugin options as a struct, the two schemas
// (podman_schema.cc) and the task -> OCI bundle translation
// (podman_bundle.cc, with podman_security.h for capabilities, devices,
// rlimits, sysctls and security_opt). flavor.h has the public face
// (make_podman_flavor).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "driver/apparmor_default.h"
#include "driver/flavor.h"
#include "driver/userns_auto.h"

namespace husk::driver::podman {

// nomad-driver-podman's task config and plugin option schemas, field for
// field (reference: driver-fields.md §1.1, §1.2).
Spec task_schema();
Spec plugin_schema();

struct Socket {
  std::string name;
  std::string socket_path;
};

// The decoded plugin options. husk runs containers itself, so the options
// about a podman daemon (socket_path, socket, auth, client_http_timeout)
// are accepted and validated but only name things: a task's `socket` must
// name a configured socket, nothing connects to it.
struct Options {
  std::vector<Socket> sockets;  // never empty: socket_path alone is "default"
  std::string auth_config, auth_helper;
  bool volumes_enabled = true;
  std::string volumes_selinuxlabel;
  bool gc_container = true;
  bool recover_stopped = false;
  std::vector<std::string> extra_labels;
  std::string logging_driver = "nomad";
  std::map<std::string, std::string> logging_options;
  std::string default_rootless_mode;
  bool disable_log_collection = false;
  int64_t client_http_timeout_ns = 0;
  std::vector<std::string> dns_servers;
  // husk's additions: cap_add within allow_caps (the default set is cut to
  // it too); privileged only with allow_privileged.
  std::optional<std::vector<int>> allow_caps;
  bool allow_privileged = true;

  // Facts about the host, not options; tests set them.
  bool rootless = false;
  bool can_raise_rlimits = true;  // CAP_SYS_RESOURCE: podman's rlimit defaults need it
  bool selinux_enabled = false;
  int online_cpus = 1;
  std::string host_dev = "/dev";                    // enumerated for privileged tasks
  std::string host_resolv_conf = "/etc/resolv.conf";
  std::string host_resolved_upstream = "/run/systemd/resolve/resolv.conf";
  std::string host_hosts = "/etc/hosts";
  std::string default_init_path = "/usr/libexec/podman/catatonit";
  std::string image_store_root;  // image::Store::default_root()
  AutoUsernsHost userns_auto;     // userns = "auto": the subuid files, the ids in use
  apparmor::HostPolicy apparmor;  // husk-default for tasks that name no profile
};

Options host_defaults();
// The support table (podman_support.cc): every task field and plugin option.
std::vector<FieldSupport> support_rows();
// SetConfig: errors name the option ("volumes.enabled: ...").
Result<Options> parse_options(const Value& plugin_config);

Result<BundlePlan> plan(const Options& opts, const TaskSpec& task, const Value& config,
                        const std::string& container_id, const std::string& task_dir);

// Helpers shared with tests.
// podman's size strings: an integer and one unit of b, k, m, g (1024-based).
Result<int64_t> parse_size(std::string_view s);
// podman's default capability set (containers.conf default_capabilities).
std::vector<int> default_capabilities();

}  // namespace husk::driver::podman
