#include "logs/http.h"

#include <mutex>

namespace husk::logs {
namespace {

size_t collect(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

}  // namespace

bool split_url(const std::string& url, UrlParts* out) {
  size_t sep = url.find("://");
  if (sep == std::string::npos || sep == 0) return false;
  out->scheme = url.substr(0, sep);
  std::string rest = url.substr(sep + 3);
  size_t slash = rest.find_first_of("/?#");
  std::string hostport = rest.substr(0, slash);
  out->path = slash == std::string::npos ? "" : rest.substr(slash);
  if (hostport.empty()) return false;
  if (hostport[0] == '[') {
    size_t close = hostport.find(']');
    if (close == std::string::npos) return false;
    out->host = hostport.substr(1, close - 1);
    std::string after = hostport.substr(close + 1);
    if (!after.empty() && after[0] != ':') return false;
    out->port = after.empty() ? "" : after.substr(1);
  } else {
    size_t colon = hostport.rfind(':');
    out->host = hostport.substr(0, colon);
    out->port = colon == std::string::npos ? "" : hostport.substr(colon + 1);
  }
  if (out->host.empty() || out->port.find_first_not_of("0123456789") != std::string::npos) return false;
  if (out->port.empty()) out->port = out->scheme == "https" ? "443" : "80";
  return true;
}

Result<HttpClient> HttpClient::make(TlsOptions tls, long timeout_ms) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  HttpClient c;
  c.curl_.reset(curl_easy_init());
  if (!c.curl_) return fail_msg("curl_easy_init failed");
  c.tls_ = std::move(tls);
  c.timeout_ms_ = timeout_ms;
  return c;
}

Result<HttpResponse> HttpClient::request(const std::string& method, const std::string& url,
                                         const std::vector<std::string>& headers, const std::string& body) {
  CURL* c = curl_.get();
  curl_easy_reset(c);  // keeps the connection
  std::string target = url;
  std::string connect_to;
  UrlParts u;
  if (!tls_.server_name.empty() && split_url(url, &u)) {
    // The certificate must name server_name (Go's tls.Config.ServerName):
    // ask for that host and connect to the URL's.
    std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
    target = u.scheme + "://" + tls_.server_name + ":" + u.port + u.path;
    connect_to = tls_.server_name + ":" + u.port + ":" + host + ":" + u.port;
  }
  struct curl_slist* connect_list = nullptr;
  struct curl_slist* hdrs = nullptr;
  for (const std::string& h : headers) hdrs = curl_slist_append(hdrs, h.c_str());
  hdrs = curl_slist_append(hdrs, "Expect:");  // no 100-continue round trip
  if (!connect_to.empty()) connect_list = curl_slist_append(connect_list, connect_to.c_str());
  HttpResponse r;
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(c, CURLOPT_URL, target.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms_);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, std::min(timeout_ms_, 10000L));
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
  if (connect_list) curl_easy_setopt(c, CURLOPT_CONNECT_TO, connect_list);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  if (!tls_.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, tls_.ca_file.c_str());
  if (!tls_.cert_file.empty()) curl_easy_setopt(c, CURLOPT_SSLCERT, tls_.cert_file.c_str());
  if (!tls_.key_file.empty()) curl_easy_setopt(c, CURLOPT_SSLKEY, tls_.key_file.c_str());
  if (tls_.skip_verify) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  } else {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
  }
  CURLcode rc = curl_easy_perform(c);
  curl_slist_free_all(hdrs);
  curl_slist_free_all(connect_list);
  if (rc != CURLE_OK) return fail_msg(method, " ", url, ": ", errbuf[0] ? errbuf : curl_easy_strerror(rc));
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  return r;
}

}  // namespace husk::logs
