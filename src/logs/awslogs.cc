#include "logs/awslogs.h"

#include <time.h>

#include <cstdlib>
#include <deque>
#include <fstream>
#include <optional>
#include <regex>

#include "common/duration.h"
#include "common/text.h"
#include "logs/http.h"
#include "oci/json_reader.h"
#include "oci/json_writer.h"
#include "runtime/log.h"

namespace husk::logs {
namespace {

using runtime::LogStream;

// CloudWatch's limits on one PutLogEvents, and docker's batch frequency.
constexpr size_t kMaxBatchEvents = 10000;
constexpr size_t kMaxBatchBytes = 1048576;
constexpr size_t kEventOverhead = 26;
constexpr long long kBatchFrequencyMs = 5000;
constexpr long kRequestTimeoutMs = 30000;
constexpr size_t kMaxEventBytes = 262144 - kEventOverhead;

// docker's awslogs-datetime-format: strftime's directives as the regular
// expressions docker turns them into, the whole anchored at the start.
std::string datetime_regex(const std::string& format) {
  static const std::pair<char, const char*> kDirectives[] = {
      {'a', "(?:Mon|Monday|Tue|Tuesday|Wed|Wednesday|Thu|Thursday|Fri|Friday|Sat|Saturday|Sun|Sunday)"},
      {'A', "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"},
      {'b', "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"},
      {'B', "(?:January|February|March|April|May|June|July|August|September|October|November|December)"},
      {'d', "(?:0[1-9]|[1,2][0-9]|3[0,1])"},
      {'H', "(?:2[0-3]|[0,1][0-9])"},
      {'I', "(?:0[0-9]|1[0-2])"},
      {'j', "(?:36[0-6]|3[0-5][0-9]|[0-2][0-9][0-9])"},
      {'L', "\\.\\d{3}"},
      {'m', "(?:1[0-2]|0[1-9])"},
      {'M', "[0-5][0-9]"},
      {'p', "[A,P]M"},
      {'S', "[0-5][0-9]"},
      {'U', "(?:5[0-3]|[0-4][0-9])"},
      {'w', "[0-6]"},
      {'W', "(?:5[0-3]|[0-4][0-9])"},
      {'y', "\\d{2}"},
      {'Y', "\\d{4}"},
      {'z', "[+-]\\d{4}"},
      {'Z', "[A-Z]{1,4}T"},
      {'f', "\\d{6}"},
      {'%', "%"},
  };
  std::string out = "^";
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] == '%' && i + 1 < format.size()) {
      bool known = false;
      for (const auto& [c, re] : kDirectives)
        if (format[i + 1] == c) out += re, known = true;
      if (known) {
        ++i;
        continue;
      }
    }
    out += format[i];  // as docker: the rest is a regular expression too
  }
  return out;
}

