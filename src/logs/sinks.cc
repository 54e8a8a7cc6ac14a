#include "logs/sinks.h"

#include "logs/awslogs.h"
#include "logs/splunk.h"
#include "logs/syslog_tls.h"

namespace husk::logs {

Result<std::unique_ptr<runtime::LogSink>> open_sink(const std::string& driver, const std::vector<std::string>& opts,
                                                    const std::string& container_id) {
  if (driver == "splunk") return open_splunk(opts, container_id);
  if (driver == "syslog") return open_syslog_tls(opts, container_id);
  if (driver == "awslogs") return open_awslogs(opts, container_id);
  return fail_msg("--log-driver: \"", driver,
                  "\" is not a log driver husk-log has (splunk, awslogs, syslog over tcp+tls)");
}

}  // namespace husk::logs
