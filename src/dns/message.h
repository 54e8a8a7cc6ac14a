// DNS messages as husk-dns needs them (RFC 1035): the question of a
// query, a local answer (A/AAAA or PTR records, NXDOMAIN, an empty
// NOERROR), an error reply, and what to do with a name on a husk network.
// Pure, for the unit tests; no sockets here.
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace husk::dns {

// The domain of every husk network: "db" and "db.dns.husk" are the same
// container (podman's aardvark-dns uses dns.podman).
inline constexpr const char* kDomain = "dns.husk";
// Local answers are short-lived: containers come and go.
inline constexpr uint32_t kTtl = 5;

inline constexpr uint16_t kTypeA = 1, kTypePTR = 12, kTypeAAAA = 28, kTypeANY = 255;
inline constexpr uint8_t kNoError = 0, kFormErr = 1, kServFail = 2, kNxDomain = 3, kNotImp = 4, kRefused = 5;

struct Address {
  int family = AF_INET;
  unsigned char bytes[16] = {};
};
std::optional<Address> parse_address(const std::string& text);
bool same_address(const Address& a, const Address& b);

// Whether name can go into a message: labels of 1 to 63 octets, 253 in all.
bool is_domain_name(const std::string& name);

struct Question {
  uint16_t id = 0;
  uint16_t flags = 0;  // the query's
  std::string name;    // lower case, no trailing dot ("" = the root)
  uint16_t type = 0;
  uint16_t klass = 0;
  size_t end = 0;  // offset just past the question in the query
};
// The query's single question; nullopt for what is not a standard query
// with one question (the caller answers FORMERR/NOTIMP from the header).
std::optional<Question> parse_question(const std::string& msg);

// Names → addresses, keys in lower case.
using Records = std::map<std::string, std::vector<Address>>;

enum class Verdict { Answer, NxDomain, Forward };
// Answer: the name is a container's (matching addresses may be none:
// NOERROR with no answer); NxDomain: a single-label name or one under
// dns.husk that no container of the network has; Forward: anything else.
Verdict decide(const Records& records, const std::string& name, std::vector<Address>& found);

// The local answer to q: `addresses` of q.type (A: IPv4, AAAA: IPv6, ANY: both).
std::string answer(const std::string& query, const Question& q, uint8_t rcode, const std::vector<Address>& addresses);
// The local answer to a reverse name: `target` as a PTR record when q.type
// is PTR or ANY, NOERROR with no record for other types.
std::string answer_ptr(const std::string& query, const Question& q, const std::string& target);
// A header-only error reply (SERVFAIL, FORMERR...) echoing the query's id
// and its question when it has one.
std::string error_reply(const std::string& query, uint8_t rcode);

}  // namespace husk::dns
