#include "runtime/log_gelf.h"

#include <sys/random.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "oci/json_writer.h"
#include "runtime/log.h"

namespace husk::runtime {
namespace {

// GELF over UDP: a datagram past this size goes as chunks, each with a
// 12-byte header (0x1e 0x0f, an 8-byte message id, sequence, count), at
// most 128 of them; 1420 is go-gelf's size, which docker uses.
constexpr size_t kChunkSize = 1420;
constexpr size_t kChunkHeader = 12;
constexpr size_t kMaxChunks = 128;

enum class Compression { kGzip, kZlib, kNone };

struct GelfConfig {
  Endpoint endpoint;
  Compression compression = Compression::kGzip;
  int level = 1;  // Z_BEST_SPEED, go-gelf's default
  int max_reconnect = 3;
  int reconnect_delay_s = 1;
  std::string fields;  // the fixed part of every message: ,"_container_id":"...",...
};

Result<GelfConfig> parse(const std::vector<std::string>& opts, const std::string& id) {
  GelfConfig c;
  std::string address, tag = id.substr(0, 12), name = id, image_id, image_name, command, created = log::rfc3339_now();
  std::vector<std::pair<std::string, std::string>> extra;
  bool udp_only = false, tcp_only = false;
  std::string udp_opt, tcp_opt;
  for (const std::string& kv : opts) {
    auto [k, v] = TRY(split_log_opt(kv));
    std::string what = "--log-opt " + k;
    if (k == "address") {
      address = v;
    } else if (k == "compression-type") {
      if (v == "gzip")
        c.compression = Compression::kGzip;
      else if (v == "zlib")
        c.compression = Compression::kZlib;
      else if (v == "none")
        c.compression = Compression::kNone;
      else
        return fail_msg(what, ": \"", v, "\" is not a GELF compression (gzip, zlib, none)");
      udp_only = true, udp_opt = k;
    } else if (k == "compression-level") {
      c.level = static_cast<int>(TRY(parse_log_int(v, -1, 9, what)));
      udp_only = true, udp_opt = k;
    } else if (k == "tcp-max-reconnect") {
      c.max_reconnect = static_cast<int>(TRY(parse_log_int(v, 0, 1000000, what)));
      tcp_only = true, tcp_opt = k;
    } else if (k == "tcp-reconnect-delay") {
      c.reconnect_delay_s = static_cast<int>(TRY(parse_log_int(v, 0, 86400, what)));
      tcp_only = true, tcp_opt = k;
    } else if (k == "tag") {
      if (v.empty()) return fail_msg(what, ": the tag is empty");
      tag = v;
    } else if (k == "name") {
      name = v;
    } else if (k == "image-id") {
      image_id = v;
    } else if (k == "image-name") {
      image_name = v;
    } else if (k == "command") {
      command = v;
    } else if (k == "created") {
      created = v;
    } else if (k == "field") {
      auto [fk, value] = TRY(split_field_opt(v, what));
      if (fk == "_") return fail_msg(what, "=", v, ": expected NAME=VALUE with a NAME");
      if (fk[0] != '_') fk = "_" + fk;  // docker's rule for labels and env
      if (fk == "_id") return fail_msg(what, "=", v, ": GELF does not allow the field _id");
      extra.emplace_back(fk, value);
    } else {
      return fail_msg(
          what, ": not an option of the gelf log driver (address, compression-type, compression-level, ",
          "tcp-max-reconnect, tcp-reconnect-delay, tag, name, image-id, image-name, command, created, field)");
    }
  }
  const std::string what = "--log-opt address";
  if (address.empty()) return fail_msg(what, ": the gelf log driver needs one (udp://HOST:PORT or tcp://HOST:PORT)");
  size_t sep = address.find("://");
  std::string scheme = sep == std::string::npos ? "" : address.substr(0, sep);
  std::string rest = sep == std::string::npos ? "" : address.substr(sep + 3);
  if (scheme == "udp")
    c.endpoint = TRY(inet_endpoint(rest, 0, SOCK_DGRAM, address, what));
  else if (scheme == "tcp")
    c.endpoint = TRY(inet_endpoint(rest, 0, SOCK_STREAM, address, what));
  else if (scheme == "tls" || scheme == "tcp+tls")
    return fail_msg(what, ": \"", address, "\": GELF goes over udp:// or tcp://, as docker's gelf driver sends it (it has no TLS)");
  else
    return fail_msg(what, ": \"", address, "\": expected udp://HOST:PORT or tcp://HOST:PORT");
  if (udp_only && scheme != "udp")
    return fail_msg("--log-opt ", udp_opt, ": GELF over TCP is not compressed (UDP only)");
  if (tcp_only && scheme != "tcp") return fail_msg("--log-opt ", tcp_opt, ": only for GELF over TCP");

  auto field = [&](const std::string& k, const std::string& v) {
    c.fields += cat(",", oci::json_quote(k), ":", oci::json_quote(v));
  };
  // docker's fields; labels and env (field=) come after and win, as in docker.
  std::vector<std::pair<std::string, std::string>> fixed = {{"_container_id", id},   {"_container_name", name},
                                                            {"_image_id", image_id}, {"_image_name", image_name},
                                                            {"_command", command},   {"_tag", tag},
                                                            {"_created", created}};
  for (auto& [k, v] : fixed) {
    bool overridden = false;
    for (auto& [ek, ev] : extra) overridden = overridden || ek == k;
    if (!overridden) field(k, v);
  }
  for (size_t i = 0; i < extra.size(); ++i) {
    bool later = false;  // a later field of the same name wins
    for (size_t j = i + 1; j < extra.size(); ++j) later = later || extra[j].first == extra[i].first;
    if (!later) field(extra[i].first, extra[i].second);
  }
  return c;
}

}  // namespace

std::string deflate_all(std::string_view in, bool gzip, int level) {
  z_stream z{};
  int window = gzip ? 15 + 16 : 15;
  if (deflateInit2(&z, level, Z_DEFLATED, window, 8, Z_DEFAULT_STRATEGY) != Z_OK) return "";
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? out : "";
}

namespace {

class GelfSink : public LogSink {
 public:
  GelfSink(GelfConfig c, UniqueFd fd) : c_(std::move(c)), fd_(std::move(fd)) {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0) host_ = host;
  }

