#include "driver/log.h"

#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <mutex>

#include "oci/json_writer.h"

namespace husk::driver {

void log_line(const char* level, const std::string& message) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[64];
  snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000);
  oci::JsonWriter w(false);
  w.begin_object().key("@level").str(level).key("@message").str(message).key("@module").str("husk");
  w.key("@timestamp").str(when).end_object();
  std::string line = w.take() + "\n";
  static std::mutex mu;
  std::lock_guard<std::mutex> l(mu);
  (void)!write(2, line.data(), line.size());
}

}  // namespace husk::driver
