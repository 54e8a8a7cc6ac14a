#include "logs/tls_stream.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace husk::logs {
namespace {

// OpenSSL's queue of errors as one text, oldest first.
std::string ssl_errors() {
  std::string out;
  for (unsigned long e; (e = ERR_get_error()) != 0;) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

bool is_ip(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

}  // namespace

Result<TlsStream> TlsStream::connect(const runtime::Endpoint& endpoint, const std::string& host, const TlsOptions& tls,
                                     int timeout_ms) {
  TlsStream t;
  t.ctx_.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX* ctx = t.ctx_.get();
  if (!ctx) return fail_msg("TLS for ", endpoint.name, ": ", ssl_errors());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (!tls.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) != 1)
      return fail_msg("TLS for ", endpoint.name, ": load the CA certificates of ", tls.ca_file, ": ", ssl_errors());
  } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return fail_msg("TLS for ", endpoint.name, ": the system's CA certificates: ", ssl_errors());
  }
  if (!tls.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1)
      return fail_msg("TLS for ", endpoint.name, ": load the certificate ", tls.cert_file, ": ", ssl_errors());
    if (SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
      return fail_msg("TLS for ", endpoint.name, ": load the key ", tls.key_file, ": ", ssl_errors());
  }
  SSL_CTX_set_verify(ctx, tls.skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nullptr);
  t.fd_ = TRY(endpoint.connect(timeout_ms));
  // The handshake may wait on the server no longer than the connect did.
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(t.fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  t.ssl_.reset(SSL_new(ctx));
  SSL* ssl = t.ssl_.get();
  if (!ssl || SSL_set_fd(ssl, t.fd_.get()) != 1) return fail_msg("TLS for ", endpoint.name, ": ", ssl_errors());
  bool ip = is_ip(host);
  if (!ip) SSL_set_tlsext_host_name(ssl, host.c_str());
  if (!tls.skip_verify) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    if (ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1
           : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0) != 1)
      return fail_msg("TLS for ", endpoint.name, ": the name to verify (", host, "): ", ssl_errors());
  }
  if (SSL_connect(ssl) != 1) {
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK)
      return fail_msg("TLS handshake with ", endpoint.name,
                      ": the server's certificate: ", X509_verify_cert_error_string(v));
    return fail_msg("TLS handshake with ", endpoint.name, ": ", ssl_errors());
  }
  struct timeval none = {0, 0};
  setsockopt(t.fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
  return t;
}

void TlsStream::finish(int timeout_ms) {
  if (!ssl_) return;
  SSL_shutdown(ssl_.get());
  ::shutdown(fd_.get(), SHUT_WR);
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[4096];
  while (::recv(fd_.get(), buf, sizeof buf, 0) > 0) {
  }
  ssl_.reset();
  fd_.reset();
}

Result<size_t> TlsStream::read_some(char* buf, size_t n, int timeout_ms) {
  if (SSL_pending(ssl_.get()) == 0) {
    struct pollfd p = {fd_.get(), POLLIN, 0};
    int ready;
    while ((ready = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
    }
    if (ready == 0) return fail_msg("timed out");
    if (ready < 0) return fail_sys("poll");
  }
  size_t got = 0;
  int rc = SSL_read_ex(ssl_.get(), buf, n, &got);
  if (rc == 1) return got;
  int err = SSL_get_error(ssl_.get(), rc);
  if (err == SSL_ERROR_ZERO_RETURN) return size_t{0};
  if (err == SSL_ERROR_WANT_READ) return fail_msg("timed out");
  return fail_msg("TLS read: ", ssl_errors());
}

void TlsStream::set_send_timeout(long ms) {
  struct timeval tv = {static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
  setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

Result<> TlsStream::write_all(std::string_view data) {
  while (!data.empty()) {
    size_t n = 0;
    if (SSL_write_ex(ssl_.get(), data.data(), data.size(), &n) != 1) return fail_msg("TLS write: ", ssl_errors());
    data.remove_prefix(n);
  }
  return {};
}

}  // namespace husk::logs
