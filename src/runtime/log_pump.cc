#include "runtime/log_pump.h"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

namespace husk::runtime {

void pump_log_lines(LogSink& sender, int in_out, int in_err) {
  struct Input {
    int fd;
    int copy_to;
    LogStream stream;
    std::string pending;
    bool copying = true;
  } in[2] = {{in_out, 1, LogStream::kOut, {}, true}, {in_err, 2, LogStream::kErr, {}, true}};
  char buf[65536];
  int open = 2;
  while (open > 0) {
    struct pollfd p[2] = {{in[0].fd, POLLIN, 0}, {in[1].fd, POLLIN, 0}};
    int ready = poll(p, 2, sender.wait_ms());
    if (ready < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    sender.tick();
    for (int i = 0; i < 2; ++i) {
      if (in[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(in[i].fd, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      Input& x = in[i];
      if (n <= 0) {
        if (!x.pending.empty()) sender.line(x.stream, x.pending, false);
        ::close(x.fd);
        x.fd = -1;
        --open;
        continue;
      }
      std::string_view chunk(buf, static_cast<size_t>(n));
      // The reader of our own stdout may go away (a closed terminal): the
      // log driver still gets every line.
      if (x.copying && !write_all(x.copy_to, chunk)) x.copying = false;
      x.pending.append(chunk);
      size_t start = 0;
      for (size_t nl; (nl = x.pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        for (size_t at = start; at < nl; at += kMaxLogLine) {
          size_t len = std::min(kMaxLogLine, nl - at);
          sender.line(x.stream, std::string_view(x.pending).substr(at, len), at + len < nl);
        }
        if (start == nl) sender.line(x.stream, "", false);
      }
      x.pending.erase(0, start);
      while (x.pending.size() >= kMaxLogLine) {
        sender.line(x.stream, std::string_view(x.pending).substr(0, kMaxLogLine), true);
        x.pending.erase(0, kMaxLogLine);
      }
    }
  }
  sender.close();
  _exit(0);
}

}  // namespace husk::runtime
