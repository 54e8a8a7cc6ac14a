// A small HTTP(S) client over libcurl for husk-log's senders (splunk,
// awslogs): one connection kept alive between requests, the TLS checks
// the driver's options ask for, and errors that say what went wrong.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>
#include <vector>

#include "common/error.h"

namespace husk::logs {

struct TlsOptions {
  std::string ca_file;              // PEM file of the CAs to trust ("" for the system's)
  std::string server_name;          // the name the certificate must have ("" for the URL's host)
  std::string cert_file, key_file;  // a client certificate
  bool skip_verify = false;
};

struct HttpResponse {
  long status = 0;
  std::string body;
};

class HttpClient {
 public:
  static Result<HttpClient> make(TlsOptions tls, long timeout_ms);
  HttpClient(HttpClient&&) noexcept = default;
  HttpClient& operator=(HttpClient&&) noexcept = default;

  // `method` "POST" or "OPTIONS"; headers as "Name: value". An error when
  // no response came (connect, TLS, timeout); any status is a response.
  Result<HttpResponse> request(const std::string& method, const std::string& url,
                               const std::vector<std::string>& headers, const std::string& body);

 private:
  HttpClient() = default;
  struct Deleter {
    void operator()(CURL* c) const { curl_easy_cleanup(c); }
  };
  std::unique_ptr<CURL, Deleter> curl_;
  TlsOptions tls_;
  long timeout_ms_ = 30000;
};

// "https://host:port/" split: scheme, host (without [] for v6), port (the
// scheme's default when none); false when it is not such a URL.
struct UrlParts {
  std::string scheme, host, port, path;
};
bool split_url(const std::string& url, UrlParts* out);

}  // namespace husk::logs
