// husk's nftables rules for bridge networks, in a table of its own
// (`inet husk`) through `nft -f -`: masquerade of a container's outbound
// traffic and DNAT of its published ports (from other hosts, from this
// host's own addresses, and from 127.0.0.1). Every rule carries the comment
// "husk:<container id>", so a container's delete removes exactly its rules.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "net/config.h"
#include "net/ipam.h"

namespace husk::net {

inline constexpr const char* kNftTable = "husk";

struct ContainerRules {
  std::string id;
  std::string bridge;
  IpAddress address;
  Subnet subnet;
  std::optional<IpAddress> address6;  // dual stack
  std::string subnet6;
  std::vector<PortForward> ports;
};

// The `nft -f` script that adds a container's rules (creating the table and
// its chains when missing). Pure, for the unit tests.
std::string render_rules(const ContainerRules& r);
// From `nft -a list table inet husk`: "delete rule ... handle N" lines for
// every rule tagged with id.
std::string render_deletes(const std::string& listing, const std::string& id);

Result<> add_rules(const ContainerRules& r);
// Remove id's rules; the table goes too once no rule is left in it.
Result<> delete_rules(const std::string& id);

}  // namespace husk::net
