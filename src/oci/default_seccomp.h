// husk's default seccomp profile, for callers that must not run a container
// unfiltered (the Nomad driver's tasks). It follows what docker's default
// profile keeps from a container without the matching capability, written
// as a deny list: every syscall is allowed except the ones below, which fail
// with EPERM unless the container's bounding set holds the capability that
// docker's profile asks for them.
//   always        userfaultfd, keyrings, nfsservctl, uselib, ustat, sysfs,
//                 _sysctl, vm86 and the old module calls
//   CAP_SYS_ADMIN mount, umount, the new mount API, pivot_root, setns, unshare,
//                 clone with namespace flags, swapon/off, bpf, perf_event_open,
//                 fanotify_init, name_to_handle_at, quotactl, sethostname, ...
//   CAP_SYS_MODULE modules; CAP_SYS_BOOT reboot, kexec; CAP_DAC_READ_SEARCH
//                 open_by_handle_at (the "shocker" escape)
//   CAP_SYS_PTRACE  ptrace, process_vm_readv/writev, kcmp
//   CAP_SYS_TIME settimeofday, clock_settime, adjtimex;
//   CAP_SYS_NICE mbind, set_mempolicy, move_pages; CAP_SYS_PACCT acct;
//   CAP_SYS_RAWIO iopl, ioperm
// clone3 returns ENOSYS, as in docker's profile, so that libc falls back to
// clone, whose flags a filter can read.
#pragma once

#include <vector>

#include "oci/spec.h"

namespace husk::oci {

Seccomp default_seccomp(const std::vector<int>& bounding_capabilities);

}  // namespace husk::oci
