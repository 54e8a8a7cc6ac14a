#include "logs/syslog_tls.h"

#include <unistd.h>

#include <optional>

#include "logs/tls_stream.h"
#include "runtime/log.h"
#include "runtime/log_syslog.h"

namespace husk::logs {
namespace {

constexpr int kConnectTimeoutMs = 10000;

TlsOptions tls_options(const runtime::SyslogConfig& c) {
  TlsOptions t;
  t.ca_file = c.tls_ca_cert;
  t.cert_file = c.tls_cert;
  t.key_file = c.tls_key;
  t.skip_verify = c.tls_skip_verify;
  return t;
}

class SyslogTlsSink : public runtime::LogSink {
 public:
  SyslogTlsSink(runtime::SyslogConfig c, TlsStream s) : c_(std::move(c)), stream_(std::move(s)) {
    char host[256] = "";
    if (gethostname(host, sizeof host - 1) == 0) host_ = host;
    if (host_.empty()) host_ = "-";
  }

  void line(runtime::LogStream s, std::string_view text, bool /*partial*/) override {
    std::string msg = runtime::syslog_message(c_, host_, s, text);
    Result<> sent = stream_ ? stream_->write_all(msg) : fail_msg("not connected");
    if (!sent) {
      // The receiver went away: a new connection, once.
      stream_.reset();
      auto again = TlsStream::connect(c_.endpoint, c_.tls_host, tls_options(c_), kConnectTimeoutMs);
      if (again) {
        stream_.emplace(std::move(*again));
        sent = stream_->write_all(msg);
      } else {
        sent = std::unexpected(again.error());
      }
    }
    if (sent) {
      warned_ = false;
      return;
    }
    stream_.reset();
    if (!warned_) log::warning(cat("log driver syslog: ", sent.error().str(), "; lines are lost"));
    warned_ = true;
  }

  void close() override {
    if (stream_) stream_->finish(2000);
  }

 private:
  runtime::SyslogConfig c_;
  std::optional<TlsStream> stream_;
  std::string host_;
  bool warned_ = false;
};

}  // namespace

Result<std::unique_ptr<runtime::LogSink>> open_syslog_tls(const std::vector<std::string>& opts,
                                                          const std::string& container_id) {
  runtime::SyslogConfig c = TRY(runtime::parse_syslog_config(runtime::LogDriver{"syslog", opts}, container_id));
  if (!c.tls) return fail_msg("--log-opt address: husk-log sends syslog over tcp+tls:// only");
  auto s = TlsStream::connect(c.endpoint, c.tls_host, tls_options(c), kConnectTimeoutMs);
  if (!s) return std::unexpected(std::move(s.error()).with_context("log driver syslog"));
  return std::unique_ptr<runtime::LogSink>(std::make_unique<SyslogTlsSink>(std::move(c), std::move(*s)));
}

}  // namespace husk::logs
