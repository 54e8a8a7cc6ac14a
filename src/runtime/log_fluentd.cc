#include "runtime/log_fluentd.h"

#include <endian.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <optional>

#include "common/duration.h"
#include "runtime/log.h"

namespace husk::runtime {
namespace {

constexpr long long kMaxRetryWaitMs = 60000;  // fluent-logger-golang's cap on one wait
constexpr int kConnectTimeoutMs = 3000;       // and its dial timeout

// ---- the few msgpack types an event needs ---------------------------------------------------------

void put_be(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

void mp_str(std::string& out, std::string_view s) {
  size_t n = s.size();
  if (n < 32)
    out += static_cast<char>(0xa0 | n);
  else if (n < 0x100)
    out += '\xd9', put_be(out, n, 1);
  else if (n < 0x10000)
    out += '\xda', put_be(out, n, 2);
  else
    out += '\xdb', put_be(out, n, 4);
  out.append(s);
}

void mp_header(std::string& out, size_t n, unsigned fix, char c16, char c32) {
  if (n < 16)
    out += static_cast<char>(fix | n);
  else if (n < 0x10000)
    out += c16, put_be(out, n, 2);
  else
    out += c32, put_be(out, n, 4);
}

void mp_uint(std::string& out, uint64_t v) {
  if (v < 128)
    out += static_cast<char>(v);
  else if (v <= 0xffffffffu)
    out += '\xce', put_be(out, v, 4);
  else
    out += '\xcf', put_be(out, v, 8);
}

// The ack fluentd answers with: a map holding "ack" => the chunk id. Returns
// the id, "" for a complete answer without one, nullopt while incomplete.
std::optional<std::string> parse_ack(std::string_view b) {
  size_t i = 0;
  auto need = [&](size_t n) { return i + n <= b.size(); };
  auto be = [&](int n) {
    uint64_t v = 0;
    for (int k = 0; k < n; ++k) v = (v << 8) | static_cast<unsigned char>(b[i++]);
    return v;
  };
  auto str = [&]() -> std::optional<std::string> {  // str or bin
    if (!need(1)) return std::nullopt;
    unsigned char t = static_cast<unsigned char>(b[i++]);
    // fixstr, or str 8/16/32 and bin 8/16/32 with a 1, 2 or 4-byte length
    int len_bytes = (t & 0xe0) == 0xa0       ? 0
                    : t == 0xd9 || t == 0xc4 ? 1
                    : t == 0xda || t == 0xc5 ? 2
                    : t == 0xdb || t == 0xc6 ? 4
                                             : -1;
    if (len_bytes < 0) return std::string(1, '\x01');  // not a string: matches no chunk id
    if (!need(static_cast<size_t>(len_bytes))) return std::nullopt;
    size_t n = len_bytes == 0 ? (t & 0x1f) : be(len_bytes);
    if (!need(n)) return std::nullopt;
    std::string s(b.substr(i, n));
    i += n;
    return s;
  };
  if (!need(1)) return std::nullopt;
  unsigned char t = static_cast<unsigned char>(b[i++]);
  size_t entries;
  if ((t & 0xf0) == 0x80)
    entries = t & 0x0f;
  else if (t == 0xde) {
    if (!need(2)) return std::nullopt;
    entries = be(2);
  } else
    return std::string();
  std::string ack;
  for (size_t e = 0; e < entries; ++e) {
    auto k = str();
    if (!k) return std::nullopt;
    auto v = str();
    if (!v) return std::nullopt;
    if (*k == "ack") ack = *v;
  }
  return ack;
}

std::string random_chunk_id() {
  unsigned char raw[16];
  if (getrandom(raw, sizeof raw, 0) != sizeof raw) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    memcpy(raw, &ts, std::min(sizeof ts, sizeof raw));
  }
  static const char* b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < sizeof raw; i += 3) {
    uint32_t v = raw[i] << 16 | (i + 1 < sizeof raw ? raw[i + 1] << 8 : 0) | (i + 2 < sizeof raw ? raw[i + 2] : 0);
    out += b64[(v >> 18) & 63];
    out += b64[(v >> 12) & 63];
    out += i + 1 < sizeof raw ? b64[(v >> 6) & 63] : '=';
    out += i + 2 < sizeof raw ? b64[v & 63] : '=';
  }
  return out;
}

std::string random_hex_id() {
  unsigned char raw[32] = {};
  if (getrandom(raw, sizeof raw, 0) != sizeof raw) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    memcpy(raw, &ts, sizeof ts);
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) out += hex[c >> 4], out += hex[c & 15];
  return out;
}

