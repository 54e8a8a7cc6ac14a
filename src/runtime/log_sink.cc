#include "runtime/log_sink.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/time.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

namespace husk::runtime {

Result<UniqueFd> Endpoint::connect(int timeout_ms) const {
  int fd = ::socket(addr.ss_family, socktype | SOCK_CLOEXEC | (timeout_ms >= 0 ? SOCK_NONBLOCK : 0), 0);
  if (fd < 0) return fail_sys("socket for ", name);
  UniqueFd s(fd);
  if (::connect(fd, reinterpret_cast<const struct sockaddr*>(&addr), len) == 0) {
  } else if (timeout_ms < 0 || errno != EINPROGRESS) {
    return fail_sys("connect to ", name);
  } else {
    struct pollfd p = {fd, POLLOUT, 0};
    int n;
    while ((n = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    int err = 0;
    socklen_t elen = sizeof err;
    if (n == 0)
      err = ETIMEDOUT;
    else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
      err = errno;
    if (err != 0) return fail_errno(err, "connect to ", name);
  }
  if (timeout_ms >= 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) return fail_sys("connect to ", name);
  return s;
}

Result<Endpoint> unix_endpoint(const std::string& path, int socktype, const std::string& name) {
  Endpoint e;
  struct sockaddr_un un {};
  un.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof un.sun_path)
    return fail_msg(name, ": a socket path must be 1 to ", sizeof un.sun_path - 1, " bytes");
  memcpy(un.sun_path, path.data(), path.size());
  memcpy(&e.addr, &un, sizeof un);
  e.len = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + path.size() + 1);
  e.socktype = socktype;
  e.name = name;
  return e;
}

Result<Endpoint> inet_endpoint(const std::string& hostport, int default_port, int socktype, const std::string& name,
                               const std::string& what) {
  std::string host = hostport, port = default_port > 0 ? std::to_string(default_port) : "";
  if (!hostport.empty() && hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string::npos) return fail_msg(what, ": \"", name, "\": missing ']'");
    host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') return fail_msg(what, ": \"", name, "\": expected ':' after ']'");
      port = hostport.substr(close + 2);
    }
  } else if (size_t colon = hostport.rfind(':'); colon != std::string::npos) {
    host = hostport.substr(0, colon);
    port = hostport.substr(colon + 1);
  }
  if (host.empty()) return fail_msg(what, ": \"", name, "\" names no host");
  if (port.empty() && default_port <= 0) return fail_msg(what, ": \"", name, "\" names no port");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) == 0 || std::stoul(port) > 65535)
    return fail_msg(what, ": \"", name, "\": the port must be 1-65535, not \"", port, "\"");
  struct addrinfo hints {
  }, *res = nullptr;
  hints.ai_socktype = socktype;
  hints.ai_flags = AI_NUMERICSERV;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return fail_msg(what, ": \"", name, "\": cannot resolve ", host, ": ", gai_strerror(rc));
  Endpoint e;
  memcpy(&e.addr, res->ai_addr, res->ai_addrlen);
  e.len = res->ai_addrlen;
  e.socktype = socktype;
  e.name = name;
  freeaddrinfo(res);
  return e;
}

Result<std::pair<std::string, std::string>> split_log_opt(const std::string& kv) {
  size_t eq = kv.find('=');
  if (eq == std::string::npos) return fail_msg("--log-opt \"", kv, "\": expected KEY=VALUE");
  return std::pair{kv.substr(0, eq), kv.substr(eq + 1)};
}

Result<std::pair<std::string, std::string>> split_field_opt(const std::string& v, const std::string& what) {
  size_t eq = v.find('=');
  if (eq == std::string::npos || eq == 0) return fail_msg(what, "=", v, ": expected NAME=VALUE with a NAME");
  return std::pair{v.substr(0, eq), v.substr(eq + 1)};
}

Result<bool> parse_log_bool(const std::string& v, const std::string& what) {
  for (const char* t : {"1", "t", "T", "TRUE", "true", "True"})
    if (v == t) return true;
  for (const char* f : {"0", "f", "F", "FALSE", "false", "False"})
    if (v == f) return false;
  return fail_msg(what, ": \"", v, "\" is not a boolean (true, false, 1, 0)");
}

