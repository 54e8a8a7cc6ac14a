// husk's default seccomp profile, for callers that must not run a container
// unfiltered (the Nomad driver's tasks). Like docker's default profile it is
// an allow list: every call the kernel has that a container may make whatever
// its capabilities is allowed (default_seccomp.cc lists them, written from
// the kernel's syscall tables and docker's documented semantics); anything
// else, calls newer than the list included, fails with EPERM. Calls that
// docker's profile ties to a capability are allowed only when the bounding
// set holds it:
//   never         userfaultfd, keyrings, nfsservctl, uselib, ustat, sysfs,
//                 _sysctl, vm86, the old module calls, io_uring
//   CAP_SYS_ADMIN mount, umount, the new mount API, pivot_root, setns, unshare,
//                 clone with namespace flags, swapon/off, bpf, perf_event_open,
//                 fanotify_init, name_to_handle_at, quotactl, sethostname, ...
//   CAP_SYS_MODULE modules; CAP_SYS_BOOT reboot, kexec; CAP_DAC_READ_SEARCH
//                 open_by_handle_at (the "shocker" escape)
//   CAP_SYS_PTRACE  ptrace, process_vm_readv/writev, kcmp, pidfd_getfd
//   CAP_SYS_TIME settimeofday, clock_settime, adjtimex;
//   CAP_SYS_NICE mbind, set_mempolicy, move_pages; CAP_SYS_PACCT acct;
//   CAP_SYS_RAWIO iopl, ioperm
// clone3 returns ENOSYS without CAP_SYS_ADMIN, as in docker's profile, so
// that libc falls back to clone, whose flags a filter can read.
#pragma once

#include <vector>

#include "oci/spec.h"

namespace husk::oci {

Seccomp default_seccomp(const std::vector<int>& bounding_capabilities);

}  // namespace husk::oci