// docker's units.RAMInBytes: a number with an optional k, m, g, t or p
// (binary multiples), an optional i and an optional b.
Result<long long> parse_size(const std::string& v, const std::string& what) {
  size_t end = v.find_first_not_of("0123456789.");
  std::string num = v.substr(0, end), unit = end == std::string::npos ? "" : v.substr(end);
  if (!unit.empty() && unit[0] == ' ') unit.erase(0, 1);
  for (char& ch : unit) ch = static_cast<char>(tolower(static_cast<unsigned char>(ch)));
  double mult = 1;
  if (!unit.empty() && std::string("kmgtp").find(unit[0]) != std::string::npos) {
    for (size_t k = 0; k <= std::string("kmgtp").find(unit[0]); ++k) mult *= 1024;
    unit.erase(0, 1);
  }
  if (unit == "i" || unit == "ib" || unit == "b") unit.clear();
  char* endp = nullptr;
  double n = num.empty() ? -1 : strtod(num.c_str(), &endp);
  if (!unit.empty() || num.empty() || *endp != '\0' || n * mult > 1e15)
    return fail_msg(what, ": \"", v, "\" is not a size (bytes, or with k, m, g: \"8m\")");
  return static_cast<long long>(n * mult);
}

Result<long long> parse_ms(const std::string& v, const std::string& what) {
  auto d = TRY(parse_go_duration(v, what));
  if (d.count() < 0) return fail_msg(what, ": \"", v, "\" is negative");
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

struct FluentdConfig {
  Endpoint endpoint;
  std::string tag;
  std::vector<std::pair<std::string, std::string>> record;  // container_id and container_name
  std::vector<std::pair<std::string, std::string>> extra;   // field=, one of a name
  bool async = false;
  long long buffer_limit = 1024 * 1024;
  long long retry_wait_ms = 1000;
  long long max_retries = 2147483647;
  bool sub_second = false;
  bool request_ack = false;
  long long write_timeout_ms = 0;
  long long reconnect_interval_ms = 0;  // async: a new connection this often (an address of many hosts)
  bool tls = false;      // tls://: husk-log's TLS connection
  std::string tls_host;  // the name the server's certificate must have
};

Result<FluentdConfig> parse(const std::vector<std::string>& opts, const std::string& id) {
  FluentdConfig c;
  c.tag = id.substr(0, 12);
  std::string address, name = id;
  std::vector<std::pair<std::string, std::string>> extra;
  bool async_set = false, async_connect_set = false;
  for (const std::string& kv : opts) {
    auto [k, v] = TRY(split_log_opt(kv));
    std::string what = "--log-opt " + k;
    if (k == "address") {
      address = v;
    } else if (k == "tag") {
      if (v.empty()) return fail_msg(what, ": the tag is empty");
      c.tag = v;
    } else if (k == "name") {
      name = v;
    } else if (k == "field") {
      extra.push_back(TRY(split_field_opt(v, what)));
    } else if (k == "async") {
      c.async = c.async || TRY(parse_log_bool(v, what));
      async_set = true;
    } else if (k == "async-connect") {
      c.async = c.async || TRY(parse_log_bool(v, what));
      async_connect_set = true;
    } else if (k == "buffer-limit") {
      c.buffer_limit = TRY(parse_size(v, what));
    } else if (k == "retry-wait") {
      c.retry_wait_ms = TRY(parse_ms(v, what));
    } else if (k == "max-retries") {
      c.max_retries = TRY(parse_log_int(v, 0, 2147483647, what));
    } else if (k == "sub-second-precision") {
      c.sub_second = TRY(parse_log_bool(v, what));
    } else if (k == "request-ack") {
      c.request_ack = TRY(parse_log_bool(v, what));
    } else if (k == "write-timeout") {
      c.write_timeout_ms = TRY(parse_ms(v, what));
    } else if (k == "async-reconnect-interval") {
      c.reconnect_interval_ms = TRY(parse_ms(v, what));
      // docker's bounds
      if (c.reconnect_interval_ms != 0 && (c.reconnect_interval_ms < 100 || c.reconnect_interval_ms > 10000))
        return fail_msg(what, ": \"", v, "\" is not between 100ms and 10s");
    } else {
      return fail_msg(what, ": not an option of the fluentd log driver (address, tag, name, field, async, ",
                      "async-connect, async-reconnect-interval, buffer-limit, retry-wait, max-retries, ",
                      "sub-second-precision, request-ack, write-timeout)");
    }
  }
  if (async_set && async_connect_set)
    return fail_msg("--log-opt async-connect: give async or async-connect (its older name), not both");
  const std::string what = "--log-opt address";
  if (address.empty()) {
    c.endpoint = TRY(inet_endpoint("127.0.0.1", 24224, SOCK_STREAM, "127.0.0.1:24224", what));
  } else if (size_t sep = address.find("://"); sep != std::string::npos) {
    std::string scheme = address.substr(0, sep), rest = address.substr(sep + 3);
    if (scheme == "tcp")
      c.endpoint = TRY(inet_endpoint(rest, 24224, SOCK_STREAM, address, what));
    else if (scheme == "unix")
      c.endpoint = TRY(unix_endpoint(rest, SOCK_STREAM, address));
    else if (scheme == "tls") {
      c.endpoint = TRY(inet_endpoint(rest, 24224, SOCK_STREAM, address, what));
      c.tls = true;
      c.tls_host = host_of(rest);
    }
    else
      return fail_msg(what, ": \"", address, "\": the forward protocol goes over tcp://, tls:// or unix://, not ", scheme);
  } else {
    c.endpoint = TRY(inet_endpoint(address, 24224, SOCK_STREAM, address, what));
  }
  c.record = {{"container_id", id}, {"container_name", name}};
  // Labels and env (field=): a later one of a name wins.
  for (size_t i = 0; i < extra.size(); ++i) {
    bool later = false;
    for (size_t j = i + 1; j < extra.size(); ++j) later = later || extra[j].first == extra[i].first;
    if (!later) c.extra.push_back(extra[i]);
  }
  return c;
}

class FluentdSink : public LogSink {
 public:
  using Connect = std::function<Result<std::unique_ptr<LogConnection>>()>;
  FluentdSink(FluentdConfig c, Connect connect, std::unique_ptr<LogConnection> conn)
      : c_(std::move(c)), connect_(std::move(connect)), fd_(std::move(conn)) {}

  void line(LogStream s, std::string_view text, bool partial) override {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    auto record = c_.record;
    record.emplace_back("source", s == LogStream::kOut ? "stdout" : "stderr");
    record.emplace_back("log", std::string(text));
    // As docker's: the extra fields go over the record's own, even "log".
    for (const auto& [k, v] : c_.extra) {
      auto same = std::find_if(record.begin(), record.end(), [&](const auto& kv) { return kv.first == k; });
      if (same != record.end())
        same->second = v;
      else
        record.emplace_back(k, v);
    }
    // docker's partial-message fields for a line sent in pieces.
    Piece& p = pieces_[s == LogStream::kOut ? 0 : 1];
    if (partial || p.ordinal > 0) {
      if (p.ordinal == 0) p.id = random_hex_id();
      ++p.ordinal;
      record.emplace_back("partial_message", "true");
      record.emplace_back("partial_id", p.id);
      record.emplace_back("partial_ordinal", std::to_string(p.ordinal));
      record.emplace_back("partial_last", partial ? "false" : "true");
      if (!partial) p.ordinal = 0;
    }
    std::string chunk = c_.request_ack ? random_chunk_id() : "";
    Event e{fluentd_event(c_.tag, ts.tv_sec, ts.tv_nsec, c_.sub_second, record, chunk), chunk};
    if (c_.async) {
      if (queued_bytes_ + e.data.size() > static_cast<size_t>(c_.buffer_limit)) {
        if (!full_warned_)
          log::warning(cat("log driver fluentd: ", c_.endpoint.name, " is away and ", queued_bytes_,
                           " bytes wait for it (buffer-limit); lines are lost"));
        full_warned_ = true;
        return;
      }
      queued_bytes_ += e.data.size();
      queue_.push_back(std::move(e));
      flush();
      return;
    }
    // Blocking, as docker's default: retry with a growing wait.
    for (long long attempt = 0;; ++attempt) {
      if (send_event(e)) {
        warned_ = false;
        return;
      }
      if (attempt >= c_.max_retries) break;
      usleep(static_cast<useconds_t>(wait_for(attempt) * 1000));
    }
    if (!warned_) log::warning(cat("log driver fluentd: send to ", c_.endpoint.name, ": ", why_, "; lines are lost"));
    warned_ = true;
  }

  int wait_ms() const override {
    if (queue_.empty()) return -1;
    return static_cast<int>(std::max(0LL, next_try_ms_ - clock_ms()));
  }

  void tick() override {
    if (!queue_.empty()) flush();
  }

  void close() override {
    if (!queue_.empty()) {
      next_try_ms_ = 0;  // one last try for what still waits
      flush();
    }
    if (fd_) fd_->finish();
  }

 private:
  struct Event {
    std::string data;
    std::string chunk;
  };
  struct Piece {
    std::string id;
    int ordinal = 0;
  };

  long long wait_for(long long attempt) const {
    // retry-wait * 1.5^attempt (without libm, which husk does not link).
    double ms = static_cast<double>(c_.retry_wait_ms);
    for (long long i = 0; i < attempt && ms <= kMaxRetryWaitMs; ++i) ms *= 1.5;
    return ms > kMaxRetryWaitMs ? kMaxRetryWaitMs : static_cast<long long>(ms);
  }

  // Async: sends what waits, in order, while the destination takes it.
  void flush() {
    if (clock_ms() < next_try_ms_) return;
    while (!queue_.empty()) {
      if (!send_event(queue_.front())) {
        if (failures_ >= c_.max_retries) {
          log::warning(cat("log driver fluentd: send to ", c_.endpoint.name, ": ", why_, "; ", queue_.size(),
                           " lines are lost"));
          queue_.clear();
          queued_bytes_ = 0;
          failures_ = 0;
          return;
        }
        next_try_ms_ = clock_ms() + wait_for(failures_++);
        return;
      }
      failures_ = 0;
      full_warned_ = false;
      queued_bytes_ -= queue_.front().data.size();
      queue_.pop_front();
    }
  }

  bool connect() {
    auto conn = connect_();
    if (!conn) {
      why_ = conn.error().str();
      return false;
    }
    fd_ = std::move(*conn);
    connected_ms_ = clock_ms();
    return true;
  }

  // One event, and its ack when asked for; a failure closes the connection
  // so that the next try makes a new one (fluentd drops a duplicate chunk).
  bool send_event(const Event& e) {
    // async-reconnect-interval: a fresh connection (and name lookup) when
    // this one is that old, as docker's async mode does.
    if (fd_ && c_.async && c_.reconnect_interval_ms > 0 && clock_ms() - connected_ms_ >= c_.reconnect_interval_ms) {
      fd_->finish();
      fd_.reset();
    }
    if (!fd_ && !connect()) return false;
    if (!fd_->write_all(e.data)) {
      why_ = fd_->why();
      fd_.reset();
      return false;
    }
    if (e.chunk.empty()) return true;
    std::string got;
    int timeout = c_.write_timeout_ms > 0 ? static_cast<int>(c_.write_timeout_ms) : 30000;
    long long deadline = clock_ms() + timeout;
    for (;;) {
      if (auto ack = parse_ack(got)) {
        if (*ack == e.chunk) return true;
        why_ = "the ack is not for the chunk sent";
        break;
      }
      long long left = deadline - clock_ms();
      char buf[512];
      long n = left <= 0 ? -1 : fd_->read_some(buf, sizeof buf, static_cast<int>(left));
      if (n <= 0) {
        why_ = n == 0 ? "the connection closed before the ack" : "no ack (" + fd_->why() + ")";
        break;
      }
      got.append(buf, static_cast<size_t>(n));
    }
    fd_.reset();
    return false;
  }

  FluentdConfig c_;
  Connect connect_;
  std::unique_ptr<LogConnection> fd_;
  std::string why_;
  bool warned_ = false, full_warned_ = false;
  Piece pieces_[2];
  std::deque<Event> queue_;
  size_t queued_bytes_ = 0;
  long long failures_ = 0;
  long long next_try_ms_ = 0;
  long long connected_ms_ = 0;  // when fd_ was connected
};

}  // namespace