std::string amz_date_now() {
  time_t t = time(nullptr);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string env(const char* name) {
  const char* v = getenv(name);
  return v ? v : "";
}

struct AwsConfig {
  std::string region, group, stream;
  bool create_group = false, create_stream = true;
  std::optional<std::regex> multiline;  // a line that matches starts an event
  std::string url, host, path;          // the endpoint, and its Host header and path
  AwsCredentials creds;
  // credentials-endpoint: the ECS agent's URL they come from, and when
  // they expire (unix seconds; 0 never), to fetch them again before.
  std::string credentials_url;
  int64_t creds_expire = 0;
};

// ECS's container credentials endpoint (docker's awslogs-credentials-endpoint
// is the path on it, AWS_CONTAINER_CREDENTIALS_RELATIVE_URI).
constexpr const char* kEcsCredentialsHost = "http://169.254.170.2";

// GET `url`: {"AccessKeyId","SecretAccessKey","Token","Expiration"}.
Result<AwsCredentials> fetch_container_credentials(const std::string& url, int64_t* expire) {
  const std::string what = cat("log driver awslogs: credentials from ", url);
  HttpClient http = TRY_CTX(HttpClient::make({}, 5000), what);
  HttpResponse r = TRY_CTX(http.request("GET", url, {}, ""), what);
  if (r.status != 200) return fail_msg(what, ": answered ", r.status, " ", one_line(r.body));
  auto doc = oci::JsonDoc::parse(r.body);
  if (!doc) return fail_msg(what, ": the answer is not JSON: ", doc.error().str());
  oci::J root = doc->root();
  AwsCredentials c;
  auto field = [&](const char* k, std::string& out, bool required) -> Result<> {
    auto v = TRY_CTX(oci::opt_string(root[k]), what);
    if (v) out = *v;
    if (required && out.empty()) return fail_msg(what, ": the answer has no ", k);
    return {};
  };
  TRYV(field("AccessKeyId", c.access_key_id, true));
  TRYV(field("SecretAccessKey", c.secret_access_key, true));
  TRYV(field("Token", c.session_token, false));
  std::string expiration;
  TRYV(field("Expiration", expiration, false));
  *expire = 0;
  if (!expiration.empty()) {
    struct tm tm{};
    const char* end = strptime(expiration.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end) return fail_msg(what, ": Expiration \"", expiration, "\" is not an RFC 3339 time");
    *expire = static_cast<int64_t>(timegm(&tm));
  }
  return c;
}

Result<AwsConfig> parse(const std::vector<std::string>& opts, const std::string& id) {
  AwsConfig c;
  c.stream = id;
  std::string endpoint, multiline_opt, multiline_re;
  for (const std::string& kv : opts) {
    auto [k, v] = TRY(runtime::split_log_opt(kv));
    std::string what = "--log-opt " + k;
    if (k == "region") {
      c.region = v;
    } else if (k == "group") {
      c.group = v;
    } else if (k == "stream") {
      if (v.empty()) return fail_msg(what, ": the stream name is empty");
      c.stream = v;
    } else if (k == "create-group") {
      c.create_group = TRY(runtime::parse_log_bool(v, what));
    } else if (k == "create-stream") {
      c.create_stream = TRY(runtime::parse_log_bool(v, what));
    } else if (k == "endpoint") {
      endpoint = v;
    } else if (k == "datetime-format" || k == "multiline-pattern") {
      if (!multiline_opt.empty() && multiline_opt != k)
        return fail_msg(what, ": give datetime-format or multiline-pattern, not both");
      multiline_opt = k;
      multiline_re = k == "datetime-format" ? datetime_regex(v) : v;
    } else if (k == "credentials-endpoint") {
      if (v.empty() || v[0] != '/' || v.find_first_of(" #") != std::string::npos)
        return fail_msg(what, ": \"", v, "\" is not a path on the ECS credentials endpoint (/v2/credentials/ID)");
      c.credentials_url = kEcsCredentialsHost + v;
    } else {
      return fail_msg(what, ": not an option of the awslogs log driver (region, group, stream, create-group, ",
                      "create-stream, endpoint, datetime-format, multiline-pattern, credentials-endpoint)");
    }
  }
  if (!multiline_opt.empty()) {
    try {
      c.multiline.emplace(multiline_re, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return fail_msg("--log-opt ", multiline_opt, ": \"", multiline_re, "\" is not a regular expression: ", e.what());
    }
  }
  if (c.region.empty()) c.region = env("AWS_REGION");
  if (c.region.empty()) c.region = env("AWS_DEFAULT_REGION");
  if (c.region.empty()) return fail_msg("--log-opt region: the awslogs log driver needs one (or AWS_REGION)");
  if (c.group.empty()) return fail_msg("--log-opt group: the awslogs log driver needs one");
  c.url = endpoint.empty() ? "https://logs." + c.region + ".amazonaws.com" : endpoint;
  UrlParts u;
  if (!split_url(c.url, &u) || (u.scheme != "http" && u.scheme != "https") ||
      c.url.find_first_of("?#") != std::string::npos)
    return fail_msg("--log-opt endpoint: \"", c.url, "\": expected http(s)://HOST[:PORT][/PATH]");
  bool default_port = (u.scheme == "https" && u.port == "443") || (u.scheme == "http" && u.port == "80");
  std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  c.host = default_port ? host : host + ":" + u.port;
  c.path = u.path.empty() ? "/" : u.path;
  if (!c.credentials_url.empty())
    c.creds = TRY(fetch_container_credentials(c.credentials_url, &c.creds_expire));
  else
    c.creds = TRY(find_aws_credentials());
  return c;
}

// A CloudWatch Logs API call; its error as AWS names it ("__type").
struct AwsError {
  std::string type, message;
};

class CloudWatchLogs {
 public:
  CloudWatchLogs(AwsConfig c, HttpClient http) : c_(std::move(c)), http_(std::move(http)) {}

  const AwsConfig& config() const { return c_; }

  // nullopt on success; the AWS error, or a transport error as type "".
  std::optional<AwsError> call(const std::string& action, const std::string& body) {
    // Credentials of the ECS agent are fetched again 5 minutes before they
    // expire, as the AWS SDK does.
    if (c_.creds_expire > 0 && time(nullptr) + 300 >= c_.creds_expire) {
      auto fresh = fetch_container_credentials(c_.credentials_url, &c_.creds_expire);
      if (!fresh) return AwsError{"", fresh.error().str()};
      c_.creds = std::move(*fresh);
    }
    std::string target = "Logs_20140328." + action;
    SignedRequest s =
        sigv4_sign(c_.creds, c_.region, "logs", c_.host, c_.path,
                   {{"content-type", "application/x-amz-json-1.1"}, {"x-amz-target", target}}, body, amz_date_now());
    auto r = http_.request("POST", c_.url, s.headers, body);
    if (!r) return AwsError{"", r.error().str()};
    if (r->status == 200) return std::nullopt;
    AwsError e{"", cat(c_.url, " answered ", r->status, " ", r->body)};
    if (auto doc = oci::JsonDoc::parse(r->body)) {
      oci::J root = doc->root();
      if (auto t = oci::opt_string(root["__type"]); t && *t) {
        e.type = **t;
        e.type = e.type.substr(e.type.rfind('#') + 1);  // "com.amazonaws...#ResourceNotFoundException"
      }
      for (const char* key : {"message", "Message"})
        if (auto m = oci::opt_string(root[key]); m && *m) e.message = cat(action, ": ", e.type, ": ", **m);
    }
    return e;
  }

 private:
  AwsConfig c_;
  HttpClient http_;
};

class AwsLogsSink : public runtime::LogSink {
 public:
  explicit AwsLogsSink(CloudWatchLogs api) : api_(std::move(api)) {
    next_post_ms_ = clock_ms(CLOCK_MONOTONIC) + kBatchFrequencyMs;
  }

  void line(LogStream /*s*/, std::string_view text, bool /*partial*/) override {
    const auto& multiline = api_.config().multiline;
    if (!multiline) {
      add(clock_ms(CLOCK_REALTIME), std::string(text));
      return;
    }
    // docker's multiline events: a matching line starts one; each line
    // ends with '\n'; an event goes when the next starts, when it would
    // pass CloudWatch's size, or when it is a batch period old.
    std::string line(text);
    if (std::regex_search(line, *multiline) || buffer_.size() + line.size() >= kMaxEventBytes) flush_buffer();
    if (buffer_.empty()) buffer_ms_ = clock_ms(CLOCK_REALTIME), buffer_age_ms_ = clock_ms(CLOCK_MONOTONIC);
    buffer_ += line;
    if (buffer_.size() < kMaxEventBytes) buffer_ += '\n';
  }

  int wait_ms() const override { return static_cast<int>(std::max(0LL, next_post_ms_ - clock_ms(CLOCK_MONOTONIC))); }

  void tick() override {
    if (clock_ms(CLOCK_MONOTONIC) < next_post_ms_) return;
    next_post_ms_ = clock_ms(CLOCK_MONOTONIC) + kBatchFrequencyMs;
    if (!buffer_.empty() && clock_ms(CLOCK_MONOTONIC) - buffer_age_ms_ >= kBatchFrequencyMs) flush_buffer();
    post(false);
  }

  void close() override {
    flush_buffer();
    post(true);
  }

 private:
  struct Event {
    long long timestamp_ms;
    std::string message;
  };

  void add(long long timestamp_ms, std::string text) {
    if (text.empty()) return;  // CloudWatch takes no empty message; docker sends none
    std::string msg = runtime::valid_utf8(text);
    size_t size = msg.size() + kEventOverhead;
    if (pending_.size() >= kMaxBatchEvents || pending_bytes_ + size > kMaxBatchBytes) post(false);
    pending_.push_back({timestamp_ms, std::move(msg)});
    pending_bytes_ += size;
  }

  void flush_buffer() {
    if (buffer_.empty()) return;
    add(buffer_ms_, std::move(buffer_));
    buffer_.clear();
  }

  void post(bool last) {
    if (pending_.empty()) return;
    const AwsConfig& c = api_.config();
    std::string body = cat("{\"logGroupName\":", oci::json_quote(c.group),
                           ",\"logStreamName\":", oci::json_quote(c.stream), ",\"logEvents\":[");
    for (size_t i = 0; i < pending_.size(); ++i)
      body += cat(i ? "," : "", "{\"message\":", oci::json_quote(pending_[i].message),
                  ",\"timestamp\":", pending_[i].timestamp_ms, "}");
    body += "]}";
    auto e = api_.call("PutLogEvents", body);
    if (!e) {
      pending_.clear();
      pending_bytes_ = 0;
      warned_ = false;
      return;
    }
    if (!warned_ || last) log::warning(cat("log driver awslogs: ", e->message));
    warned_ = true;
    // A batch that cannot go is dropped, as docker's; the last one too.
    log::warning(cat("log driver awslogs: ", pending_.size(), " lines are lost"));
    pending_.clear();
    pending_bytes_ = 0;
  }

  CloudWatchLogs api_;
  std::deque<Event> pending_;
  size_t pending_bytes_ = 0;
  long long next_post_ms_ = 0;
  std::string buffer_;  // the multiline event being gathered
  long long buffer_ms_ = 0, buffer_age_ms_ = 0;
  bool warned_ = false;
};

Result<> create_stream(CloudWatchLogs& api) {
  const AwsConfig& c = api.config();
  std::string stream_body =
      cat("{\"logGroupName\":", oci::json_quote(c.group), ",\"logStreamName\":", oci::json_quote(c.stream), "}");
  auto e = api.call("CreateLogStream", stream_body);
  if (e && e->type == "ResourceNotFoundException" && c.create_group) {
    auto g = api.call("CreateLogGroup", cat("{\"logGroupName\":", oci::json_quote(c.group), "}"));
    if (g && g->type != "ResourceAlreadyExistsException")
      return fail_msg("log driver awslogs: create the log group ", c.group, ": ", g->message);
    e = api.call("CreateLogStream", stream_body);
  }
  if (e && e->type != "ResourceAlreadyExistsException")
    return fail_msg("log driver awslogs: create the log stream ", c.stream, " in ", c.group, ": ", e->message);
  return {};
}

}  // namespace

Result<AwsCredentials> find_aws_credentials() {
  AwsCredentials c{env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY"), env("AWS_SESSION_TOKEN")};
  if (!c.access_key_id.empty() && !c.secret_access_key.empty()) return c;
  std::string file = env("AWS_SHARED_CREDENTIALS_FILE");
  if (file.empty() && !env("HOME").empty()) file = env("HOME") + "/.aws/credentials";
  std::string profile = env("AWS_PROFILE").empty() ? "default" : env("AWS_PROFILE");
  std::ifstream in(file);
  std::string line;
  bool in_profile = false;
  c = {};
  auto trim = [](std::string s) {
    size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      in_profile = trim(line.substr(1, line.find(']') - 1)) == profile;
      continue;
    }
    size_t eq = line.find('=');
    if (!in_profile || eq == std::string::npos) continue;
    std::string k = trim(line.substr(0, eq)), v = trim(line.substr(eq + 1));
    if (k == "aws_access_key_id")
      c.access_key_id = v;
    else if (k == "aws_secret_access_key")
      c.secret_access_key = v;
    else if (k == "aws_session_token")
      c.session_token = v;
  }
  if (!c.access_key_id.empty() && !c.secret_access_key.empty()) return c;
  return fail_msg("log driver awslogs: no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, ",
                  "and ", file.empty() ? std::string("~/.aws/credentials") : file, " has no [", profile, "] keys");
}

Result<std::unique_ptr<runtime::LogSink>> open_awslogs(const std::vector<std::string>& opts,
                                                       const std::string& container_id) {
  AwsConfig c = TRY(parse(opts, container_id));
  HttpClient http = TRY(HttpClient::make({}, kRequestTimeoutMs));
  CloudWatchLogs api(std::move(c), std::move(http));
  if (api.config().create_stream) TRYV(create_stream(api));
  return std::unique_ptr<runtime::LogSink>(std::make_unique<AwsLogsSink>(std::move(api)));
}

}  // namespace husk::logs
