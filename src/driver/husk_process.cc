#include "driver/husk_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>

#include "common/fd.h"

extern char** environ;

namespace husk::driver {
namespace {

int64_t now_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

Result<pid_t> spawn(const std::vector<std::string>& argv, const SpawnOptions& o) {
  if (argv.empty()) return fail_msg("spawn: empty command line");
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  if (o.stdin_fd >= 0) posix_spawn_file_actions_adddup2(&fa, o.stdin_fd, 0);
  else posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (o.stdout_fd >= 0) posix_spawn_file_actions_adddup2(&fa, o.stdout_fd, 1);
  else posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  if (o.stderr_fd >= 0) posix_spawn_file_actions_adddup2(&fa, o.stderr_fd, 2);
  else posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  // gRPC threads block signals; the child starts with none blocked and
  // every signal at its default.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (o.new_session) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&attr, flags);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  std::vector<std::string> env_store;
  std::vector<char*> envp;
  char** env = environ;
  if (!o.extra_env.empty()) {
    for (char** e = environ; *e; ++e) {
      std::string_view kv = *e;
      bool replaced = false;
      for (const auto& x : o.extra_env) replaced = replaced || kv.substr(0, kv.find('=') + 1) == x.substr(0, x.find('=') + 1);
      if (!replaced) envp.push_back(*e);
    }
    env_store = o.extra_env;
    for (auto& x : env_store) envp.push_back(x.data());
    envp.push_back(nullptr);
    env = envp.data();
  }
  int rc = posix_spawn(&pid, argv[0].c_str(), &fa, &attr, args.data(), env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return fail_errno(rc, "start ", argv[0]);
  return pid;
}

Result<Captured> run_captured(const std::vector<std::string>& argv, const std::string& stdin_data, int timeout_ms) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) < 0) return fail_sys("pipe");
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (pipe2(out, O_CLOEXEC) < 0) return fail_sys("pipe");
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (pipe2(err, O_CLOEXEC) < 0) return fail_sys("pipe");
  UniqueFd err_r(err[0]), err_w(err[1]);
  SpawnOptions o;
  o.stdin_fd = in_r.get();
  o.stdout_fd = out_w.get();
  o.stderr_fd = err_w.get();
  o.new_session = false;
  pid_t pid = TRY(spawn(argv, o));
  in_r.reset();
  out_w.reset();
  err_w.reset();
  fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  Captured c;
  size_t written = 0;
  if (stdin_data.empty()) in_w.reset();
  int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
  char buf[16384];
  while (out_r || err_r) {
    struct pollfd fds[3] = {{out_r ? out_r.get() : -1, POLLIN, 0},
                            {err_r ? err_r.get() : -1, POLLIN, 0},
                            {in_w ? in_w.get() : -1, POLLOUT, 0}};
    int wait = -1;
    if (deadline >= 0) {
      wait = static_cast<int>(deadline - now_ms());
      if (wait <= 0) {
        c.timed_out = true;
        kill(pid, SIGKILL);
        break;
      }
    }
    int n = poll(fds, 3, wait);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      UniqueFd& fd = i == 0 ? out_r : err_r;
      ssize_t r = read(fd.get(), buf, sizeof buf);
      if (r > 0) (i == 0 ? c.out : c.err).append(buf, static_cast<size_t>(r));
      else fd.reset();
    }
    if (in_w && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(in_w.get(), stdin_data.data() + written, stdin_data.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 || written == stdin_data.size()) in_w.reset();
    }
  }
  while (waitpid(pid, &c.status, 0) < 0) {
    if (errno != EINTR) return fail_sys("wait for ", argv[0]);
  }
  return c;
}

int exit_code_of(int status) {
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

std::string husk_binary() {
  if (const char* env = getenv("HUSK_BINARY"); env && *env) return env;
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = 0;
    std::string dir(self);
    dir = dir.substr(0, dir.rfind('/'));
    for (const char* rel : {"/husk", "/../cli/husk"}) {
      std::string p = dir + rel;
      if (access(p.c_str(), X_OK) == 0) return p;
    }
  }
  for (const char* p : {"/usr/local/bin/husk", "/usr/bin/husk"})
    if (access(p, X_OK) == 0) return p;
  return "husk";
}

}  // namespace husk::driver
