#include "runtime/process.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "runtime/caps.h"
#include "runtime/seccomp.h"

namespace husk::runtime {

extern const unsigned char kTrampoline[];
extern const size_t kTrampoline_size;

namespace {

// <linux/sched/types.h> clashes with glibc's sched.h; the struct is stable ABI.
struct sched_attr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

Result<> set_cpu_affinity(const std::string& list, const char* field) {
  cpu_set_t set;
  CPU_ZERO(&set);
  size_t pos = 0;
  while (pos < list.size()) {
    size_t comma = list.find(',', pos);
    std::string part = list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    pos = comma == std::string::npos ? list.size() : comma + 1;
    if (part.empty()) continue;
    char* end;
    long lo = strtol(part.c_str(), &end, 10);
    long hi = lo;
    if (*end == '-') hi = strtol(end + 1, &end, 10);
    if (*end != '\0' || lo < 0 || hi < lo || hi >= CPU_SETSIZE) return fail_msg(field, ": bad CPU list \"", list, "\"");
    for (long c = lo; c <= hi; ++c) CPU_SET(c, &set);
  }
  if (sched_setaffinity(0, sizeof set, &set) < 0) return fail_sys(field, ": set CPU affinity \"", list, "\"");
  return {};
}

int sched_policy_number(oci::SchedPolicy p) {
  switch (p) {
    case oci::SchedPolicy::Other: return SCHED_OTHER;
    case oci::SchedPolicy::Fifo: return SCHED_FIFO;
    case oci::SchedPolicy::RoundRobin: return SCHED_RR;
    case oci::SchedPolicy::Batch: return SCHED_BATCH;
    case oci::SchedPolicy::Iso: return 4;
    case oci::SchedPolicy::Idle: return SCHED_IDLE;
    case oci::SchedPolicy::Deadline: return 6;
  }
  return SCHED_OTHER;
}

uint64_t sched_flag_bit(const std::string& f) {
  if (f == "SCHED_FLAG_RESET_ON_FORK") return 0x01;
  if (f == "SCHED_FLAG_RECLAIM") return 0x02;
  if (f == "SCHED_FLAG_DL_OVERRUN") return 0x04;
  if (f == "SCHED_FLAG_KEEP_POLICY") return 0x08;
  if (f == "SCHED_FLAG_KEEP_PARAMS") return 0x10;
  if (f == "SCHED_FLAG_UTIL_CLAMP_MIN") return 0x20;
  if (f == "SCHED_FLAG_UTIL_CLAMP_MAX") return 0x40;
  return 0;
}

Result<> set_user(const oci::User& user) {
  if (setgroups(user.additional_gids.size(), reinterpret_cast<const gid_t*>(user.additional_gids.data())) < 0) {
    // A user namespace with setgroups denied (single-id rootless map) cannot
    // set groups at all; without extra groups that is not a failure.
    if (!(errno == EPERM && user.additional_gids.empty())) return fail_sys("process.user.additionalGids: setgroups");
  }
  if (setresgid(user.gid, user.gid, user.gid) < 0) return fail_sys("process.user.gid: setresgid ", user.gid);
  if (setresuid(user.uid, user.uid, user.uid) < 0) return fail_sys("process.user.uid: setresuid ", user.uid);
  return {};
}

}  // namespace

Result<UniqueFd> make_trampoline() {
  int fd = static_cast<int>(syscall(SYS_memfd_create, "husk-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC));
  if (fd < 0 && errno == EINVAL) fd = static_cast<int>(syscall(SYS_memfd_create, "husk-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (fd < 0) return fail_sys("memfd_create for the exec trampoline");
  UniqueFd owned(fd);
  TRYV_CTX(write_all(fd, std::string_view(reinterpret_cast<const char*>(kTrampoline), kTrampoline_size)),
           "write the exec trampoline");
  if (fchmod(fd, 0555) < 0) return fail_sys("chmod the exec trampoline");
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
    return fail_sys("seal the exec trampoline");
  return owned;
}

void close_fds_except(std::vector<int> keep) {
  std::sort(keep.begin(), keep.end());
  unsigned from = 3;
  for (int k : keep) {
    if (k < 3) continue;
    if (static_cast<unsigned>(k) > from) syscall(SYS_close_range, from, static_cast<unsigned>(k) - 1, 0);
    from = static_cast<unsigned>(k) + 1;
  }
  syscall(SYS_close_range, from, ~0U, 0);
}

Result<std::string> find_executable(const oci::Process& process) {
  const std::string& name = process.args.at(0);
  auto check = [&](const std::string& p) -> int {
    struct stat st;
    if (stat(p.c_str(), &st) < 0) return errno;
    if (S_ISDIR(st.st_mode)) return EISDIR;
    if (access(p.c_str(), X_OK) < 0) return errno;
    return 0;
  };
  if (name.find('/') != std::string::npos) {
    int err = check(name);
    if (err) return fail_errno(err, "process.args[0]: exec \"", name, "\"");
    return name;
  }
  std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& e : process.env)
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  int first_err = ENOENT;
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t colon = path.find(':', pos);
    std::string dir = path.substr(pos, colon == std::string::npos ? std::string::npos : colon - pos);
    pos = colon == std::string::npos ? path.size() + 1 : colon + 1;
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    int err = check(candidate);
    if (err == 0) return candidate;
    if (err != ENOENT && err != ENOTDIR && first_err == ENOENT) first_err = err;
  }
  return fail_errno(first_err, "process.args[0]: executable file \"", name, "\" not found in $PATH");
}

Result<> apply_rlimits(const oci::Process& p) {
  for (size_t i = 0; i < p.rlimits.size(); ++i) {
    struct rlimit rl = {p.rlimits[i].soft, p.rlimits[i].hard};
    if (setrlimit(p.rlimits[i].resource, &rl) < 0) return fail_sys("process.rlimits[", i, "]: setrlimit");
  }
  return {};
}

Result<> apply_outside_limits(pid_t pid, const oci::Process& p) {
  for (size_t i = 0; i < p.rlimits.size(); ++i) {
    struct rlimit rl = {p.rlimits[i].soft, p.rlimits[i].hard};
    if (prlimit(pid, static_cast<__rlimit_resource>(p.rlimits[i].resource), &rl, nullptr) < 0)
      return fail_sys("process.rlimits[", i, "]: setrlimit");
  }
  if (p.oom_score_adj) {
    std::string path = pid ? cat("/proc/", pid, "/oom_score_adj") : std::string("/proc/self/oom_score_adj");
    TRYV_CTX(write_file(path, std::to_string(*p.oom_score_adj)), "process.oomScoreAdj");
  }
  return {};
}

Result<> apply_process_limits(const oci::Process& p, bool outside_done) {
  if (!outside_done) TRYV(apply_rlimits(p));
  if (p.oom_score_adj && !outside_done) {
    TRYV_CTX(write_file("/proc/self/oom_score_adj", std::to_string(*p.oom_score_adj)), "process.oomScoreAdj");
  }
  if (p.io_priority) {
    int klass = p.io_priority->klass == oci::IoPriorityClass::RealTime ? 1
                : p.io_priority->klass == oci::IoPriorityClass::BestEffort ? 2 : 3;
    long prio = (static_cast<long>(klass) << 13) | p.io_priority->priority;
    if (syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, prio) < 0)
      return fail_sys("process.ioPriority: ioprio_set");
  }
  if (p.scheduler) {
    struct sched_attr attr = {};
    attr.size = sizeof attr;
    attr.sched_policy = static_cast<uint32_t>(sched_policy_number(p.scheduler->policy));
    attr.sched_nice = p.scheduler->nice.value_or(0);
    attr.sched_priority = static_cast<uint32_t>(p.scheduler->priority.value_or(0));
    for (const auto& f : p.scheduler->flags) attr.sched_flags |= sched_flag_bit(f);
    attr.sched_runtime = p.scheduler->runtime.value_or(0);
    attr.sched_deadline = p.scheduler->deadline.value_or(0);
    attr.sched_period = p.scheduler->period.value_or(0);
    if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0) return fail_sys("process.scheduler: sched_setattr");
  }
  if (p.exec_cpu_affinity && p.exec_cpu_affinity->initial)
    TRYV(set_cpu_affinity(*p.exec_cpu_affinity->initial, "process.execCPUAffinity.initial"));
  if (p.user.umask) umask(*p.user.umask);
  else umask(022);
  return {};
}

Result<UniqueFd> apply_process_identity(const oci::Process& p, const oci::Seccomp* seccomp) {
  UniqueFd notify;
  if (seccomp && !p.no_new_privileges) notify = TRY(load_seccomp(*seccomp));
  static const oci::Capabilities kNone;
  const oci::Capabilities& caps = p.capabilities ? *p.capabilities : kNone;
  // cwd before the user change (the new user may not reach it, e.g. rootless
  // binds); if that fails for lack of permission, again as the user.
  bool in_cwd = chdir(p.cwd.c_str()) == 0;
  if (!in_cwd && errno != EACCES && errno != EPERM) return fail_sys("process.cwd: chdir \"", p.cwd, "\"");
  TRYV(drop_bounding(caps));
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) return fail_sys("prctl PR_SET_KEEPCAPS");
  TRYV(set_user(p.user));
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0) return fail_sys("prctl PR_SET_KEEPCAPS");
  TRYV(apply_capabilities(caps));
  if (!in_cwd && chdir(p.cwd.c_str()) < 0) return fail_sys("process.cwd: chdir \"", p.cwd, "\"");
  // CVE-2024-21626: a cwd reached through a leaked fd lies outside the root;
  // getcwd then reports "(unreachable)".
  char buf[4096];
  if (!getcwd(buf, sizeof buf) || buf[0] != '/')
    return fail_errno(EPERM, "process.cwd: \"", p.cwd, "\" is outside the container's root");
  if (p.no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return fail_sys("prctl PR_SET_NO_NEW_PRIVS");
  if (seccomp && p.no_new_privileges) notify = TRY(load_seccomp(*seccomp));
  return notify;
}

Error exec_process(int trampoline_fd, const std::string& path, const oci::Process& p, int preserve_fds) {
  if (p.exec_cpu_affinity && p.exec_cpu_affinity->final) {
    if (auto r = set_cpu_affinity(*p.exec_cpu_affinity->final, "process.execCPUAffinity.final"); !r) return r.error();
  }
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const auto& a : p.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const auto& e : p.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  // Preserved fds (3 .. 3+N-1) survive the exec; everything else is closed by it.
  for (int fd = 3; fd < 3 + preserve_fds; ++fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0) fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
  syscall(SYS_close_range, static_cast<unsigned>(3 + preserve_fds), ~0U, CLOSE_RANGE_CLOEXEC);
  syscall(SYS_execveat, trampoline_fd, "", argv.data(), envp.data(), AT_EMPTY_PATH);
  return Error::sys(cat("exec \"", path, "\""));
}

}  // namespace husk::runtime
