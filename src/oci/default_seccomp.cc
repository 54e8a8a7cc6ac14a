#include "oci/default_seccomp.h"

#include <linux/capability.h>
#include <sched.h>

#include <algorithm>
#include <cerrno>

namespace husk::oci {
namespace {

struct Group {
  int capability;  // -1: denied whatever the capabilities
  std::vector<std::string> names;
};

const std::vector<Group>& groups() {
  static const std::vector<Group> g = {
      {-1,
       {"userfaultfd", "add_key", "request_key", "keyctl", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl",
        "vm86", "vm86old", "create_module", "get_kernel_syms", "query_module"}},
      {CAP_SYS_MODULE, {"init_module", "finit_module", "delete_module"}},
      {CAP_SYS_BOOT, {"kexec_load", "kexec_file_load"}},
      {CAP_DAC_READ_SEARCH, {"open_by_handle_at"}},
      {CAP_SYS_ADMIN,
       {"mount", "umount", "umount2", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
        "mount_setattr", "pivot_root", "setns", "unshare", "swapon", "swapoff", "syslog", "setdomainname",
        "sethostname", "bpf", "perf_event_open", "fanotify_init", "lookup_dcookie", "name_to_handle_at",
        "quotactl", "quotactl_fd"}},
      {CAP_SYS_PTRACE, {"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"}},
      {CAP_SYS_BOOT, {"reboot"}},
      {CAP_SYS_TIME, {"settimeofday", "stime", "clock_settime", "clock_settime64", "adjtimex", "clock_adjtime",
                      "clock_adjtime64"}},
      {CAP_SYS_NICE, {"mbind", "set_mempolicy", "move_pages"}},
      {CAP_SYS_PACCT, {"acct"}},
      {CAP_SYS_RAWIO, {"iopl", "ioperm"}},
  };
  return g;
}


// Every system call the kernel has (x86_64, aarch64 and i386 names; a name
// the target architecture lacks is skipped when the filter is built) that
// a container may make whatever its capabilities, following docker's
// documented default profile. The groups above are not here: they are
// added when the capability is held, or never. Not here either, so they
// fail with EPERM: calls newer than this list, io_uring (docker dropped it
// from its default), the obsolete and unimplemented ones (afs_syscall,
// tuxcall, security, vserver, getpmsg, putpmsg), and clone/clone3, which
// default_seccomp() handles by their flags.
const std::vector<std::string>& base_allowed() {
  static const std::vector<std::string> names = {
      // files and descriptors
      "read", "write", "open", "openat", "openat2", "close", "close_range", "creat", "stat", "fstat", "lstat",
      "newfstatat", "fstatat64", "stat64", "fstat64", "lstat64", "statx", "lseek", "_llseek", "pread64", "pwrite64",
      "readv", "writev", "preadv", "pwritev", "preadv2", "pwritev2", "access", "faccessat", "faccessat2", "dup",
      "dup2", "dup3", "fcntl", "fcntl64", "flock", "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
      "sync_file_range2", "arm_sync_file_range", "truncate", "truncate64", "ftruncate", "ftruncate64", "fallocate",
      "fadvise64", "fadvise64_64", "arm_fadvise64_64", "readahead", "getdents", "getdents64", "getcwd", "chdir",
      "fchdir", "chroot", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "link", "linkat",
      "unlink", "unlinkat", "symlink", "symlinkat", "readlink", "readlinkat", "chmod", "fchmod", "fchmodat",
      "fchmodat2", "chown", "fchown", "lchown", "fchownat", "chown32", "fchown32", "lchown32", "umask", "mknod",
      "mknodat", "utime", "utimes", "futimesat", "utimensat", "utimensat_time64", "statfs", "fstatfs", "statfs64",
      "fstatfs64", "setxattr", "lsetxattr", "fsetxattr", "getxattr", "lgetxattr", "fgetxattr", "listxattr",
      "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr", "setxattrat", "getxattrat",
      "listxattrat", "removexattrat", "sendfile", "sendfile64", "splice", "tee", "vmsplice", "copy_file_range",
      "pipe", "pipe2", "ioctl", "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
      "fanotify_mark", "memfd_create", "getrandom",
      // memory
      "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "msync", "mincore", "madvise", "process_madvise",
      "mlock", "mlock2", "munlock", "mlockall", "munlockall", "remap_file_pages", "get_mempolicy",
      "set_mempolicy_home_node", "pkey_mprotect", "pkey_alloc", "pkey_free", "membarrier", "mseal",
      "map_shadow_stack", "cachestat", "memfd_secret",
      // processes, threads, signals
      "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid", "kill", "tkill",
      "tgkill", "getpid", "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "prctl",
      "arch_prctl", "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "restart_syscall",
      "futex", "futex_time64", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue", "set_thread_area",
      "get_thread_area", "modify_ldt", "capget", "capset", "personality", "seccomp", "pidfd_open",
      "pidfd_send_signal", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
      "rt_sigtimedwait_time64", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack",
      "sigaction", "sigprocmask", "sigreturn", "sigpending", "sigsuspend", "signal", "signalfd", "signalfd4",
      "pause", "alarm", "getitimer", "setitimer", "sched_yield", "sched_setparam", "sched_getparam",
      "sched_setscheduler", "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min",
      "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_getaffinity",
      "sched_setattr", "sched_getattr", "getpriority", "setpriority", "nice", "ioprio_get", "ioprio_set", "getcpu",
      "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "lsm_get_self_attr",
      "lsm_set_self_attr", "lsm_list_modules", "process_mrelease",
      // credentials and limits
      "getuid", "geteuid", "getgid", "getegid", "getuid32", "geteuid32", "getgid32", "getegid32", "setuid",
      "setgid", "setuid32", "setgid32", "setreuid", "setregid", "setreuid32", "setregid32", "setresuid",
      "setresgid", "setresuid32", "setresgid32", "getresuid", "getresgid", "getresuid32", "getresgid32",
      "setfsuid", "setfsgid", "setfsuid32", "setfsgid32", "getgroups", "setgroups", "getgroups32", "setgroups32",
      "getrlimit", "ugetrlimit", "setrlimit", "prlimit64", "getrusage", "times", "sysinfo", "uname", "olduname",
      "oldolduname",
      // time
      "time", "gettimeofday", "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64",
      "clock_nanosleep", "clock_nanosleep_time64", "nanosleep", "timer_create", "timer_settime",
      "timer_settime64", "timer_gettime", "timer_gettime64", "timer_getoverrun", "timer_delete", "timerfd_create",
      "timerfd_settime", "timerfd_settime64", "timerfd_gettime", "timerfd_gettime64",
      // waiting on descriptors
      "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64", "epoll_create",
      "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2",
      // sockets
      "socket", "socketpair", "bind", "connect", "listen", "accept", "accept4", "getsockname", "getpeername",
      "sendto", "recvfrom", "send", "recv", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "recvmmsg_time64",
      "shutdown", "setsockopt", "getsockopt", "socketcall",
      // System V and POSIX IPC (namespaced)
      "shmget", "shmat", "shmctl", "shmdt", "semget", "semop", "semctl", "semtimedop", "semtimedop_time64",
      "msgget", "msgsnd", "msgrcv", "msgctl", "ipc", "mq_open", "mq_unlink", "mq_timedsend",
      "mq_timedsend_time64", "mq_timedreceive", "mq_timedreceive_time64", "mq_notify", "mq_getsetattr",
      // asynchronous I/O
      "io_setup", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_submit", "io_cancel",
      // arm
      "breakpoint", "cacheflush", "set_tls", "riscv_flush_icache",
  };
  return names;
}

}  // namespace

Seccomp default_seccomp(const std::vector<int>& bounding) {
  auto has = [&](int cap) { return std::find(bounding.begin(), bounding.end(), cap) != bounding.end(); };
  Seccomp s;
  // An allow list: what is not named fails with EPERM, as in docker's.
  s.default_action = SeccompAction::Errno;
  s.default_errno_ret = EPERM;
  SeccompSyscall allow;
  allow.action = SeccompAction::Allow;
  allow.names = base_allowed();
  for (const auto& g : groups())
    if (g.capability >= 0 && has(g.capability)) allow.names.insert(allow.names.end(), g.names.begin(), g.names.end());
  const bool admin = has(CAP_SYS_ADMIN);
  if (admin) allow.names.insert(allow.names.end(), {"clone", "clone3"});
  s.syscalls.push_back(std::move(allow));
  if (!admin) {
    // clone without any namespace flag (x86_64 and aarch64 pass the flags
    // first): one masked compare.
    uint64_t ns_flags = static_cast<uint64_t>(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                                              CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME);
    SeccompSyscall clone;
    clone.names = {"clone"};
    clone.action = SeccompAction::Allow;
    clone.args.push_back(SeccompArg{0, ns_flags, 0, SeccompOp::MaskedEqual});
    s.syscalls.push_back(std::move(clone));
    // clone3 passes its flags in memory a filter cannot read: ENOSYS makes
    // libc fall back to clone.
    SeccompSyscall clone3;
    clone3.names = {"clone3"};
    clone3.action = SeccompAction::Errno;
    clone3.errno_ret = ENOSYS;
    s.syscalls.push_back(std::move(clone3));
  }
  return s;
}

}  // namespace husk::oci
