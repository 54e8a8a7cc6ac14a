#include "oci/tables.h"

#include <sched.h>
#include <sys/resource.h>

#include <iterator>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

namespace husk::oci {
namespace {

// Kernel capability numbers 0..40, in order.
constexpr std::string_view kCaps[] = {
    "CAP_CHOWN",           "CAP_DAC_OVERRIDE",  "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
    "CAP_FSETID",          "CAP_KILL",          "CAP_SETGID",          "CAP_SETUID",
    "CAP_SETPCAP",         "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",       "CAP_NET_RAW",       "CAP_IPC_LOCK",        "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",      "CAP_SYS_RAWIO",     "CAP_SYS_CHROOT",      "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",       "CAP_SYS_ADMIN",     "CAP_SYS_BOOT",        "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",    "CAP_SYS_TIME",      "CAP_SYS_TTY_CONFIG",  "CAP_MKNOD",
    "CAP_LEASE",           "CAP_AUDIT_WRITE",   "CAP_AUDIT_CONTROL",   "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",    "CAP_MAC_ADMIN",     "CAP_SYSLOG",          "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",   "CAP_AUDIT_READ",    "CAP_PERFMON",         "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
};

struct NsEntry {
  NamespaceType type;
  std::string_view name;
  std::string_view proc;
  int flag;
};
constexpr NsEntry kNamespaces[] = {
    {NamespaceType::Pid, "pid", "pid", CLONE_NEWPID},
    {NamespaceType::Network, "network", "net", CLONE_NEWNET},
    {NamespaceType::Mount, "mount", "mnt", CLONE_NEWNS},
    {NamespaceType::Ipc, "ipc", "ipc", CLONE_NEWIPC},
    {NamespaceType::Uts, "uts", "uts", CLONE_NEWUTS},
    {NamespaceType::User, "user", "user", CLONE_NEWUSER},
    {NamespaceType::Cgroup, "cgroup", "cgroup", CLONE_NEWCGROUP},
    {NamespaceType::Time, "time", "time", CLONE_NEWTIME},
};

struct RlimitEntry {
  std::string_view name;
  int resource;
};
constexpr RlimitEntry kRlimits[] = {
    {"RLIMIT_CPU", RLIMIT_CPU},         {"RLIMIT_FSIZE", RLIMIT_FSIZE},     {"RLIMIT_DATA", RLIMIT_DATA},
    {"RLIMIT_STACK", RLIMIT_STACK},     {"RLIMIT_CORE", RLIMIT_CORE},       {"RLIMIT_RSS", RLIMIT_RSS},
    {"RLIMIT_NPROC", RLIMIT_NPROC},     {"RLIMIT_NOFILE", RLIMIT_NOFILE},   {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
    {"RLIMIT_AS", RLIMIT_AS},           {"RLIMIT_LOCKS", RLIMIT_LOCKS},     {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
    {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},     {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
    {"RLIMIT_RTTIME", RLIMIT_RTTIME},
};

struct ActionEntry {
  std::string_view name;
  SeccompAction action;
};
constexpr ActionEntry kActions[] = {
    {"SCMP_ACT_KILL", SeccompAction::Kill},   {"SCMP_ACT_KILL_PROCESS", SeccompAction::KillProcess},
    {"SCMP_ACT_KILL_THREAD", SeccompAction::KillThread}, {"SCMP_ACT_TRAP", SeccompAction::Trap},
    {"SCMP_ACT_ERRNO", SeccompAction::Errno}, {"SCMP_ACT_TRACE", SeccompAction::Trace},
    {"SCMP_ACT_ALLOW", SeccompAction::Allow}, {"SCMP_ACT_LOG", SeccompAction::Log},
    {"SCMP_ACT_NOTIFY", SeccompAction::Notify},
};

struct OpEntry {
  std::string_view name;
  SeccompOp op;
};
constexpr OpEntry kOps[] = {
    {"SCMP_CMP_NE", SeccompOp::NotEqual},     {"SCMP_CMP_LT", SeccompOp::LessThan},
    {"SCMP_CMP_LE", SeccompOp::LessEqual},    {"SCMP_CMP_EQ", SeccompOp::EqualTo},
    {"SCMP_CMP_GE", SeccompOp::GreaterEqual}, {"SCMP_CMP_GT", SeccompOp::GreaterThan},
    {"SCMP_CMP_MASKED_EQ", SeccompOp::MaskedEqual},
};

constexpr std::string_view kArches[] = {
    "SCMP_ARCH_X86",     "SCMP_ARCH_X86_64",  "SCMP_ARCH_X32",     "SCMP_ARCH_ARM",     "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",    "SCMP_ARCH_MIPS64",  "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",   "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",   "SCMP_ARCH_PARISC",  "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
};

constexpr std::string_view kSeccompFlags[] = {
    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
};

struct PropEntry {
  std::string_view name;
  Propagation p;
};
constexpr PropEntry kProps[] = {
    {"shared", Propagation::Shared},   {"slave", Propagation::Slave},     {"private", Propagation::Private},
    {"unbindable", Propagation::Unbindable}, {"rshared", Propagation::RShared}, {"rslave", Propagation::RSlave},
    {"rprivate", Propagation::RPrivate}, {"runbindable", Propagation::RUnbindable},
};

constexpr std::string_view kMountOptions[] = {
    "async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "idmap", "iversion", "lazytime",
    "loud", "mand", "noatime", "nodev", "nodiratime", "noexec", "noiversion", "nolazytime", "nomand", "norelatime",
    "nostrictatime", "nosuid", "nosymfollow", "private", "ratime", "rbind", "rdev", "rdiratime", "relatime",
    "remount", "rexec", "ridmap", "rnoatime", "rnodev", "rnodiratime", "rnoexec", "rnorelatime", "rnostrictatime",
    "rnosuid", "rnosymfollow", "ro", "rprivate", "rrelatime", "rro", "rrw", "rshared", "rslave", "rstrictatime",
    "rsuid", "rsymfollow", "runbindable", "rw", "shared", "silent", "slave", "strictatime", "suid", "symfollow",
    "sync", "tmpcopyup", "unbindable",
};

}  // namespace

std::optional<int> capability_from_name(std::string_view name) {
  for (size_t i = 0; i < std::size(kCaps); ++i)
    if (kCaps[i] == name) return static_cast<int>(i);
  return std::nullopt;
}
std::string_view capability_name(int cap) {
  if (cap < 0 || static_cast<size_t>(cap) >= std::size(kCaps)) return "";
  return kCaps[cap];
}
std::vector<std::string_view> capability_names() { return {std::begin(kCaps), std::end(kCaps)}; }
int last_capability() { return static_cast<int>(std::size(kCaps)) - 1; }

std::vector<int> default_capabilities() {
  std::vector<int> out;
  for (auto n : {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_SETGID", "CAP_SETUID",
                 "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"})
    out.push_back(*capability_from_name(n));
  return out;
}

std::optional<NamespaceType> namespace_from_name(std::string_view name) {
  for (const auto& e : kNamespaces)
    if (e.name == name) return e.type;
  return std::nullopt;
}
std::string_view namespace_name(NamespaceType t) {
  for (const auto& e : kNamespaces)
    if (e.type == t) return e.name;
  return "";
}
std::vector<std::string_view> namespace_names() {
  std::vector<std::string_view> out;
  for (const auto& e : kNamespaces) out.push_back(e.name);
  return out;
}
int namespace_clone_flag(NamespaceType t) {
  for (const auto& e : kNamespaces)
    if (e.type == t) return e.flag;
  return 0;
}
std::string_view namespace_proc_name(NamespaceType t) {
  for (const auto& e : kNamespaces)
    if (e.type == t) return e.proc;
  return "";
}

std::optional<int> rlimit_from_name(std::string_view name) {
  for (const auto& e : kRlimits)
    if (e.name == name) return e.resource;
  return std::nullopt;
}
std::string_view rlimit_name(int resource) {
  for (const auto& e : kRlimits)
    if (e.resource == resource) return e.name;
  return "";
}
std::vector<std::string_view> rlimit_names() {
  std::vector<std::string_view> out;
  for (const auto& e : kRlimits) out.push_back(e.name);
  return out;
}

std::optional<SeccompAction> seccomp_action_from_name(std::string_view name) {
  for (const auto& e : kActions)
    if (e.name == name) return e.action;
  return std::nullopt;
}
std::string_view seccomp_action_name(SeccompAction a) {
  for (const auto& e : kActions)
    if (e.action == a) return e.name;
  return "";
}
std::vector<std::string_view> seccomp_action_names() {
  std::vector<std::string_view> out;
  for (const auto& e : kActions) out.push_back(e.name);
  return out;
}
std::optional<SeccompOp> seccomp_op_from_name(std::string_view name) {
  for (const auto& e : kOps)
    if (e.name == name) return e.op;
  return std::nullopt;
}
std::string_view seccomp_op_name(SeccompOp op) {
  for (const auto& e : kOps)
    if (e.op == op) return e.name;
  return "";
}
std::vector<std::string_view> seccomp_op_names() {
  std::vector<std::string_view> out;
  for (const auto& e : kOps) out.push_back(e.name);
  return out;
}
bool seccomp_arch_known(std::string_view name) {
  for (auto a : kArches)
    if (a == name) return true;
  return false;
}
std::vector<std::string_view> seccomp_arch_names() { return {std::begin(kArches), std::end(kArches)}; }
bool seccomp_flag_known(std::string_view name) {
  for (auto f : kSeccompFlags)
    if (f == name) return true;
  return false;
}
std::vector<std::string_view> seccomp_flag_names() { return {std::begin(kSeccompFlags), std::end(kSeccompFlags)}; }

std::optional<Propagation> propagation_from_name(std::string_view name) {
  for (const auto& e : kProps)
    if (e.name == name) return e.p;
  return std::nullopt;
}
std::string_view propagation_name(Propagation p) {
  for (const auto& e : kProps)
    if (e.p == p) return e.name;
  return "";
}

std::vector<std::string_view> known_mount_options() { return {std::begin(kMountOptions), std::end(kMountOptions)}; }

}  // namespace husk::oci