Result<long long> parse_log_int(const std::string& v, long long min, long long max, const std::string& what) {
  std::string digits = v.starts_with('-') ? v.substr(1) : v;
  if (digits.empty() || digits.size() > 18 || digits.find_first_not_of("0123456789") != std::string::npos)
    return fail_msg(what, ": \"", v, "\" is not an integer");
  long long n = std::stoll(v);
  if (n < min || n > max) return fail_msg(what, ": ", n, " is not in ", min, "..", max);
  return n;
}

bool send_message(int fd, int socktype, std::string_view msg) {
  if (fd < 0) return false;
  for (size_t off = 0; off < msg.size() || msg.empty();) {
    ssize_t n = ::send(fd, msg.data() + off, msg.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    off += static_cast<size_t>(n);
    if (socktype == SOCK_DGRAM || msg.empty()) break;
  }
  return true;
}

// The text with every byte that is not part of valid UTF-8 as U+FFFD, as
// Go's encoding/json writes docker's messages: JSON is UTF-8, and GELF
// receivers refuse a message that is not.
namespace {

class SocketConnection : public LogConnection {
 public:
  explicit SocketConnection(UniqueFd fd) : fd_(std::move(fd)) {}

  bool write_all(std::string_view data) override {
    if (send_message(fd_.get(), SOCK_STREAM, data)) return true;
    why_ = strerror(errno);
    return false;
  }

  long read_some(char* buf, size_t n, int timeout_ms) override {
    for (;;) {
      struct pollfd p = {fd_.get(), POLLIN, 0};
      int ready = poll(&p, 1, timeout_ms);
      if (ready < 0 && errno == EINTR) continue;
      if (ready <= 0) {
        why_ = ready == 0 ? "timed out" : strerror(errno);
        return -1;
      }
      ssize_t got = ::recv(fd_.get(), buf, n, 0);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) why_ = strerror(errno);
      return got;
    }
  }

  std::string why() const override { return why_; }

 private:
  UniqueFd fd_;
  std::string why_;
};

}  // namespace

Result<std::unique_ptr<LogConnection>> connect_stream(const Endpoint& e, int connect_timeout_ms, long send_timeout_ms) {
  UniqueFd fd = TRY(e.connect(connect_timeout_ms));
  if (send_timeout_ms > 0) {
    struct timeval tv = {static_cast<time_t>(send_timeout_ms / 1000),
                         static_cast<suseconds_t>((send_timeout_ms % 1000) * 1000)};
    setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  return std::unique_ptr<LogConnection>(std::make_unique<SocketConnection>(std::move(fd)));
}

std::string host_of(const std::string& hostport) {
  if (!hostport.empty() && hostport[0] == '[') return hostport.substr(1, hostport.find(']') - 1);
  size_t colon = hostport.find(':');
  // one colon: HOST:PORT; none or several (a bare v6 address): all of it
  return colon != std::string::npos && hostport.find(':', colon + 1) == std::string::npos ? hostport.substr(0, colon)
                                                                                          : hostport;
}

std::string valid_utf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size();) {
    auto b = [&](size_t k) { return static_cast<unsigned char>(in[k]); };
    unsigned char c = b(i);
    size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    bool ok = n > 0 && i + n <= in.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (b(i + k) & 0xc0) == 0x80;
    // no overlong forms, surrogates or code points past U+10FFFF
    if (ok && n == 3) ok = !(c == 0xe0 && b(i + 1) < 0xa0) && !(c == 0xed && b(i + 1) >= 0xa0);
    if (ok && n == 4) ok = !(c == 0xf0 && b(i + 1) < 0x90) && !(c == 0xf4 && b(i + 1) >= 0x90);
    if (!ok) {
      out += "\xef\xbf\xbd";
      ++i;
      continue;
    }
    out.append(in.substr(i, n));
    i += n;
  }
  return out;
}

}  // namespace husk::runtime
