// Seccomp filters and capability sets, each applied in a forked child that
// reports what it saw.
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <gtest/gtest.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "common/fd.h"
#include "oci/default_seccomp.h"
#include "oci/tables.h"
#include "runtime/caps.h"
#include "runtime/seccomp.h"
#include "runtime/sync.h"

using namespace husk;
using namespace husk::runtime;

namespace {

// Run fn in a child; returns its wait status.
template <typename F>
int in_child(F fn) {
  pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

oci::Seccomp allow_all_but(const char* name, oci::SeccompAction action, std::optional<uint32_t> errno_ret = {}) {
  oci::Seccomp s;
  s.default_action = oci::SeccompAction::Allow;
  oci::SeccompSyscall c;
  c.names = {name};
  c.action = action;
  c.errno_ret = errno_ret;
  s.syscalls.push_back(c);
  return s;
}

}  // namespace

TEST(Seccomp, ErrnoWithErrnoRet) {
  auto spec = allow_all_but("getcwd", oci::SeccompAction::Errno, 42);
  int st = in_child([&] {
    if (!load_seccomp(spec)) return 1;
    char buf[64];
    return syscall(SYS_getcwd, buf, sizeof buf) < 0 && errno == 42 ? 0 : 2;
  });
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << st;
}

TEST(Seccomp, KillProcessAndTrap) {
  auto kill = allow_all_but("getppid", oci::SeccompAction::KillProcess);
  int st = in_child([&] {
    if (!load_seccomp(kill)) return 1;
    syscall(SYS_getppid);
    return 0;
  });
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS) << st;
  auto trap = allow_all_but("getppid", oci::SeccompAction::Trap);
  st = in_child([&] {
    if (!load_seccomp(trap)) return 1;
    syscall(SYS_getppid);
    return 0;
  });
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS) << st;
}

TEST(Seccomp, ArgumentOperators) {
  oci::Seccomp s;
  s.default_action = oci::SeccompAction::Allow;
  oci::SeccompSyscall c;
  c.names = {"personality"};
  c.action = oci::SeccompAction::Errno;
  c.errno_ret = 7;
  c.args = {{0, PER_LINUX32, std::nullopt, oci::SeccompOp::EqualTo}};
  s.syscalls.push_back(c);
  // masked: (arg & 0xff00) == 0x0800 ... on a second syscall rule set
  oci::SeccompSyscall m;
  m.names = {"getpriority"};
  m.action = oci::SeccompAction::Errno;
  m.errno_ret = 9;
  m.args = {{0, 0xff, 0x2, oci::SeccompOp::MaskedEqual}};
  s.syscalls.push_back(m);
  int st = in_child([&] {
    if (!load_seccomp(s)) return 1;
    if (!(syscall(SYS_personality, PER_LINUX32) < 0 && errno == 7)) return 2;
    if (syscall(SYS_personality, 0xffffffff) < 0) return 3;  // query: allowed
    if (!(syscall(SYS_getpriority, 2, 0) < 0 && errno == 9)) return 4;  // PRIO_USER=2
    if (syscall(SYS_getpriority, 0, 0) < 0) return 5;
    return 0;
  });
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << WEXITSTATUS(st);
}

TEST(Seccomp, TwoComparisonsOnOneArgumentBecomeTwoRules) {
  oci::Seccomp s;
  s.default_action = oci::SeccompAction::Allow;
  oci::SeccompSyscall c;
  c.names = {"getpriority"};
  c.action = oci::SeccompAction::Errno;
  c.errno_ret = 11;
  c.args = {{0, 1, std::nullopt, oci::SeccompOp::EqualTo}, {0, 2, std::nullopt, oci::SeccompOp::EqualTo}};
  s.syscalls.push_back(c);
  int st = in_child([&] {
    if (auto r = load_seccomp(s); !r) return 1;
    if (!(syscall(SYS_getpriority, 1, 0) < 0 && errno == 11)) return 2;
    if (!(syscall(SYS_getpriority, 2, 0) < 0 && errno == 11)) return 3;
    if (syscall(SYS_getpriority, 0, 0) < 0) return 4;
    return 0;
  });
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << WEXITSTATUS(st);
}

