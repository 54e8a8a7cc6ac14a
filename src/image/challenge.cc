// WWW-Authenticate parsing: auth-scheme, then auth-params (token or
// quoted-string values with backslash escapes), comma separated.
#include "image/challenge.h"

#include <cctype>

namespace husk::image {

namespace {

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-.^_`|~/").find(c) != std::string_view::npos;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::vector<Challenge> parse_challenges(std::string_view h) {
  std::vector<Challenge> out;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < h.size() && (h[i] == ' ' || h[i] == '\t')) ++i;
  };
  auto token = [&] {
    size_t start = i;
    while (i < h.size() && is_token_char(h[i])) ++i;
    return h.substr(start, i - start);
  };
  while (i < h.size()) {
    skip_ws();
    while (i < h.size() && (h[i] == ',' || h[i] == ' ')) ++i;
    std::string_view scheme = token();
    if (scheme.empty()) {
      ++i;  // junk: skip a character and look again
      continue;
    }
    Challenge c;
    c.scheme = lower(scheme);
    // auth-params until the next "token SP" that starts a new challenge.
    while (i < h.size()) {
      skip_ws();
      size_t mark = i;
      std::string_view key = token();
      skip_ws();
      if (key.empty() || i >= h.size() || h[i] != '=') {
        i = mark;  // not a param: a new challenge starts here
        break;
      }
      ++i;
      skip_ws();
      std::string value;
      if (i < h.size() && h[i] == '"') {
        ++i;
        while (i < h.size() && h[i] != '"') {
          if (h[i] == '\\' && i + 1 < h.size()) ++i;
          value.push_back(h[i++]);
        }
        if (i < h.size()) ++i;  // closing quote
      } else {
        // A bare value: a token, though registries put URLs here unquoted.
        size_t start = i;
        while (i < h.size() && h[i] != ',' && h[i] != ' ' && h[i] != '\t') ++i;
        value = std::string(h.substr(start, i - start));
      }
      c.params[lower(key)] = value;
      skip_ws();
      if (i < h.size() && h[i] == ',') ++i;
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace husk::image
