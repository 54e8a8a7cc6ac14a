// syslog over tcp+tls://: docker's syslog driver's messages over a TLS
// connection, RFC 5425 length-framed for the rfc5424 formats.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/log_sink.h"

namespace husk::logs {

// The syslog driver's options (runtime/log_syslog.h) with a tcp+tls://
// address: connects and makes the handshake; errors name the option.
Result<std::unique_ptr<runtime::LogSink>> open_syslog_tls(const std::vector<std::string>& opts,
                                                          const std::string& container_id);

}  // namespace husk::logs
