#include "runtime/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>

#include "common/fd.h"
#include "oci/json_writer.h"

namespace husk::log {
namespace {

int g_fd = -1;
Format g_format = Format::Text;
Level g_level = Level::Warning;

const char* level_name(Level l) {
  switch (l) {
    case Level::Debug: return "debug";
    case Level::Info: return "info";
    case Level::Warning: return "warning";
    case Level::Error: return "error";
  }
  return "error";
}

}  // namespace

std::string rfc3339_now() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + n, sizeof buf - n, ".%09ldZ", ts.tv_nsec);
  return buf;
}

void configure(const std::string& path, Format format, Level level) {
  g_format = format;
  g_level = level;
  if (path.empty()) return;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::string m = "husk: open log file " + path + ": " + strerror(errno) + "\n";
    (void)!::write(2, m.data(), m.size());
    return;
  }
  g_fd = fd;
}

bool parse_level(const std::string& s, Level* out) {
  if (s == "debug") *out = Level::Debug;
  else if (s == "info") *out = Level::Info;
  else if (s == "warn" || s == "warning") *out = Level::Warning;
  else if (s == "error") *out = Level::Error;
  else return false;
  return true;
}

std::string json_escape(const std::string& s) {
  std::string quoted = oci::json_quote(s);
  return quoted.substr(1, quoted.size() - 2);
}

void write(Level level, const std::string& msg) {
  if (level < g_level) return;
  // stderr always gets errors and warnings (one line each); a log file gets
  // everything at or above the level.
  if (level >= Level::Warning || g_fd < 0) {
    std::string line = std::string("husk: ") + (level == Level::Warning ? "warning: " : "") + msg + "\n";
    (void)write_all(2, line);
  }
  if (g_fd < 0) return;
  std::string line;
  if (g_format == Format::Json) {
    line = "{\"level\":\"" + std::string(level_name(level)) + "\",\"msg\":\"" + json_escape(msg) +
           "\",\"time\":\"" + rfc3339_now() + "\"}\n";
  } else {
    line = rfc3339_now() + " " + level_name(level) + ": " + msg + "\n";
  }
  (void)write_all(g_fd, line);
}

}  // namespace husk::log
