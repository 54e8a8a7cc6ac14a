#include "dns/reverse.h"

#include <netinet/in.h>

#include <cstdlib>
#include <tuple>

#include "common/text.h"

namespace husk::dns {
namespace {

constexpr std::string_view kInAddr = "in-addr.arpa", kIp6 = "ip6.arpa";

// The value of a decimal label in canonical form (0-255, no leading zero).
int octet(std::string_view label) {
  if (label.empty() || label.size() > 3 || (label.size() > 1 && label[0] == '0')) return -1;
  int v = 0;
  for (char c : label) {
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v <= 255 ? v : -1;
}

int nibble(std::string_view label) {
  if (label.size() != 1) return -1;
  char c = label[0];
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;  // the question's name is in lower case
  return -1;
}

// Whether the first `bits` bits of a and b are the same.
bool same_prefix(const Address& a, const Address& b, int bits) {
  for (int i = 0; i < bits; i++) {
    int byte = i / 8, mask = 0x80 >> (i % 8);
    if ((a.bytes[byte] & mask) != (b.bytes[byte] & mask)) return false;
  }
  return true;
}

}  // namespace

std::optional<Prefix> parse_prefix(const std::string& cidr) {
  size_t slash = cidr.find('/');
  if (slash == std::string::npos) return std::nullopt;
  auto a = parse_address(cidr.substr(0, slash));
  std::string len = cidr.substr(slash + 1);
  if (!a || len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  int n = atoi(len.c_str());
  if (n > (a->family == AF_INET ? 32 : 128)) return std::nullopt;
  return Prefix{*a, n};
}

std::optional<ReverseName> parse_reverse_name(const std::string& name) {
  std::string_view rest = name;
  ReverseName r;
  int width = 0;
  for (auto [suffix, family, w] : {std::tuple{kInAddr, AF_INET, 8}, std::tuple{kIp6, AF_INET6, 4}}) {
    if (rest == suffix) {
      rest = "";
    } else if (rest.size() > suffix.size() && rest.ends_with(suffix) && rest[rest.size() - suffix.size() - 1] == '.') {
      rest.remove_suffix(suffix.size() + 1);
    } else {
      continue;
    }
    r.leading.family = family;
    width = w;
    break;
  }
  if (width == 0) return std::nullopt;
  const int full = r.leading.family == AF_INET ? 32 : 128;
  std::vector<std::string_view> labels = rest.empty() ? std::vector<std::string_view>{} : split_views(rest, '.');
  for (auto it = labels.rbegin(); it != labels.rend(); ++it) {
    int v = r.bits < full ? (width == 8 ? octet(*it) : nibble(*it)) : -1;
    if (v < 0) {
      r.malformed = true;
      break;
    }
    // A label's bits: an octet is a whole byte, a nibble half of one.
    r.leading.bytes[r.bits / 8] |= static_cast<unsigned char>(width == 8 ? v : v << (4 - r.bits % 8));
    r.bits += width;
  }
  r.complete = !r.malformed && r.bits == full;
  return r;
}

std::optional<Verdict> decide_reverse(const std::vector<AddressName>& names, const std::vector<Prefix>& subnets,
                                      const std::string& name, std::string& target) {
  target.clear();
  auto r = parse_reverse_name(name);
  if (!r) return std::nullopt;
  if (r->complete)
    for (const auto& n : names)
      if (same_address(n.address, r->leading)) {
        target = n.name + "." + kDomain;
        return Verdict::Answer;
      }
  for (const auto& s : subnets) {
    if (s.address.family != r->leading.family || r->bits < s.length) continue;
    if (!same_prefix(r->leading, s.address, s.length)) continue;
    if (r->complete || r->malformed) return Verdict::NxDomain;
    for (const auto& n : names)
      if (n.address.family == r->leading.family && same_prefix(n.address, r->leading, r->bits)) return Verdict::Answer;
    return Verdict::NxDomain;
  }
  return Verdict::Forward;
}

}  // namespace husk::dns
