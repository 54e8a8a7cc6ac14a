// docker's and podman's log drivers as husk's: journald, syslog, gelf,
// fluentd, splunk, awslogs and gcplogs become `husk run --log-driver` of the
// task's monitor (runtime/log_forward.h), with docker's options translated
// (tag templates, labels and env as journal, GELF, record fields or entry
// metadata); "none" and
// disable_log_collection keep the output from Nomad's log files.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace husk::driver {

// What a docker log tag template can name ({{.ID}}, {{.FullID}},
// {{.Name}}, {{.ImageName}}, {{.ImageID}}, {{.ImageFullID}},
// {{.DaemonName}}).
struct LogTemplateValues {
  std::string id;          // the container id
  std::string name;        // the docker name: <task>-<alloc id>
  std::string image_name;  // as the task names it
  std::string image_id;    // "sha256:<hex>", or ""
  std::string command;     // docker's Command(): the argv joined by spaces (gelf's _command)
};

Result<std::string> expand_log_tag(const std::string& tmpl, const LogTemplateValues& v, std::string_view field);

struct LogPlan {
  std::string driver;              // husk's --log-driver; "" for none
  std::vector<std::string> opts;   // husk's --log-opt KEY=VALUE
};

// docker `logging { type, config }` for journald, syslog, gelf, fluentd,
// splunk, awslogs and gcplogs (whose options are docker's without the
// driver's prefix).
// `labels` are the container's labels and `env` its environment ("K=V"),
// for the labels/env(-regex) options (not syslog's, as in docker). Errors
// name `field`.config.KEY.
Result<LogPlan> docker_log_plan(const std::string& type, const std::vector<std::pair<std::string, std::string>>& config,
                                const LogTemplateValues& v, const std::map<std::string, std::string>& labels,
                                const std::vector<std::string>& env, std::string_view field);

}  // namespace husk::driver
