#include "logs/splunk.h"

#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>

#include "common/duration.h"
#include "logs/http.h"
#include "oci/json_reader.h"
#include "oci/json_writer.h"
#include "runtime/log_gelf.h"
#include "runtime/log.h"

namespace husk::logs {
namespace {

using runtime::LogStream;

constexpr long kRequestTimeoutMs = 30000;  // docker's batchSendTimeout

// docker's advanced options, from the environment (a bad value is the default, as in docker).
long long env_int(const char* name, long long def) {
  const char* v = getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  long long n = strtoll(v, &end, 10);
  return *end == '\0' && n > 0 ? n : def;
}

long long env_duration_ms(const char* name, long long def) {
  const char* v = getenv(name);
  if (!v || !*v) return def;
  auto d = parse_go_duration(v, name);
  if (!d || d->count() <= 0) return def;
  return std::max<long long>(1, std::chrono::duration_cast<std::chrono::milliseconds>(*d).count());
}

struct SplunkConfig {
  std::string url;  // .../services/collector/event/1.0
  std::string auth;
  TlsOptions tls;
  SplunkEventShape shape;
  bool verify = true;
  bool gzip = false;
  int gzip_level = Z_DEFAULT_COMPRESSION;
};

Result<SplunkConfig> parse(const std::vector<std::string>& opts, const std::string& id) {
  SplunkConfig c;
  c.shape.tag = id.substr(0, 12);
  std::string url, token;
  bool have_token = false;
  std::map<std::string, std::string> attrs;
  for (const std::string& kv : opts) {
    auto [k, v] = TRY(runtime::split_log_opt(kv));
    std::string what = "--log-opt " + k;
    if (k == "url") {
      url = v;
    } else if (k == "token") {
      token = v, have_token = true;
    } else if (k == "source") {
      c.shape.source = v;
    } else if (k == "sourcetype") {
      c.shape.sourcetype = v;
    } else if (k == "index") {
      c.shape.index = v;
    } else if (k == "capath") {
      if (access(v.c_str(), R_OK) != 0) return fail_sys(what, ": ", v);
      c.tls.ca_file = v;
    } else if (k == "caname") {
      c.tls.server_name = v;
    } else if (k == "insecureskipverify") {
      c.tls.skip_verify = TRY(runtime::parse_log_bool(v, what));
    } else if (k == "format") {
      if (v != "inline" && v != "json" && v != "raw")
        return fail_msg(what, ": \"", v, "\" is not a splunk format (inline, json, raw)");
      c.shape.format = v;
    } else if (k == "verify-connection") {
      c.verify = TRY(runtime::parse_log_bool(v, what));
    } else if (k == "gzip") {
      c.gzip = TRY(runtime::parse_log_bool(v, what));
    } else if (k == "gzip-level") {
      c.gzip_level = static_cast<int>(TRY(runtime::parse_log_int(v, -1, 9, what)));
    } else if (k == "tag") {
      c.shape.tag = v;  // empty: no tag, as docker's tag=""
    } else if (k == "field") {
      auto [name, value] = TRY(runtime::split_field_opt(v, what));
      attrs[name] = value;  // a later one of a name wins
    } else {
      return fail_msg(what, ": not an option of the splunk log driver (url, token, source, sourcetype, index, ",
                      "capath, caname, insecureskipverify, format, verify-connection, gzip, gzip-level, tag, field)");
    }
  }
  if (url.empty()) return fail_msg("--log-opt url: the splunk log driver needs one (https://HOST:PORT)");
  if (!have_token) return fail_msg("--log-opt token: the splunk log driver needs one");
  UrlParts u;
  if (!split_url(url, &u) || (u.scheme != "http" && u.scheme != "https") || (!u.path.empty() && u.path != "/"))
    return fail_msg("--log-opt url: \"", url, "\": expected http(s)://HOST:PORT, without a path, query or fragment");
  c.url = url.substr(0, url.size() - u.path.size()) + "/services/collector/event/1.0";
  c.auth = "Authorization: Splunk " + token;
  c.shape.attrs.assign(attrs.begin(), attrs.end());
  char host[256] = "";
  if (gethostname(host, sizeof host - 1) != 0) return fail_sys("log driver splunk: the hostname for the host field");
  c.shape.host = host;
  return c;
}

class SplunkSink : public runtime::LogSink {
 public:
  SplunkSink(SplunkConfig c, HttpClient http) : c_(std::move(c)), http_(std::move(http)) {
    frequency_ms_ = env_duration_ms("SPLUNK_LOGGING_DRIVER_POST_MESSAGES_FREQUENCY", 5000);
    batch_size_ = static_cast<size_t>(env_int("SPLUNK_LOGGING_DRIVER_POST_MESSAGES_BATCH_SIZE", 1000));
    buffer_max_ = static_cast<size_t>(env_int("SPLUNK_LOGGING_DRIVER_BUFFER_MAX", 10000));
    next_post_ms_ = clock_ms() + frequency_ms_;
  }

