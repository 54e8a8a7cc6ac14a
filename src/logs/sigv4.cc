#include "logs/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <algorithm>

#include "common/error.h"

namespace husk::logs {
namespace {

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) out += digits[p[i] >> 4], out += digits[p[i] & 15];
  return out;
}

std::string hmac(const std::string& key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), out, &n);
  return std::string(reinterpret_cast<char*>(out), n);
}

}  // namespace

std::string sha256_hex(std::string_view data) {
  unsigned char d[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), d);
  return hex(d, sizeof d);
}

SignedRequest sigv4_sign(const AwsCredentials& creds, const std::string& region, const std::string& service,
                         const std::string& host, const std::string& path,
                         std::vector<std::pair<std::string, std::string>> headers, const std::string& body,
                         const std::string& amz_date) {
  std::string date = amz_date.substr(0, 8);
  headers.emplace_back("host", host);
  headers.emplace_back("x-amz-date", amz_date);
  if (!creds.session_token.empty()) headers.emplace_back("x-amz-security-token", creds.session_token);
  std::sort(headers.begin(), headers.end());
  std::string canonical_headers, signed_headers;
  for (const auto& [k, v] : headers) {
    canonical_headers += k + ":" + v + "\n";
    signed_headers += (signed_headers.empty() ? "" : ";") + k;
  }
  std::string canonical =
      cat("POST\n", path.empty() ? "/" : path, "\n\n", canonical_headers, "\n", signed_headers, "\n", sha256_hex(body));
  std::string scope = cat(date, "/", region, "/", service, "/aws4_request");
  std::string to_sign = cat("AWS4-HMAC-SHA256\n", amz_date, "\n", scope, "\n", sha256_hex(canonical));
  std::string key = hmac(hmac(hmac(hmac("AWS4" + creds.secret_access_key, date), region), service), "aws4_request");
  std::string sig = hmac(key, to_sign);
  SignedRequest r;
  for (const auto& [k, v] : headers)
    if (k != "host") r.headers.push_back(k + ": " + v);
  r.headers.push_back(cat("Host: ", host));
  r.headers.push_back(cat("Authorization: AWS4-HMAC-SHA256 Credential=", creds.access_key_id, "/", scope,
                          ", SignedHeaders=", signed_headers,
                          ", Signature=", hex(reinterpret_cast<const unsigned char*>(sig.data()), sig.size())));
  return r;
}

}  // namespace husk::logs
