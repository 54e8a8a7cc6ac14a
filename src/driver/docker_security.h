// The docker flavor's security translation: capabilities as the docker
// driver bounds them by allow_caps, and security_opt (no-new-privileges,
// seccomp=unconfined|PATH with docker's profile format, apparmor, label,
// systempaths). Used by docker_bundle.cc; errors name the task config field.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "oci/spec.h"

namespace husk::driver::docker {

// The task's capability set: docker's default set, less what allow_caps
// does not hold, plus cap_add (each within allow_caps), less cap_drop.
Result<std::vector<int>> task_capabilities(const std::vector<int>& allow_caps, const std::vector<std::string>& add,
                                           const std::vector<std::string>& drop);

struct SecurityOpts {
  bool no_new_privileges = false;
  bool seccomp_unconfined = false;
  std::optional<oci::Seccomp> seccomp;  // a profile file's filter
  std::optional<std::string> apparmor;
  bool unmask_all = false;              // systempaths=unconfined
};
// `caps` is the task's capability set: a profile's rules with
// includes/excludes.caps apply as docker applies them.
Result<SecurityOpts> parse_security_opts(const std::vector<std::string>& opts, const std::vector<int>& caps);

// A docker seccomp profile (JSON: defaultAction, architectures or archMap,
// syscalls with names/action/args/includes/excludes) as an OCI filter.
// Errors name `field` and the JSON path.
Result<oci::Seccomp> load_seccomp_profile(const std::string& path, const std::vector<int>& caps,
                                          const std::string& field);

}  // namespace husk::driver::docker