TEST(Seccomp, UnknownSyscallNamesAreSkippedAndBpfExports) {
  auto s = allow_all_but("no_such_syscall_2099", oci::SeccompAction::Errno);
  s.syscalls[0].names.push_back("getcwd");
  auto bpf = export_seccomp_bpf(s);
  ASSERT_TRUE(bpf) << bpf.error().str();
  EXPECT_GT(bpf->size(), 8u);
  EXPECT_EQ(bpf->size() % 8, 0u);  // struct sock_filter is 8 bytes
}

TEST(Seccomp, NotifyGivesAListenerFd) {
  auto s = allow_all_but("getcwd", oci::SeccompAction::Notify);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(sv[0]);
    auto fd = load_seccomp(s);
    if (!fd || !fd->valid()) _exit(1);
    if (!send_fd(sv[1], fd->get(), "x")) _exit(2);
    char buf[8];
    long r = syscall(SYS_getcwd, buf, sizeof buf);
    _exit(r < 0 && errno == 77 ? 0 : 3);
  }
  close(sv[1]);
  auto listener = recv_fd(sv[0], nullptr);
  ASSERT_TRUE(listener) << listener.error().str();
  struct seccomp_notif* req;
  struct seccomp_notif_resp* resp;
  ASSERT_EQ(seccomp_notify_alloc(&req, &resp), 0);
  ASSERT_EQ(seccomp_notify_receive(listener->get(), req), 0);
  EXPECT_EQ(req->pid, static_cast<uint32_t>(pid));
  resp->id = req->id;
  resp->error = -77;
  resp->val = 0;
  resp->flags = 0;
  ASSERT_EQ(seccomp_notify_respond(listener->get(), resp), 0);
  seccomp_notify_free(req, resp);
  int st;
  waitpid(pid, &st, 0);
  close(sv[0]);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << WEXITSTATUS(st);
}

TEST(Capabilities, AllFiveSetsAfterAUserChange) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    dup2(pipefd[1], 1);
    oci::Capabilities c;
    int bind = *oci::capability_from_name("CAP_NET_BIND_SERVICE");
    int kill = *oci::capability_from_name("CAP_KILL");
    c.bounding = std::vector<int>{bind, kill};
    c.effective = std::vector<int>{bind};
    c.permitted = std::vector<int>{bind};
    c.inheritable = std::vector<int>{bind};
    c.ambient = std::vector<int>{bind};
    if (!drop_bounding(c)) _exit(1);
    prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0);
    if (setresgid(1000, 1000, 1000) || setresuid(1000, 1000, 1000)) _exit(2);
    if (auto r = apply_capabilities(c); !r) _exit(3);
    execl("/bin/grep", "grep", "^Cap", "/proc/self/status", nullptr);
    _exit(4);
  }
  close(pipefd[1]);
  std::string out = *read_all(pipefd[0]);
  close(pipefd[0]);
  int st;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << WEXITSTATUS(st);
  EXPECT_NE(out.find("CapInh:\t0000000000000400"), std::string::npos) << out;
  EXPECT_NE(out.find("CapPrm:\t0000000000000400"), std::string::npos) << out;
  EXPECT_NE(out.find("CapEff:\t0000000000000400"), std::string::npos) << out;
  EXPECT_NE(out.find("CapBnd:\t0000000000000420"), std::string::npos) << out;
  EXPECT_NE(out.find("CapAmb:\t0000000000000400"), std::string::npos) << out;
}