  void line(LogStream s, std::string_view text, bool /*partial*/) override {
    // HEC refuses an empty raw event; docker drops those.
    if (c_.shape.format == "raw" && text.find_first_not_of(" \t\r\n\v\f") == std::string_view::npos) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pending_.push_back(splunk_event(c_.shape, text, s == LogStream::kErr, ts.tv_sec, ts.tv_nsec / 1000));
    if (pending_.size() % batch_size_ == 0) post(false);
  }

  int wait_ms() const override { return static_cast<int>(std::max(0LL, next_post_ms_ - clock_ms())); }

  void tick() override {
    if (clock_ms() < next_post_ms_) return;
    next_post_ms_ = clock_ms() + frequency_ms_;
    post(false);
  }

  void close() override { post(true); }

 private:
  // Sends what waits in batches; what a failed batch leaves stays for the
  // next time, unless the buffer is full or this is the last chance.
  void post(bool last) {
    while (!pending_.empty()) {
      size_t n = std::min(batch_size_, pending_.size());
      std::string body;
      for (size_t i = 0; i < n; ++i) body += pending_[i];
      auto r = send(body);
      if (r) {
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(n));
        warned_ = false;
        continue;
      }
      if (!warned_ || last) log::warning(cat("log driver splunk: ", r.error().str()));
      warned_ = true;
      if (last || pending_.size() >= buffer_max_) {
        size_t lost = last ? pending_.size() : n;
        log::warning(cat("log driver splunk: ", lost, " lines are lost"));
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(lost));
      }
      return;
    }
  }

  Result<> send(const std::string& body) {
    std::vector<std::string> headers = {c_.auth};
    std::string data = body;
    if (c_.gzip) {
      data = runtime::deflate_all(body, true, c_.gzip_level);
      if (data.empty()) return fail_msg("gzip failed");
      headers.push_back("Content-Encoding: gzip");
    }
    HttpResponse r = TRY(http_.request("POST", c_.url, headers, data));
    if (r.status != 200) return fail_msg("failed to send events: ", c_.url, " answered ", r.status, " ", r.body);
    return {};
  }

  SplunkConfig c_;
  HttpClient http_;
  std::deque<std::string> pending_;
  long long frequency_ms_ = 5000, next_post_ms_ = 0;
  size_t batch_size_ = 1000, buffer_max_ = 10000;
  bool warned_ = false;
};

}  // namespace

std::string splunk_event(const SplunkEventShape& s, std::string_view line, bool is_stderr, long long sec, long usec) {
  std::string text = runtime::valid_utf8(line);
  std::string event;
  if (s.format == "raw") {
    std::string prefix = s.tag.empty() ? "" : s.tag + " ";
    for (const auto& [k, v] : s.attrs) prefix += k + "=" + v + " ";
    event = oci::json_quote(prefix + text);
  } else {
    std::string value = oci::json_quote(text);
    if (s.format == "json") {
      // A line that is JSON goes in as JSON.
      size_t b = text.find_first_not_of(" \t\r\n"), e = text.find_last_not_of(" \t\r\n");
      if (b != std::string::npos && oci::JsonDoc::parse(text)) value = text.substr(b, e - b + 1);
    }
    event = cat("{\"line\":", value, ",\"source\":\"", is_stderr ? "stderr" : "stdout", "\"");
    if (!s.tag.empty()) event += ",\"tag\":" + oci::json_quote(s.tag);
    if (!s.attrs.empty()) {
      event += ",\"attrs\":{";
      for (size_t i = 0; i < s.attrs.size(); ++i)
        event += cat(i ? "," : "", oci::json_quote(s.attrs[i].first), ":", oci::json_quote(s.attrs[i].second));
      event += "}";
    }
    event += "}";
  }
  char when[48];
  snprintf(when, sizeof when, "%lld.%06ld", sec, usec);  // Go's %f of the seconds
  std::string out = cat("{\"event\":", event, ",\"time\":\"", when, "\",\"host\":", oci::json_quote(s.host));
  if (!s.source.empty()) out += ",\"source\":" + oci::json_quote(s.source);
  if (!s.sourcetype.empty()) out += ",\"sourcetype\":" + oci::json_quote(s.sourcetype);
  if (!s.index.empty()) out += ",\"index\":" + oci::json_quote(s.index);
  return out + "}";
}

Result<std::unique_ptr<runtime::LogSink>> open_splunk(const std::vector<std::string>& opts,
                                                      const std::string& container_id) {
  SplunkConfig c = TRY(parse(opts, container_id));
  HttpClient http = TRY(HttpClient::make(c.tls, kRequestTimeoutMs));
  if (c.verify) {
    // docker's splunk-verify-connection: an OPTIONS request that answers 200.
    auto r = http.request("OPTIONS", c.url, {}, "");
    if (!r) return std::unexpected(std::move(r.error()).with_context("log driver splunk: verify the connection"));
    if (r->status != 200)
      return fail_msg("log driver splunk: verify the connection: ", c.url, " answered ", r->status, " ", r->body);
  }
  return std::unique_ptr<runtime::LogSink>(std::make_unique<SplunkSink>(std::move(c), std::move(http)));
}

}  // namespace husk::logs
