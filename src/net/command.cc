#include "net/command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "common/fd.h"

namespace husk::net {

Result<std::string> find_program(const std::string& name, const std::string& package) {
  const char* env = getenv("PATH");
  std::string path = cat(env ? env : "/usr/local/bin:/usr/bin:/bin", ":/usr/sbin:/sbin");
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t colon = path.find(':', pos);
    if (colon == std::string::npos) colon = path.size();
    std::string dir = path.substr(pos, colon - pos);
    pos = colon + 1;
    if (dir.empty()) continue;
    std::string full = dir + "/" + name;
    if (access(full.c_str(), X_OK) == 0) return full;
  }
  return fail_errno(ENOENT, name, " is not installed (Debian package \"", package, "\"): not found in $PATH");
}

Result<std::string> run_program(const std::vector<std::string>& argv, const std::string& input) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) < 0) return fail_sys("pipe");
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (pipe2(out, O_CLOEXEC) < 0) return fail_sys("pipe");
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (pipe2(err, O_CLOEXEC) < 0) return fail_sys("pipe");
  UniqueFd err_r(err[0]), err_w(err[1]);
  std::vector<char*> av;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return fail_sys("fork for ", argv[0]);
  if (pid == 0) {
    dup2(in_r.get(), 0);
    dup2(out_w.get(), 1);
    dup2(err_w.get(), 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(av[0], av.data());
    _exit(127);
  }
  in_r.reset();
  out_w.reset();
  err_w.reset();
  // Small inputs and outputs: write all, then read both to EOF.
  struct sigaction ign = {}, old = {};
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, &old);
  (void)write_all(in_w.get(), input);
  in_w.reset();
  sigaction(SIGPIPE, &old, nullptr);
  std::string stdout_text, stderr_text;
  struct pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
  int open_count = 2;
  char buf[8192];
  while (open_count > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0)
        (i == 0 ? stdout_text : stderr_text).append(buf, static_cast<size_t>(n));
      else {
        fds[i].fd = -1;
        --open_count;
      }
    }
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return fail_sys("wait for ", argv[0]);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return stdout_text;
  while (!stderr_text.empty() && (stderr_text.back() == '\n' || stderr_text.back() == ' ')) stderr_text.pop_back();
  for (auto& c : stderr_text)
    if (c == '\n') c = ' ';
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && stderr_text.empty())
    return fail_errno(ENOENT, "run ", argv[0], ": cannot execute it");
  return fail_msg(argv[0], " failed (",
                  WIFEXITED(status) ? cat("exit ", WEXITSTATUS(status)) : cat("signal ", WTERMSIG(status)), ")",
                  stderr_text.empty() ? "" : ": ", stderr_text);
}

}  // namespace husk::net