TEST(Capabilities, AmbientOutsidePermittedIsNamed) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    oci::Capabilities c;
    c.ambient = std::vector<int>{*oci::capability_from_name("CAP_NET_ADMIN")};
    auto r = apply_capabilities(c);
    std::string msg = r ? "ok" : r.error().str();
    (void)!write(pipefd[1], msg.data(), msg.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string out = *read_all(pipefd[0]);
  close(pipefd[0]);
  waitpid(pid, nullptr, 0);
  EXPECT_EQ(out, "process.capabilities.ambient: raise CAP_NET_ADMIN: Operation not permitted");
}

TEST(Seccomp, DefaultProfileDeniesWhatDockersDoesWithoutTheCapability) {
  oci::Seccomp plain = oci::default_seccomp({CAP_CHOWN, CAP_KILL, CAP_SETUID, CAP_SETGID});
  int st = in_child([&] {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || !load_seccomp(plain)) return 1;
    if (!(syscall(SYS_unshare, CLONE_NEWNET) < 0 && errno == EPERM)) return 2;
    if (!(syscall(SYS_mount, "none", "/", "tmpfs", 0, nullptr) < 0 && errno == EPERM)) return 3;
    if (!(syscall(SYS_clone3, nullptr, 0) < 0 && errno == ENOSYS)) return 4;  // libc falls back to clone
    if (!(syscall(SYS_keyctl, 0, 0, 0, 0, 0) < 0 && errno == EPERM)) return 5;
    if (!(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, nullptr, nullptr, nullptr, 0) < 0 && errno == EPERM)) return 6;
    // Ordinary work goes on: a fork (clone without namespace flags), a pipe.
    pid_t child = fork();
    if (child == 0) _exit(0);
    int cst;
    if (child < 0 || waitpid(child, &cst, 0) != child || !WIFEXITED(cst)) return 7;
    int p[2];
    return pipe(p) == 0 ? 0 : 8;
  });
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "step " << WEXITSTATUS(st);

  // With CAP_SYS_ADMIN the mount and namespace calls are the kernel's to judge.
  oci::Seccomp admin = oci::default_seccomp({CAP_SYS_ADMIN});
  auto allowed = [](const oci::Seccomp& sc, const std::string& name) {
    for (const auto& rule : sc.syscalls)
      if (rule.action == oci::SeccompAction::Allow && rule.args.empty())
        for (const auto& n : rule.names)
          if (n == name) return true;
    return false;
  };
  for (const char* name : {"mount", "unshare", "clone", "clone3", "setns"}) EXPECT_TRUE(allowed(admin, name)) << name;
  EXPECT_FALSE(allowed(admin, "keyctl"));  // keyrings stay closed whatever the capabilities
  EXPECT_FALSE(allowed(plain, "mount"));
}

TEST(Seccomp, DefaultProfileIsAnAllowList) {
  oci::Seccomp plain = oci::default_seccomp({CAP_CHOWN, CAP_KILL, CAP_SETUID, CAP_SETGID});
  EXPECT_EQ(plain.default_action, oci::SeccompAction::Errno);
  EXPECT_EQ(plain.default_errno_ret, std::optional<uint32_t>(EPERM));
  int st = in_child([&] {
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || !load_seccomp(plain)) return 1;
    // Not on the list (docker dropped io_uring): EPERM, where the kernel
    // would have said EFAULT for the null params.
    if (!(syscall(SYS_io_uring_setup, 1, nullptr) < 0 && errno == EPERM)) return 2;
    // A common workload: a shell pipeline, command substitution, files,
    // time, a directory listing.
    execl("/bin/sh", "sh", "-c",
          "x=$(echo hi | cat); [ \"$x\" = hi ] && ls / >/dev/null && date >/dev/null && "
          "t=$(mktemp) && echo data > \"$t\" && grep -q data \"$t\" && rm \"$t\" && exit 0; exit 3",
          static_cast<char*>(nullptr));
    return 4;
  });
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "step " << WEXITSTATUS(st);
}
