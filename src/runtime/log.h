// Runtime logging in the shapes podman/conmon and containerd read: errors
// go to stderr as one line ("husk: ..."), and to --log FILE as text
// (crun's) or JSON lines ({"level":"error","msg":"...","time":"..."}).
#pragma once

#include <string>

namespace husk::log {

enum class Level { Debug, Info, Warning, Error };
enum class Format { Text, Json };

// Configure once from the global flags. An unopenable log file is reported
// on stderr and logging continues to stderr only.
void configure(const std::string& path, Format format, Level level);
bool parse_level(const std::string& s, Level* out);

void write(Level level, const std::string& msg);
inline void debug(const std::string& m) { write(Level::Debug, m); }
inline void info(const std::string& m) { write(Level::Info, m); }
inline void warning(const std::string& m) { write(Level::Warning, m); }
inline void error(const std::string& m) { write(Level::Error, m); }

// JSON string escaping, shared with the few places that build small JSON.
std::string json_escape(const std::string& s);
// Now in UTC, RFC 3339 with nanoseconds ("2026-12-03T09:00:00.123456789Z").
std::string rfc3339_now();

}  // namespace husk::log
