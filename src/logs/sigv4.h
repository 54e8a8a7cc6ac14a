// AWS Signature Version 4 for a JSON API request (CloudWatch Logs), as
// https://docs.aws.amazon.com/general/latest/gr/sigv4_signing.html says.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace husk::logs {

struct AwsCredentials {
  std::string access_key_id, secret_access_key, session_token;
};

struct SignedRequest {
  std::vector<std::string> headers;  // "Name: value", Authorization last
};

// Signs a POST of `body` to `host` (as the Host header has it, with a
// port that is not the scheme's) and `path` with `headers` (lower-case
// name, value) besides host and x-amz-date, at `amz_date`
// ("20261204T185200Z") for `service` in `region`.
SignedRequest sigv4_sign(const AwsCredentials& creds, const std::string& region, const std::string& service,
                         const std::string& host, const std::string& path,
                         std::vector<std::pair<std::string, std::string>> headers, const std::string& body,
                         const std::string& amz_date);

std::string sha256_hex(std::string_view data);

}  // namespace husk::logs
