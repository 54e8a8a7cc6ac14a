// The journald and syslog log drivers' options (log_forward.h lists them)
// and syslog's messages: the local format, RFC 3164 and RFC 5424, framed
// for the transport as docker's syslog driver frames them. Shared by
// husk's forwarder and husk-log (syslog over tcp+tls).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"
#include "runtime/log_forward.h"
#include "runtime/log_sink.h"

namespace husk::runtime {

enum class SyslogFormat { kUnix, kRfc3164, kRfc5424, kRfc5424Micro };

struct SyslogConfig {
  bool journald = false;
  Endpoint endpoint;
  std::string id, tag, name;
  std::vector<std::pair<std::string, std::string>> fields;  // journald extras
  int facility = 3;
  SyslogFormat format = SyslogFormat::kUnix;
  bool local_syslog = false;  // no address: /dev/log, datagram first, then stream
  // tcp+tls:// (husk-log sends it): the certificate's name, and the
  // tls-ca-cert, tls-cert, tls-key and tls-skip-verify options.
  bool tls = false;
  std::string tls_host, tls_ca_cert, tls_cert, tls_key;
  bool tls_skip_verify = false;
};

// Checks the options of `d` (journald or syslog); errors name --log-opt KEY.
Result<SyslogConfig> parse_syslog_config(const LogDriver& d, const std::string& id);

// Now, as the format writes it.
std::string syslog_time(SyslogFormat f);

// One line as a syslog message from `host`, framed for c's transport.
std::string syslog_message(const SyslogConfig& c, const std::string& host, LogStream s, std::string_view text);

}  // namespace husk::runtime
