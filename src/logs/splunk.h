// The splunk log driver: each line as an HTTP Event Collector event, in
// docker's splunk driver's shapes (inline, json, raw), posted in batches
// to <splunk-url>/services/collector/event/1.0 with the token.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/log_sink.h"

namespace husk::logs {

// Options (--log-opt KEY=VALUE, docker's splunk-KEY without "splunk-"):
// url (scheme://HOST:PORT, no path; required), token (required), source,
// sourcetype, index, capath (a PEM file of CAs), caname (the name the
// certificate must have), insecureskipverify, format (inline, json, raw;
// default inline), verify-connection (default true: an OPTIONS request
// that must answer 200 before the container starts), gzip, gzip-level
// (-1 to 9), tag (default the first 12 characters of the id; empty for
// none), field=NAME=VALUE (repeatable: the event's attrs). Batches go every
// SPLUNK_LOGGING_DRIVER_POST_MESSAGES_FREQUENCY (a Go duration, default
// 5s) or at SPLUNK_LOGGING_DRIVER_POST_MESSAGES_BATCH_SIZE events (1000),
// at most SPLUNK_LOGGING_DRIVER_BUFFER_MAX (10000) waiting, as docker's.
Result<std::unique_ptr<runtime::LogSink>> open_splunk(const std::vector<std::string>& opts,
                                                      const std::string& container_id);

// One event's JSON as docker's splunk driver writes it, for tests.
struct SplunkEventShape {
  std::string format = "inline";  // inline, json or raw
  std::string host, source, sourcetype, index, tag;
  std::vector<std::pair<std::string, std::string>> attrs;  // sorted by name
};
std::string splunk_event(const SplunkEventShape& s, std::string_view line, bool is_stderr, long long sec, long usec);

}  // namespace husk::logs
