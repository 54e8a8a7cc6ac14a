// Reverse names on a husk network: a PTR query of in-addr.arpa (RFC 1035
// 3.5) or ip6.arpa (RFC 3596) gets the own name of the container with that
// address under dns.husk; a name inside the network's own subnets that no
// container has is NXDOMAIN (the network is authoritative for them); every
// other reverse name is forwarded. Pure, for the unit tests.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dns/message.h"
#include "dns/records.h"

namespace husk::dns {

// A subnet of the network ("10.89.1.0/24", "fd41::/64").
struct Prefix {
  Address address;
  int length = 0;
};
std::optional<Prefix> parse_prefix(const std::string& cidr);

// What the labels of a name under in-addr.arpa or ip6.arpa say, read from
// the most significant one (next to the suffix) down.
struct ReverseName {
  Address leading;         // the bits of the well-formed labels, the rest 0
  int bits = 0;            // how many: 8 a decimal label, 4 a nibble
  bool complete = false;   // exactly one whole address, every label well formed
  bool malformed = false;  // a label that is no octet ("300", "05", "x") or nibble ("ab"), or one too many
};
// nullopt: not a reverse name.
std::optional<ReverseName> parse_reverse_name(const std::string& name);

// For a reverse name (nullopt for any other, which decide() takes):
//   Answer, target = "NAME.dns.husk": a container of the network has it;
//   Answer, target = "": fewer labels than an address, inside a subnet,
//     with a container's address below it (NOERROR, no record: NXDOMAIN
//     would deny every name beneath it, RFC 8020);
//   NxDomain: inside a subnet (its well-formed labels fall in it): an
//     address no container has, a malformed name, a node with no container
//     below;
//   Forward: outside the subnets, or above them ("10.in-addr.arpa" for a /16).
std::optional<Verdict> decide_reverse(const std::vector<AddressName>& names, const std::vector<Prefix>& subnets,
                                      const std::string& name, std::string& target);

}  // namespace husk::dns
