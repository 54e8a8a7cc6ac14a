// The container process's last steps, shared by the container init and by
// `husk exec`: rlimits, oom_score_adj, personality, I/O priority, scheduler,
// umask, user and groups, capabilities, no_new_privileges, seccomp, cwd, and
// the exec itself, which goes through the sealed-memfd trampoline so no
// process in the container can reach the host's husk binary.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "oci/spec.h"

namespace husk::runtime {

// The trampoline program in a sealed memfd, ready for execveat. Made before
// seccomp is loaded (a profile may forbid memfd_create).
Result<UniqueFd> make_trampoline();

// Close every fd >= 3 except those in keep (sorted or not).
void close_fds_except(std::vector<int> keep);

// Look args[0] up in the PATH of env (inside the current root): what execvp
// would run, but from the container's environment, checked now so a missing
// binary is an error of `create`, not a silent failure at `start`.
Result<std::string> find_executable(const oci::Process& process);

// Settings that need privilege: rlimits, oom_score_adj, personality, I/O
// priority, scheduler, CPU affinity, umask.
// `outside_done`: rlimits and oom_score_adj were set from outside the
// process's user namespace (apply_outside_limits), where they may be.
Result<> apply_process_limits(const oci::Process& process, bool outside_done = false);
// process.rlimits alone (apply_process_limits sets them too): raising a hard
// limit takes CAP_SYS_RESOURCE in the initial user namespace, so an init
// that enters another one sets them first.
Result<> apply_rlimits(const oci::Process& process);
// rlimits and oom_score_adj of process `pid` (0: this one), from outside
// its user namespace: in a new user namespace a process may not raise its
// hard limits, nor open its own /proc/self/oom_score_adj (owned by a root it
// does not map) -- runc sets both from outside too.
Result<> apply_outside_limits(pid_t pid, const oci::Process& process);

// seccomp, user, capabilities, no_new_privileges and cwd, in the order that
// works (runc's): without no_new_privileges the filter is loaded while
// CAP_SYS_ADMIN is still held. Returns the seccomp notify fd, if any.
Result<UniqueFd> apply_process_identity(const oci::Process& process, const oci::Seccomp* seccomp);

// execveat the trampoline with [path, args...]. Returns only on failure.
Error exec_process(int trampoline_fd, const std::string& path, const oci::Process& process, int preserve_fds);

}  // namespace husk::runtime
