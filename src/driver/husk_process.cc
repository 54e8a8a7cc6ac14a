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

#include "common/fd.h"

extern char** environ;

namespace husk::driver {

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

namespace {

// `name` beside the driver binary, or at one of `rel` from its directory.
std::string beside_self(const std::vector<std::string>& rel) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "";
  self[n] = 0;
  std::string dir(self);
  dir = dir.substr(0, dir.rfind('/'));
  for (const auto& r : rel)
    if (std::string p = dir + r; access(p.c_str(), X_OK) == 0) return p;
  return "";
}

int64_t monotonic_ms() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

std::string husk_image_binary() {
  if (const char* env = getenv("HUSK_IMAGE_BINARY"); env && *env) return env;
  if (std::string p = beside_self({"/husk-image", "/../image/husk-image"}); !p.empty()) return p;
  for (const char* p : {"/usr/local/bin/husk-image", "/usr/bin/husk-image"})
    if (access(p, X_OK) == 0) return p;
  return "husk-image";
}

Result<Captured> run_streaming(const std::vector<std::string>& argv, const std::string& stdin_data, int timeout_ms,
                               const std::function<void(const std::string& line)>& on_stderr_line,
                               const std::function<void()>& on_idle) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) < 0) return fail_sys("pipe for ", argv[0]);
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (pipe2(out, O_CLOEXEC) < 0) return fail_sys("pipe for ", argv[0]);
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (pipe2(err, O_CLOEXEC) < 0) return fail_sys("pipe for ", argv[0]);
  UniqueFd err_r(err[0]), err_w(err[1]);
  SpawnOptions so;
  so.stdin_fd = in_r.get();
  so.stdout_fd = out_w.get();
  so.stderr_fd = err_w.get();
  so.new_session = false;  // ours to wait for; it does not outlive the call
  pid_t pid = TRY(spawn(argv, so));
  in_r.reset();
  out_w.reset();
  err_w.reset();
  // Small (credentials): the pipe takes it whole, then EOF.
  if (!stdin_data.empty() && write(in_w.get(), stdin_data.data(), stdin_data.size()) < 0) {
  }
  in_w.reset();
  Captured c;
  std::string partial;
  auto take = [&](std::string_view chunk) {
    c.err.append(chunk);
    partial.append(chunk);
    for (size_t nl; (nl = partial.find('\n')) != std::string::npos;) {
      std::string line = partial.substr(0, nl);
      partial.erase(0, nl + 1);
      if (on_stderr_line) on_stderr_line(line);
    }
  };
  int64_t deadline = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;
  int64_t next_idle = monotonic_ms() + 1000;
  while (out_r || err_r) {
    struct pollfd p[2];
    nfds_t n = 0;
    if (out_r) p[n++] = {out_r.get(), POLLIN, 0};
    if (err_r) p[n++] = {err_r.get(), POLLIN, 0};
    int rc = poll(p, n, 200);
    if (rc < 0 && errno != EINTR) break;
    for (nfds_t i = 0; rc > 0 && i < n; ++i) {
      if (!p[i].revents) continue;
      char buf[8192];
      ssize_t got = read(p[i].fd, buf, sizeof buf);
      if (got < 0 && errno == EINTR) continue;
      bool is_out = out_r && p[i].fd == out_r.get();
      if (got <= 0) {
        (is_out ? out_r : err_r).reset();
        continue;
      }
      if (is_out)
        c.out.append(buf, static_cast<size_t>(got));
      else
        take(std::string_view(buf, static_cast<size_t>(got)));
    }
    int64_t now = monotonic_ms();
    if (deadline >= 0 && now > deadline) {
      kill(pid, SIGKILL);
      c.timed_out = true;
      break;
    }
    if (now >= next_idle) {
      next_idle = now + 1000;
      if (on_idle) on_idle();
    }
  }
  if (!partial.empty() && on_stderr_line) on_stderr_line(partial);
  while (waitpid(pid, &c.status, 0) < 0) {
    if (errno != EINTR) return fail_sys("wait for ", argv[0]);
  }
  return c;
}

std::string husk_binary() {
  if (const char* env = getenv("HUSK_BINARY"); env && *env) return env;
  if (std::string p = beside_self({"/husk", "/../cli/husk"}); !p.empty()) return p;
  for (const char* p : {"/usr/local/bin/husk", "/usr/bin/husk"})
    if (access(p, X_OK) == 0) return p;
  return "husk";
}

}  // namespace husk::driver
