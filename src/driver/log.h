// The plugin's log: hclog JSON lines on stderr, which the Nomad agent reads
// and re-logs at the level given ("@level", "@message", "@timestamp").
#pragma once

#include <string>

namespace husk::driver {

void log_line(const char* level, const std::string& message);
inline void log_debug(const std::string& m) { log_line("debug", m); }
inline void log_info(const std::string& m) { log_line("info", m); }
inline void log_warn(const std::string& m) { log_line("warn", m); }
inline void log_error(const std::string& m) { log_line("error", m); }

}  // namespace husk::driver
