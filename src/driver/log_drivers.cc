#include "driver/log_drivers.h"

#include <regex>
#include <set>

#include "runtime/log_sink.h"

namespace husk::driver {
namespace {

// docker's journald field names from label and env keys: upper case, any
// other character than A-Z and 0-9 an underscore, leading underscores
// dropped (journald keeps those for its own fields).
std::string journal_key(std::string_view s) {
  std::string n;
  for (char c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    else if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) c = '_';
    if (!(n.empty() && c == '_')) n.push_back(c);
  }
  if (n.size() > 64) n.resize(64);
  if (!n.empty() && n[0] >= '0' && n[0] <= '9') n.clear();  // journald refuses these
  return n;
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == ',') {
      if (i > start) out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  return out;
}

Result<std::regex> compile(const std::string& re, std::string_view field) {
  try {
    return std::regex(re, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return fail_msg(field, ": \"", re, "\" is not a regular expression: ", e.what());
  }
}

}  // namespace

Result<std::string> expand_log_tag(const std::string& tmpl, const LogTemplateValues& v, std::string_view field) {
  std::string hex = v.image_id.starts_with("sha256:") ? v.image_id.substr(7) : v.image_id;
  std::string out;
  for (size_t i = 0; i < tmpl.size();) {
    if (tmpl.compare(i, 2, "{{") != 0) {
      out.push_back(tmpl[i++]);
      continue;
    }
    size_t end = tmpl.find("}}", i);
    if (end == std::string::npos) return fail_msg(field, ": \"", tmpl, "\": a template action is not closed with }}");
    std::string action = tmpl.substr(i + 2, end - i - 2);
    while (!action.empty() && action.front() == ' ') action.erase(0, 1);
    while (!action.empty() && action.back() == ' ') action.pop_back();
    if (action == ".ID") out += v.id.substr(0, 12);
    else if (action == ".FullID") out += v.id;
    else if (action == ".Name") out += v.name;
    else if (action == ".ImageName") out += v.image_name;
    else if (action == ".ImageID") out += hex.substr(0, 12);
    else if (action == ".ImageFullID") out += v.image_id;
    else if (action == ".DaemonName") out += "docker";
    else
      return fail_msg(field, ": \"{{", action, "}}\" is not a log tag template husk knows ",
                      "({{.ID}}, {{.FullID}}, {{.Name}}, {{.ImageName}}, {{.ImageID}}, {{.ImageFullID}}, {{.DaemonName}})");
    i = end + 2;
  }
  return out;
}

Result<LogPlan> docker_log_plan(const std::string& type, const std::vector<std::pair<std::string, std::string>>& config,
                                const LogTemplateValues& v, const std::map<std::string, std::string>& labels,
                                const std::vector<std::string>& env, std::string_view field) {
  LogPlan p;
  p.driver = type;
  bool journald = type == "journald", syslog = type == "syslog", gelf = type == "gelf", fluentd = type == "fluentd",
       splunk = type == "splunk", awslogs = type == "awslogs", gcplogs = type == "gcplogs";
  std::string tag = "{{.ID}}";
  std::set<std::string> want_labels, want_env;
  std::vector<std::regex> label_res, env_res;
  // docker's options that are husk's with the driver's prefix dropped
  // ("gelf-compression-type" is husk's "compression-type"); an empty value
  // is docker's default.
  auto pass = [&](const std::string& k, const std::string& val, std::string_view prefix) {
    if (!val.empty()) p.opts.push_back(k.substr(prefix.size()) + "=" + val);
  };
  bool have_address = false, have_url = false, have_token = false;
  std::string syslog_address, aws_stream, aws_multiline;
  std::vector<std::string> syslog_tls;  // docker ignores these without a tcp+tls:// address
  for (const auto& [k, val] : config) {
    std::string what = cat(field, ".config.", k);
    if (k == "tag" && !gcplogs) {  // docker's gcplogs takes no tag
      tag = val;
    } else if (k == "labels") {
      for (auto& l : split_commas(val)) want_labels.insert(l);
    } else if (k == "env") {
      for (auto& e : split_commas(val)) want_env.insert(e);
    } else if (k == "labels-regex") {
      label_res.push_back(TRY(compile(val, what)));
    } else if (k == "env-regex") {
      env_res.push_back(TRY(compile(val, what)));
    } else if (k == "mode") {
      // docker's delivery mode; husk's forwarder reads as fast as the
      // destination takes lines, which is docker's "blocking".
      if (val != "blocking" && val != "non-blocking")
        return fail_msg(what, ": \"", val, "\" is not a log delivery mode (blocking, non-blocking)");
    } else if (k == "max-buffer-size") {
    } else if (syslog && k == "syslog-address") {
      syslog_address = val;
      if (!val.empty()) p.opts.push_back("address=" + val);
    } else if (syslog && k == "syslog-facility") {
      if (!val.empty()) p.opts.push_back("facility=" + val);
    } else if (syslog && k == "syslog-format") {
      p.opts.push_back("format=" + val);
    } else if (syslog && (k == "syslog-tls-ca-cert" || k == "syslog-tls-cert" || k == "syslog-tls-key")) {
      if (!val.empty()) syslog_tls.push_back(k.substr(7) + "=" + val);
    } else if (syslog && k == "syslog-tls-skip-verify") {
      syslog_tls.push_back("tls-skip-verify=true");  // docker: the key's presence, whatever its value
    } else if (awslogs && (k == "awslogs-datetime-format" || k == "awslogs-multiline-pattern")) {
      if (val.empty()) continue;
      if (!aws_multiline.empty())
        return fail_msg(what, ": docker's awslogs takes awslogs-datetime-format or awslogs-multiline-pattern, not both");
      if (k == "awslogs-multiline-pattern") (void)TRY(compile(val, what));
      aws_multiline = k;
      pass(k, val, "awslogs-");
    } else if (awslogs && k == "awslogs-stream") {
      aws_stream = val;
    } else if (awslogs && (k == "awslogs-region" || k == "awslogs-group" || k == "awslogs-create-group" ||
                           k == "awslogs-create-stream" || k == "awslogs-endpoint" ||
                           k == "awslogs-credentials-endpoint")) {
      have_address = have_address || (k == "awslogs-group" && !val.empty());
      pass(k, val, "awslogs-");
    } else if (gelf && k == "gelf-address") {
      if (val.starts_with("tls://") || val.starts_with("tcp+tls://"))
        return fail_msg(what, ": husk has no TLS client for GELF; use a udp:// or tcp:// gelf-address");
      have_address = !val.empty();
      pass(k, val, "gelf-");
    } else if (gelf && (k == "gelf-compression-type" || k == "gelf-compression-level" || k == "gelf-tcp-max-reconnect" ||
                        k == "gelf-tcp-reconnect-delay")) {
      pass(k, val, "gelf-");
    } else if (fluentd && k == "fluentd-address") {
      pass(k, val, "fluentd-");
    } else if (fluentd && (k == "fluentd-async" || k == "fluentd-async-connect" ||
                           k == "fluentd-async-reconnect-interval" || k == "fluentd-buffer-limit" ||
                           k == "fluentd-retry-wait" || k == "fluentd-max-retries" ||
                           k == "fluentd-sub-second-precision" || k == "fluentd-request-ack" ||
                           k == "fluentd-write-timeout")) {
      pass(k, val, "fluentd-");
    } else if (gcplogs && (k == "gcp-project" || k == "gcp-log-cmd" || k == "gcp-meta-zone" ||
                           k == "gcp-meta-name" || k == "gcp-meta-id")) {
      if (k == "gcp-log-cmd") (void)TRY(runtime::parse_log_bool(val, what));
      pass(k, val, "gcp-");
    } else if (splunk && k == "splunk-token") {
      p.opts.push_back("token=" + val);  // docker needs the key, not a value
      have_token = true;
    } else if (splunk && k == "splunk-url") {
      have_url = !val.empty();
      pass(k, val, "splunk-");
    } else if (splunk && (k == "splunk-source" || k == "splunk-sourcetype" || k == "splunk-index" ||
                          k == "splunk-capath" || k == "splunk-caname" || k == "splunk-insecureskipverify" ||
                          k == "splunk-format" || k == "splunk-verify-connection" || k == "splunk-gzip" ||
                          k == "splunk-gzip-level")) {
      pass(k, val, "splunk-");
    } else {
      return fail_msg(what, ": not an option of docker's ", type, " log driver");
    }
  }
  if (gelf && !have_address) return fail_msg(field, ".config.gelf-address: docker's gelf log driver needs one");
  if (splunk && !have_url) return fail_msg(field, ".config.splunk-url: docker's splunk log driver needs one");
  if (splunk && !have_token) return fail_msg(field, ".config.splunk-token: docker's splunk log driver needs one");
  if (awslogs && !have_address) return fail_msg(field, ".config.awslogs-group: docker's awslogs log driver needs one");
  if (syslog && syslog_address.starts_with("tcp+tls://")) p.opts.insert(p.opts.end(), syslog_tls.begin(), syslog_tls.end());
  if (awslogs) {
    // docker's stream: awslogs-stream, else the tag ({{.FullID}} by default).
    if (aws_stream.empty()) {
      bool tag_set = false;
      for (const auto& [k, val] : config) tag_set = tag_set || (k == "tag" && !val.empty());
      aws_stream = TRY(expand_log_tag(tag_set ? tag : "{{.FullID}}", v, cat(field, ".config.tag")));
    }
    p.opts.push_back("stream=" + aws_stream);
    return p;  // docker's awslogs sends the message only
  }
  std::string expanded = TRY(expand_log_tag(tag, v, cat(field, ".config.tag")));
  // splunk's tag = "" sends events without a tag, as docker's.
  if (!gcplogs && (!expanded.empty() || splunk)) p.opts.push_back("tag=" + expanded);
  if (syslog) return p;  // docker's syslog driver sends no labels or env
  if (journald) p.opts.push_back("name=" + v.name);
  if (gcplogs) {
    // docker's container name has its leading '/'; the command goes only
    // with gcp-log-cmd, which husk-log reads.
    p.opts.push_back("name=/" + v.name);
    p.opts.push_back("image-name=" + v.image_name);
    p.opts.push_back("image-id=" + v.image_id);
    p.opts.push_back("command=" + v.command);
  }
  if (gelf) {
    p.opts.push_back("name=" + v.name);
    p.opts.push_back("image-name=" + v.image_name);
    p.opts.push_back("image-id=" + v.image_id);
    p.opts.push_back("command=" + v.command);
  }
  if (fluentd) p.opts.push_back("name=/" + v.name);  // docker's container_name has the leading '/'
  // The labels and env asked for, labels first: gelf and fluentd let a
  // later field of the same name win (env over a label, as docker says);
  // journald keeps the first of a name.
  std::set<std::string> seen;
  auto add = [&](std::string_view key, const std::string& value) {
    if (!journald) {
      p.opts.push_back(cat("field=", key, "=", value));
      return;
    }
    std::string k = journal_key(key);
    if (!k.empty() && seen.insert(k).second) p.opts.push_back("field=" + k + "=" + value);
  };
  for (const auto& [k, val] : labels) {
    bool match = want_labels.count(k) > 0;
    for (const auto& re : label_res) match = match || std::regex_search(k, re);
    if (match) add(k, val);
  }
  for (const std::string& kv : env) {
    size_t eq = kv.find('=');
    std::string k = kv.substr(0, eq), val = eq == std::string::npos ? "" : kv.substr(eq + 1);
    bool match = want_env.count(k) > 0;
    for (const auto& re : env_res) match = match || std::regex_search(k, re);
    if (match) add(k, val);
  }
  return p;
}

}  // namespace husk::driver
