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

}  // namespace

Seccomp default_seccomp(const std::vector<int>& bounding) {
  auto has = [&](int cap) { return std::find(bounding.begin(), bounding.end(), cap) != bounding.end(); };
  Seccomp s;
  s.default_action = SeccompAction::Allow;
  for (const auto& g : groups()) {
    if (g.capability >= 0 && has(g.capability)) continue;
    SeccompSyscall sc;
    sc.names = g.names;
    sc.action = SeccompAction::Errno;
    sc.errno_ret = EPERM;
    s.syscalls.push_back(std::move(sc));
  }
  if (!has(CAP_SYS_ADMIN)) {
    // clone with a namespace flag: one rule per flag (a filter compares one
    // masked value per rule). x86_64 and aarch64 pass the flags first.
    for (uint64_t flag : {static_cast<uint64_t>(CLONE_NEWNS), static_cast<uint64_t>(CLONE_NEWCGROUP),
                          static_cast<uint64_t>(CLONE_NEWUTS), static_cast<uint64_t>(CLONE_NEWIPC),
                          static_cast<uint64_t>(CLONE_NEWUSER), static_cast<uint64_t>(CLONE_NEWPID),
                          static_cast<uint64_t>(CLONE_NEWNET), static_cast<uint64_t>(CLONE_NEWTIME)}) {
      SeccompSyscall sc;
      sc.names = {"clone"};
      sc.action = SeccompAction::Errno;
      sc.errno_ret = EPERM;
      sc.args.push_back(SeccompArg{0, flag, flag, SeccompOp::MaskedEqual});
      s.syscalls.push_back(std::move(sc));
    }
    SeccompSyscall clone3;
    clone3.names = {"clone3"};
    clone3.action = SeccompAction::Errno;
    clone3.errno_ret = ENOSYS;
    s.syscalls.push_back(std::move(clone3));
  }
  return s;
}

}  // namespace husk::oci
