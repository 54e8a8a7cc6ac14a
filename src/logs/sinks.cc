#include "logs/sinks.h"

#include "logs/awslogs.h"
#include "logs/gcplogs.h"
#include "logs/splunk.h"
#include "logs/syslog_tls.h"
#include "logs/tls_stream.h"
#include "runtime/log_fluentd.h"

namespace husk::logs {
namespace {

// TLS as the connection fluentd's sink writes its events to.
class TlsConnection : public runtime::LogConnection {
 public:
  explicit TlsConnection(TlsStream s) : s_(std::move(s)) {}
  bool write_all(std::string_view data) override { return ok(s_.write_all(data)); }
  long read_some(char* buf, size_t n, int timeout_ms) override {
    auto r = s_.read_some(buf, n, timeout_ms);
    return ok(r) ? static_cast<long>(*r) : -1;
  }
  std::string why() const override { return why_; }
  void finish() override { s_.finish(2000); }

 private:
  template <typename T>
  bool ok(const Result<T>& r) {
    if (!r) why_ = r.error().str();
    return r.has_value();
  }
  TlsStream s_;
  std::string why_;
};

Result<std::unique_ptr<runtime::LogConnection>> tls_connection(const runtime::Endpoint& e, const std::string& host,
                                                               int connect_timeout_ms, long send_timeout_ms) {
  TlsStream s = TRY(TlsStream::connect(e, host, TlsOptions{}, connect_timeout_ms));
  if (send_timeout_ms > 0) s.set_send_timeout(send_timeout_ms);
  return std::unique_ptr<runtime::LogConnection>(std::make_unique<TlsConnection>(std::move(s)));
}

}  // namespace

Result<std::unique_ptr<runtime::LogSink>> open_sink(const std::string& driver, const std::vector<std::string>& opts,
                                                    const std::string& container_id) {
  if (driver == "splunk") return open_splunk(opts, container_id);
  if (driver == "syslog") return open_syslog_tls(opts, container_id);
  if (driver == "awslogs") return open_awslogs(opts, container_id);
  if (driver == "gcplogs") return open_gcplogs(opts, container_id);
  if (driver == "fluentd") return runtime::open_fluentd(opts, container_id, tls_connection);
  return fail_msg("--log-driver: \"", driver,
                  "\" is not a log driver husk-log has (splunk, awslogs, gcplogs, syslog over tcp+tls, fluentd over tls)");
}

}  // namespace husk::logs
