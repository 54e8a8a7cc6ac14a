// A TLS client connection over a stream socket (OpenSSL), for the log
// drivers that write a byte stream over TLS (syslog's tcp+tls).
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"
#include "logs/http.h"
#include "runtime/log_sink.h"

namespace husk::logs {

class TlsStream {
 public:
  // Connects to `endpoint` and makes the handshake; the server's
  // certificate must name `host` (a DNS name or an IP address) and chain
  // to tls.ca_file (or the system's CAs) unless tls.skip_verify.
  static Result<TlsStream> connect(const runtime::Endpoint& endpoint, const std::string& host, const TlsOptions& tls,
                                   int timeout_ms);
  TlsStream(TlsStream&&) noexcept = default;
  TlsStream& operator=(TlsStream&&) noexcept = default;

  Result<> write_all(std::string_view data);
  // Up to n bytes within timeout_ms: their count, 0 at the end, an error
  // on a failure or the timeout.
  Result<size_t> read_some(char* buf, size_t n, int timeout_ms);
  // A write that waits longer than this fails (0: no limit).
  void set_send_timeout(long ms);

  // Ends the connection in order: close_notify, then what the server sent
  // and was not read (session tickets) is read, up to timeout_ms. Closing
  // with unread bytes would send a reset, which makes the server's kernel
  // drop the last lines it had not read yet.
  void finish(int timeout_ms);

 private:
  TlsStream() = default;
  struct CtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
  };
  struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
  };
  UniqueFd fd_;
  std::unique_ptr<SSL_CTX, CtxFree> ctx_;
  std::unique_ptr<SSL, SslFree> ssl_;
};

}  // namespace husk::logs
