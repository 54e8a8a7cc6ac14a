// The podman flavor's security and device translation: capability sets as
// podman merges them, device strings, rlimits, namespaced sysctls and
// security_opt. Used by podman_bundle.cc; errors name the task config field.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "oci/spec.h"

namespace husk::driver::podman {

// Capability names as podman takes them ("NET_ADMIN", "cap_net_admin",
// "ALL" sets `all`); unknown names are errors naming field[i].
Result<std::vector<int>> cap_list(const std::vector<std::string>& names, const std::string& field, bool& all);
std::vector<int> all_capabilities();
// containers/common MergeCapabilities on podman's default set.
Result<std::vector<int>> merge_capabilities(const std::vector<std::string>& add_names,
                                            const std::vector<std::string>& drop_names);

// linux.devices entry at `dst` for a host node whose stat is `st`: its type,
// numbers, mode and owner.
oci::Device device_node(const std::string& dst, const struct stat& st);
// A host device node into linux.devices plus its allow rule.
Result<> add_device(oci::Spec& spec, const std::string& host, const std::string& dst, std::string perms,
                    const std::string& field);
// podman's device string: host[:container][:permissions].
Result<> add_device_string(oci::Spec& spec, const std::string& s, const std::string& field);
// Device nodes under `dir` (the host's /dev) as (host path, /dev/... path).
void host_devices(const std::string& dir, const std::string& rel, std::vector<std::pair<std::string, std::string>>& out,
                  int depth);

// What `privileged` means to docker and podman alike: /sys and its cgroup
// mount writable, every device allowed, and every node of the host's /dev
// (`host_dev`) created in the container.
void make_privileged(oci::Spec& spec, const std::string& host_dev);

Result<oci::Rlimit> parse_ulimit(const std::string& name, const std::string& value);
Result<> check_sysctl(const std::string& key, bool own_netns, bool own_ipc, bool own_uts);

struct SecurityOpts {
  bool no_new_privileges = false;
  std::optional<std::string> apparmor;
  bool seccomp_unconfined = false;
  std::vector<std::string> proc_opts;
  std::vector<std::string> mask, unmask;
  bool unmask_all = false;
};
Result<SecurityOpts> parse_security_opts(const std::vector<std::string>& opts);

}  // namespace husk::driver::podman
