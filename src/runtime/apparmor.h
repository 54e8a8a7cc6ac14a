// AppArmor for process.apparmorProfile: the profile is checked at create
// (AppArmor enabled, the profile loaded) and put on the process for its
// exec (/proc/self/attr/apparmor/exec, "exec PROFILE"), before
// no_new_privileges and the seccomp filter, as runc orders it. The
// transition happens at the execve of the container's process.
// "unconfined" on a host without AppArmor asks for nothing and is fine.
#pragma once

#include <string>

#include "common/error.h"

namespace husk::runtime {

// Whether the kernel runs AppArmor (/sys/module/apparmor/parameters/enabled).
bool apparmor_enabled();

// Errors name `field` (process.apparmorProfile, exec --apparmor).
Result<> check_apparmor_profile(const std::string& profile, const std::string& field);

// Ask for `profile` at this process's next execve.
Result<> apparmor_exec_profile(const std::string& profile, const std::string& field);

}  // namespace husk::runtime
