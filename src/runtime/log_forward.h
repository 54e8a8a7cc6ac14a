// Log drivers for a foreground `husk run` (the monitor the Nomad driver
// keeps per task): a forwarder process reads the container's stdout and
// stderr from two pipes, copies every byte to the monitor's own stdout and
// stderr (Nomad's log FIFOs, a terminal), and sends each line to journald
// (its native protocol), a syslog receiver, a GELF receiver (log_gelf.h) or
// fluentd (log_fluentd.h), as docker's log drivers of those names do.
// conmon does the same job for podman. The drivers that need TLS or HTTP
// (splunk, awslogs, gcplogs, syslog over tcp+tls, fluentd over tls) are husk-log's
// (src/logs): the forwarder execs it, so husk never links libcurl or
// OpenSSL.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/fd.h"

namespace husk::runtime {

struct LogDriver {
  std::string name;               // journald, syslog, gelf, fluentd, splunk, awslogs, gcplogs; "" for none
  std::vector<std::string> opts;  // --log-opt KEY=VALUE, in order
};

// journald: tag (SYSLOG_IDENTIFIER and CONTAINER_TAG; default the first 12
//   characters of the id), name (CONTAINER_NAME; default the id), and
//   field=NAME=VALUE (repeatable) for extra journal fields.
// syslog: address (udp://HOST[:PORT], tcp://HOST[:PORT],
//   tcp+tls://HOST[:PORT], unix://PATH, unixgram://PATH; default the local
//   /dev/log), facility (a name or 0-23; default daemon), format ("" for
//   the local format, rfc3164, rfc5424, rfc5424micro), tag (default the
//   first 12 characters of the id); with tcp+tls, tls-ca-cert, tls-cert and
//   tls-key (PEM files) and tls-skip-verify; rfc5424 over TLS is RFC 5425
//   length-framed, as docker frames it.
// stdout lines go at priority info, stderr lines at err.
// gelf and fluentd: see open_gelf and open_fluentd; splunk, awslogs and gcplogs:
// logs/splunk.h, logs/awslogs.h and logs/gcplogs.h.
class LogForwarder {
 public:
  LogForwarder() = default;
  LogForwarder(LogForwarder&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)), saved_out_(std::move(o.saved_out_)), saved_err_(std::move(o.saved_err_)) {}
  LogForwarder& operator=(LogForwarder&&) = delete;
  ~LogForwarder() { finish(1000); }

  // Checks the options, opens the destination (so that an unreachable one
  // is an error before any container exists; husk-log does both and says
  // "ok" on a status pipe), forks the forwarder and puts
  // the pipes' write ends on this process's fds 1 and 2, for the container
  // to inherit. Errors name the option (--log-opt KEY).
  static Result<LogForwarder> start(const LogDriver& d, const std::string& container_id);

  // Puts the original fds 1 and 2 back, which closes this process's write
  // ends, and waits up to `timeout_ms` for the forwarder to send what is
  // left and exit (a process of the container that still holds a pipe
  // keeps it going; it is then left to finish on its own).
  void finish(int timeout_ms);

 private:
  pid_t pid_ = -1;
  UniqueFd saved_out_, saved_err_;
};

}  // namespace husk::runtime
