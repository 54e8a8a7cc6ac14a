#include "runtime/notify.h"

#include <fcntl.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace husk::runtime {
namespace {

// sockaddr_un for "/path" or "@abstract"; false when it does not fit.
bool make_addr(const std::string& name, struct sockaddr_un& addr, socklen_t& len) {
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (name.size() >= sizeof addr.sun_path) return false;
  memcpy(addr.sun_path, name.data(), name.size());
  if (name[0] == '@') addr.sun_path[0] = '\0';
  len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + name.size() + (name[0] == '@' ? 0 : 1));
  return true;
}

std::string without_mainpid(const std::string& msg) {
  std::string out;
  size_t pos = 0;
  while (pos < msg.size()) {
    size_t nl = msg.find('\n', pos);
    std::string line = msg.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? msg.size() : nl + 1;
    if (line.starts_with("MAINPID=") || line.empty()) continue;
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string notify_target() {
  const char* s = getenv("NOTIFY_SOCKET");
  if (!s || (s[0] != '/' && s[0] != '@') || !s[1]) return "";
  return s;
}

Result<NotifyRelay> NotifyRelay::open(const std::string& path, const std::string& target) {
  struct sockaddr_un addr;
  socklen_t len;
  // A path past sun_path's 108 bytes (a deep --root, long container ids)
  // is bound through its directory's fd: /proc/self/fd/N/notify.sock.
  UniqueFd dir;
  if (!make_addr(path, addr, len)) {
    size_t slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      int d = ::open(path.substr(0, slash).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (d >= 0) dir = UniqueFd(d);
    }
    if (!dir || !make_addr(cat("/proc/self/fd/", dir.get(), path.substr(slash)), addr, len))
      return fail_errno(ENAMETOOLONG, "NOTIFY_SOCKET relay: socket path ", path, " is too long (use a shorter --root)");
  }
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return fail_sys("NOTIFY_SOCKET relay: socket");
  UniqueFd sock(fd);
  if (::bind(fd, reinterpret_cast<struct sockaddr*>(&addr), len) < 0)
    return fail_sys("NOTIFY_SOCKET relay: bind ", path);
  if (::chmod(path.c_str(), 0666) < 0) return fail_sys("NOTIFY_SOCKET relay: chmod ", path);
  return NotifyRelay(std::move(sock), path, target);
}

void NotifyRelay::forward() {
  char buf[4096];
  for (;;) {
    ssize_t n = ::recv(sock_.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN: all forwarded
    std::string msg = without_mainpid(std::string(buf, static_cast<size_t>(n)));
    if (msg.empty()) continue;
    struct sockaddr_un addr;
    socklen_t len;
    if (!make_addr(target_, addr, len)) return;
    int out = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (out < 0) return;
    // Best effort, like sd_notify: a lost message must not stop the container.
    (void)!::sendto(out, msg.data(), msg.size(), MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&addr), len);
    ::close(out);
  }
}

}  // namespace husk::runtime
