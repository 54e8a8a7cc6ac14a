#include "runtime/hooks.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ctime>

#include "common/fd.h"

namespace husk::runtime {
namespace {

std::vector<char*> cstrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  for (const auto& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

Result<> run_one(const oci::Hook& hook, const std::string& name, const std::string& state_json) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) < 0) return fail_sys(name, ": pipe");
  UniqueFd rd(pipefd[0]), wr(pipefd[1]);
  std::vector<std::string> args = hook.args.empty() ? std::vector<std::string>{hook.path} : hook.args;
  auto argv = cstrings(args);
  auto envp = cstrings(hook.env);

  pid_t pid = fork();
  if (pid < 0) return fail_sys(name, ": fork");
  if (pid == 0) {
    setpgid(0, 0);  // its own group: a timeout kills whatever the hook started
    if (dup2(rd.get(), 0) < 0) _exit(127);
    execve(hook.path.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  rd.reset();
  // A hook may not read its stdin; a full pipe must not block us forever,
  // and EPIPE from a hook that exited is not a failure of ours.
  signal(SIGPIPE, SIG_IGN);
  fcntl(wr.get(), F_SETFL, O_NONBLOCK);
  (void)write_all(wr.get(), state_json);
  wr.reset();

  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  int status = 0;
  if (pidfd >= 0) {
    UniqueFd owned(pidfd);
    int timeout_ms = hook.timeout ? *hook.timeout * 1000 : -1;
    struct pollfd p = {pidfd, POLLIN, 0};
    int n;
    do {
      n = poll(&p, 1, timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      return fail_errno(ETIMEDOUT, name, " \"", hook.path, "\": timed out after ", *hook.timeout, "s");
    }
  }
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return fail_sys(name, ": wait");
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && access(hook.path.c_str(), X_OK) < 0)
    return fail_sys(name, " \"", hook.path, "\": cannot execute");
  if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
    return fail_msg(name, " \"", hook.path, "\": exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fail_msg(name, " \"", hook.path, "\": killed by signal ", WTERMSIG(status));
  return {};
}

}  // namespace

Result<> run_hooks(const std::vector<oci::Hook>& hooks, const char* kind, const std::string& state_json) {
  for (size_t i = 0; i < hooks.size(); ++i) {
    TRYV(run_one(hooks[i], cat("hooks.", kind, "[", i, "]"), state_json));
  }
  return {};
}

}  // namespace husk::runtime
