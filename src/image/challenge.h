// WWW-Authenticate challenges from a registry (RFC 7235, as the
// distribution spec uses them): `Bearer realm="...",service="...",
// scope="..."` sends the client to a token server; `Basic realm="..."`
// wants credentials on every request.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace husk::image {

struct Challenge {
  std::string scheme;                         // lower case: "bearer", "basic"
  std::map<std::string, std::string> params;  // keys lower case
  std::string param(const std::string& k) const {
    auto it = params.find(k);
    return it == params.end() ? "" : it->second;
  }
};

// One header value may carry several challenges ("Basic realm=x, Bearer
// realm=y"); malformed parts are skipped, not fatal.
std::vector<Challenge> parse_challenges(std::string_view header);

}  // namespace husk::image
