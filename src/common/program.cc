#include "common/program.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "common/duration.h"
#include "common/fd.h"

extern char** environ;

namespace husk {
namespace {

struct Pipe {
  UniqueFd read, write;
};

Result<Pipe> make_pipe() {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) return fail_sys("pipe");
  return Pipe{UniqueFd(p[0]), UniqueFd(p[1])};
}

Result<pid_t> spawn_with_pipes(const std::vector<std::string>& argv, int in, int out, int err) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&fa, in, 0);
  posix_spawn_file_actions_adddup2(&fa, out, 1);
  posix_spawn_file_actions_adddup2(&fa, err, 2);
  // The driver's gRPC threads block signals and husk ignores some: the
  // program must not inherit either.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0].c_str(), &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return fail_errno(rc, "start ", argv[0]);
  return pid;
}

// A write to the stdin of a program that has exited raises SIGPIPE in the
// writing thread. Blocking it there (not ignoring it process-wide, which
// would race with the driver's other threads) turns it into EPIPE; a
// SIGPIPE that this caused is then taken off the thread's pending set.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlocked() {
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      struct timespec zero = {0, 0};
      (void)sigtimedwait(&pipe_, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
};

}  // namespace

Result<Captured> run_captured(const std::vector<std::string>& argv, const std::string& stdin_data, int timeout_ms) {
  return run_captured(argv, stdin_data, timeout_ms, CaptureCallbacks{});
}

Result<Captured> run_captured(const std::vector<std::string>& argv, const std::string& stdin_data, int timeout_ms,
                              const CaptureCallbacks& callbacks) {
  if (argv.empty()) return fail_msg("run a program: empty command line");
  Pipe in = TRY(make_pipe());
  Pipe out = TRY(make_pipe());
  Pipe err = TRY(make_pipe());
  pid_t pid = TRY(spawn_with_pipes(argv, in.read.get(), out.write.get(), err.write.get()));
  in.read.reset();
  out.write.reset();
  err.write.reset();

  SigpipeBlocked no_sigpipe;
  UniqueFd in_w = std::move(in.write), out_r = std::move(out.read), err_r = std::move(err.read);
  // Both directions at once: a program that fills its stdout pipe before
  // reading all of its stdin would otherwise deadlock with us.
  if (stdin_data.empty())
    in_w.reset();
  else
    fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  Captured c;
  size_t written = 0;
  const int64_t deadline = timeout_ms < 0 ? -1 : clock_ms() + timeout_ms;
  int64_t next_idle = clock_ms() + 1000;
  std::string partial;  // stderr after its last newline
  auto stderr_lines = [&](std::string_view chunk) {
    if (!callbacks.on_stderr_line) return;
    partial.append(chunk);
    for (size_t nl; (nl = partial.find('\n')) != std::string::npos;) {
      std::string line = partial.substr(0, nl);
      partial.erase(0, nl + 1);
      callbacks.on_stderr_line(line);
    }
  };
  char buf[16384];
  while (out_r || err_r) {
    struct pollfd fds[3] = {{out_r ? out_r.get() : -1, POLLIN, 0},
                            {err_r ? err_r.get() : -1, POLLIN, 0},
                            {in_w ? in_w.get() : -1, POLLOUT, 0}};
    int64_t now = clock_ms();
    if (deadline >= 0 && now >= deadline) {
      c.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    if (callbacks.on_idle && now >= next_idle) {
      next_idle = now + 1000;
      callbacks.on_idle();
    }
    int64_t until = deadline;
    if (callbacks.on_idle) until = until < 0 ? next_idle : std::min(until, next_idle);
    int wait = until < 0 ? -1 : static_cast<int>(std::max<int64_t>(0, until - now));
    int n = poll(fds, 3, wait);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      UniqueFd& fd = i == 0 ? out_r : err_r;
      ssize_t r = read(fd.get(), buf, sizeof buf);
      if (r > 0) {
        (i == 0 ? c.out : c.err).append(buf, static_cast<size_t>(r));
        if (i == 1) stderr_lines(std::string_view(buf, static_cast<size_t>(r)));
      } else if (r == 0 || errno != EINTR) {
        fd.reset();
      }
    }
    if (in_w && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(in_w.get(), stdin_data.data() + written, stdin_data.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      // EPIPE: it stopped reading (exited); what it printed still counts.
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == stdin_data.size()) in_w.reset();
    }
  }
  if (!partial.empty()) callbacks.on_stderr_line(partial);
  while (waitpid(pid, &c.status, 0) < 0)
    if (errno != EINTR) return fail_sys("wait for ", argv[0]);
  return c;
}

int exit_code_of(int status) {
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

std::string describe_wait_status(int status) {
  if (WIFSIGNALED(status)) return cat("signal ", WTERMSIG(status));
  return cat("exit ", WEXITSTATUS(status));
}

uint64_t process_start_time(pid_t pid) {
  if (pid <= 0) return 0;
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  auto content = read_file(path);
  if (!content) return 0;
  // comm may hold spaces and parentheses: fields start after the last ')'.
  size_t close = content->rfind(')');
  if (close == std::string::npos) return 0;
  const char* p = content->c_str() + close + 2;
  char state = *p;
  if (state == 'Z' || state == 'X') return 0;
  // field 3 is state; starttime is field 22 -> 19 more fields after state
  for (int field = 3; field < 22; ++field) {
    p = strchr(p, ' ');
    if (!p) return 0;
    ++p;
  }
  return strtoull(p, nullptr, 10);
}

bool process_alive(pid_t pid, uint64_t start_time) {
  return pid > 0 && start_time != 0 && process_start_time(pid) == start_time;
}

void default_signals() {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < NSIG; ++sig)
    if (sig != SIGKILL && sig != SIGSTOP) signal(sig, SIG_DFL);
}

bool signal_and_await_exit(pid_t pid, uint64_t start_time, int sig, int timeout_ms) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return true;  // gone already
  UniqueFd owned(fd);
  // The pidfd pins the process: check it is still the one meant.
  if (!process_alive(pid, start_time)) return true;
  if (sig) syscall(SYS_pidfd_send_signal, fd, sig, nullptr, 0);
  struct pollfd p = {fd, POLLIN, 0};
  int n;
  do n = poll(&p, 1, timeout_ms);
  while (n < 0 && errno == EINTR);
  return n != 0;
}

}  // namespace husk