std::string fluentd_event(const std::string& tag, long long sec, long nsec, bool event_time,
                          const std::vector<std::pair<std::string, std::string>>& record, const std::string& chunk) {
  std::string out;
  out += static_cast<char>(0x90 | (chunk.empty() ? 3 : 4));
  mp_str(out, tag);
  if (event_time) {
    out += '\xd7';  // fixext 8, type 0: EventTime, seconds and nanoseconds, big-endian
    out += '\x00';
    put_be(out, static_cast<uint64_t>(sec), 4);
    put_be(out, static_cast<uint64_t>(nsec), 4);
  } else {
    mp_uint(out, static_cast<uint64_t>(sec));
  }
  mp_header(out, record.size(), 0x80, '\xde', '\xdf');
  for (const auto& [k, v] : record) mp_str(out, k), mp_str(out, v);
  if (!chunk.empty()) {
    out += '\x81';
    mp_str(out, "chunk");
    mp_str(out, chunk);
  }
  return out;
}

Result<std::unique_ptr<LogSink>> open_fluentd(const std::vector<std::string>& opts, const std::string& container_id,
                                              const TlsConnect& tls) {
  FluentdConfig c = TRY(parse(opts, container_id));
  if (c.tls && !tls) return fail_msg("--log-opt address: fluentd over tls:// is sent by husk-log");
  FluentdSink::Connect connect = [endpoint = c.endpoint, host = c.tls_host, send_ms = c.write_timeout_ms, use_tls = c.tls,
                                  tls]() -> Result<std::unique_ptr<LogConnection>> {
    if (use_tls) return tls(endpoint, host, kConnectTimeoutMs, send_ms);
    return connect_stream(endpoint, kConnectTimeoutMs, send_ms);
  };
  std::unique_ptr<LogConnection> conn;
  if (!c.async) {
    // As docker without fluentd-async: no fluentd, no container.
    auto r = connect();
    if (!r) return std::unexpected(std::move(r.error()).with_context("log driver fluentd"));
    conn = std::move(*r);
  }
  return std::unique_ptr<LogSink>(std::make_unique<FluentdSink>(std::move(c), std::move(connect), std::move(conn)));
}

}  // namespace husk::runtime
