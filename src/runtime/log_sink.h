// What the log forwarder (runtime/log_forward.h) sends lines to: a sink per
// log driver, and the socket addresses those drivers name. A sink is made
// (options checked, destination opened) before the forwarder forks, so that
// a bad option or an unreachable destination fails `husk run` before the
// container exists; the forwarder then hands it every line.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/fd.h"

namespace husk::runtime {

enum class LogStream { kOut, kErr };

class LogSink {
 public:
  virtual ~LogSink() = default;
  // One line of the container's output, without its '\n'; `partial` when
  // the line went on past kMaxLogLine and the rest comes in the next call.
  virtual void line(LogStream s, std::string_view text, bool partial) = 0;
  // How long the forwarder may wait for output before calling tick()
  // (-1: no limit), for a sink that retries in the background.
  virtual int wait_ms() const { return -1; }
  virtual void tick() {}
  // The container's output has ended: send what is left, within reason.
  virtual void close() {}
};

// A line longer than this goes out in pieces.
constexpr size_t kMaxLogLine = 16 * 1024;

// A socket address, connected again after a failed send.
struct Endpoint {
  int socktype = SOCK_DGRAM;
  struct sockaddr_storage addr {};
  socklen_t len = 0;
  std::string name;  // for messages: "udp://127.0.0.1:514"

  // A blocking socket; with timeout_ms >= 0 the connect itself gives up
  // after that long (ETIMEDOUT).
  Result<UniqueFd> connect(int timeout_ms = -1) const;
};

// HOST[:PORT] or [V6]:PORT, resolved now; `what` names the option in errors.
Result<Endpoint> inet_endpoint(const std::string& hostport, int default_port, int socktype, const std::string& name,
                               const std::string& what);
Result<Endpoint> unix_endpoint(const std::string& path, int socktype, const std::string& name);

// A connected byte stream to a log destination: a socket here, TLS over
// one in husk-log (which links OpenSSL; husk does not).
class LogConnection {
 public:
  virtual ~LogConnection() = default;
  // All of `data`, or false with why() set.
  virtual bool write_all(std::string_view data) = 0;
  // Up to `n` bytes within timeout_ms: their count, 0 at the end of the
  // stream, -1 on an error or the timeout (why() says which).
  virtual long read_some(char* buf, size_t n, int timeout_ms) = 0;
  virtual std::string why() const = 0;
  // The last write is done: end the stream so the receiver reads it all.
  virtual void finish() {}
};

// A stream socket as a LogConnection; send_timeout_ms > 0 bounds a write.
Result<std::unique_ptr<LogConnection>> connect_stream(const Endpoint& e, int connect_timeout_ms, long send_timeout_ms);

// The host of HOST[:PORT] or [V6][:PORT].
std::string host_of(const std::string& hostport);

// A --log-opt KEY=VALUE split at its first '='.
Result<std::pair<std::string, std::string>> split_log_opt(const std::string& kv);
// field=NAME=VALUE (gelf, fluentd, splunk): NAME and VALUE; `what` is
// "--log-opt field".
Result<std::pair<std::string, std::string>> split_field_opt(const std::string& v, const std::string& what);
// Go's strconv.ParseBool, which docker's options go through.
Result<bool> parse_log_bool(const std::string& v, const std::string& what);
Result<long long> parse_log_int(const std::string& v, long long min, long long max, const std::string& what);

// Writes all of `msg` to a stream socket, or one datagram.
bool send_message(int fd, int socktype, std::string_view msg);

// The text with every byte that is not part of valid UTF-8 as U+FFFD, as
// Go's encoding/json writes docker's messages (GELF, splunk).
std::string valid_utf8(std::string_view in);

}  // namespace husk::runtime