  void line(LogStream s, std::string_view text, bool /*partial*/) override {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    // docker's timestamp: seconds with the milliseconds as the fraction.
    char stamp[32];
    snprintf(stamp, sizeof stamp, "%lld.%03ld", static_cast<long long>(ts.tv_sec), ts.tv_nsec / 1000000);
    std::string msg = cat("{\"version\":\"1.1\",\"host\":", oci::json_quote(host_),
                          ",\"short_message\":", oci::json_quote(valid_utf8(text)), ",\"timestamp\":", stamp,
                          ",\"level\":", s == LogStream::kOut ? 6 : 3, c_.fields, "}");
    bool ok = c_.endpoint.socktype == SOCK_DGRAM ? send_udp(msg) : send_tcp(msg);
    if (ok) {
      warned_ = false;
    } else {
      if (!warned_) log::warning(cat("log driver gelf: send to ", c_.endpoint.name, ": ", why_, "; lines are lost"));
      warned_ = true;
    }
  }

 private:
  bool send_udp(const std::string& msg) {
    std::string data = msg;
    if (c_.compression != Compression::kNone) {
      data = deflate_all(msg, c_.compression == Compression::kGzip, c_.level);
      if (data.empty()) return failed("compression failed");
    }
    if (data.size() <= kChunkSize) return sent(send_message(fd_.get(), SOCK_DGRAM, data));
    size_t per = kChunkSize - kChunkHeader;
    size_t count = (data.size() + per - 1) / per;
    if (count > kMaxChunks) return failed(cat("a message of ", data.size(), " bytes needs more than 128 chunks"));
    char id[8];
    if (getrandom(id, sizeof id, 0) != sizeof id) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      memcpy(id, &ts.tv_nsec, 4), memcpy(id + 4, &ts.tv_sec, 4);
    }
    for (size_t i = 0; i < count; ++i) {
      std::string chunk = {'\x1e', '\x0f'};
      chunk.append(id, sizeof id);
      chunk += static_cast<char>(i);
      chunk += static_cast<char>(count);
      chunk.append(data, i * per, per);
      if (!send_message(fd_.get(), SOCK_DGRAM, chunk)) return sent(false);
    }
    return true;
  }

  // As go-gelf's TCP writer: on a failed write, wait, connect again and
  // write again, up to tcp-max-reconnect times.
  bool send_tcp(std::string msg) {
    msg += '\0';
    for (int attempt = 0;; ++attempt) {
      if (send_message(fd_.get(), SOCK_STREAM, msg)) return true;
      if (fd_) why_ = strerror(errno);  // else why_ says why the last connect failed
      fd_.reset();
      if (attempt >= c_.max_reconnect) return false;
      sleep(static_cast<unsigned>(c_.reconnect_delay_s));
      auto fd = c_.endpoint.connect();
      if (fd)
        fd_ = std::move(*fd);
      else
        why_ = fd.error().what();
    }
  }

  bool sent(bool ok) {
    if (!ok) why_ = strerror(errno);
    return ok;
  }

  bool failed(std::string why) {
    why_ = std::move(why);
    return false;
  }

  GelfConfig c_;
  UniqueFd fd_;
  std::string host_;
  std::string why_;
  bool warned_ = false;
};

}  // namespace

Result<std::unique_ptr<LogSink>> open_gelf(const std::vector<std::string>& opts, const std::string& container_id) {
  GelfConfig c = TRY(parse(opts, container_id));
  auto fd = c.endpoint.connect();
  if (!fd) return fail_errno(fd.error().code(), "log driver gelf: ", fd.error().what());
  return std::unique_ptr<LogSink>(std::make_unique<GelfSink>(std::move(c), std::move(*fd)));
}

}  // namespace husk::runtime
