#include "runtime/terminal.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>

#include "runtime/sync.h"

namespace husk::runtime {

Result<Pty> open_pty(const std::string& ptmx_path) {
  Pty pty;
  pty.master = TRY(open_fd(ptmx_path, O_RDWR | O_NOCTTY));
  if (unlockpt(pty.master.get()) < 0) return fail_sys("unlockpt ", ptmx_path);
  int slave = ioctl(pty.master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) return fail_sys("open the pty peer of ", ptmx_path);
  pty.slave.reset(slave);
  return pty;
}

Result<> set_window_size(int fd, unsigned rows, unsigned cols) {
  struct winsize ws = {};
  ws.ws_row = static_cast<unsigned short>(rows);
  ws.ws_col = static_cast<unsigned short>(cols);
  if (ioctl(fd, TIOCSWINSZ, &ws) < 0) return fail_sys("set terminal size");
  return {};
}

Result<> attach_terminal(int slave_fd) {
  if (setsid() < 0) return fail_sys("setsid");
  if (ioctl(slave_fd, TIOCSCTTY, 0) < 0) return fail_sys("make the pty the controlling terminal");
  for (int i = 0; i < 3; ++i)
    if (dup2(slave_fd, i) < 0) return fail_sys("dup2 pty to fd ", i);
  return {};
}

Result<> send_console(const std::string& socket_path, int master_fd) {
  UniqueFd sock = TRY_CTX(connect_unix(socket_path), "--console-socket");
  TRYV_CTX(send_fd(sock.get(), master_fd, "/dev/ptmx"), "send pty to console socket ", socket_path);
  return {};
}

Result<> proxy_terminal(int master_fd, int pidfd) {
  struct termios saved;
  bool raw = isatty(0) && tcgetattr(0, &saved) == 0;
  if (raw) {
    struct termios t = saved;
    cfmakeraw(&t);
    tcsetattr(0, TCSANOW, &t);
    struct winsize ws;
    if (ioctl(0, TIOCGWINSZ, &ws) == 0) ioctl(master_fd, TIOCSWINSZ, &ws);
  }
  bool stdin_open = true, exited = false;
  char buf[16384];
  for (;;) {
    struct pollfd fds[3] = {{master_fd, POLLIN, 0}, {stdin_open ? 0 : -1, POLLIN, 0}, {pidfd, POLLIN, 0}};
    int n = poll(fds, 3, exited ? 100 : -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (n == 0) break;  // exited and the master stayed quiet: drained
    if (fds[0].revents & POLLIN) {
      ssize_t r = read(master_fd, buf, sizeof buf);
      if (r > 0) (void)write_all(1, std::string_view(buf, static_cast<size_t>(r)));
      else break;
    } else if (fds[0].revents & (POLLHUP | POLLERR)) {
      break;
    }
    if (fds[1].revents & (POLLIN | POLLHUP)) {
      ssize_t r = read(0, buf, sizeof buf);
      if (r > 0) (void)write_all(master_fd, std::string_view(buf, static_cast<size_t>(r)));
      else stdin_open = false;
    }
    if (fds[2].revents & POLLIN) exited = true;
  }
  if (raw) tcsetattr(0, TCSANOW, &saved);
  return {};
}

}  // namespace husk::runtime
