// husk-dns for a bridge network: every bridge network but the default
// husk0 has one, as docker's user-defined networks have its embedded DNS
// and podman's theirs aardvark-dns. The state, under the network's IPAM
// directory (<state root>/.networks/NAME/dns, changed under the IPAM lock
// only):
//   records/ID.rec  the names and addresses of container ID (dns/records.h)
//   server          "PID START" of the network's husk-dns
//   log             its stderr
// The server is started when the first container joins (or when it died),
// stopped when the last one leaves, and then the directory goes too. It is
// no child of the driver nor of husk: it belongs to the network.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "net/config.h"
#include "net/ipam.h"

namespace husk::net {

// Whether a bridge network of that name gets husk-dns.
bool network_has_dns(const std::string& network);

struct DnsMember {
  std::string id;
  std::vector<std::string> names;  // the container's id and aliases
  IpAddress address;
  std::optional<IpAddress> address6;
  pid_t pid = 0;  // the container's init: husk-dns answers while it runs
  uint64_t start = 0;
};

// The record file's text for a member (pure).
std::string render_dns_record(const DnsMember& m);

// Called under the IPAM lock (bridge.cc). dir = <ipam root>/NAME.
// join: m's record, then the server (started unless it runs).
// The server listens on the subnets' gateways and is authoritative for
// their reverse names.
Result<> join_network_dns(const std::string& network_dir, const DnsMember& m, const Subnet& subnet,
                          const std::optional<Subnet6>& subnet6, const AliveFn& alive);
// leave: id's record goes (nothing when it has none).
void leave_network_dns(const std::string& network_dir, const std::string& id);
// stop: with the network's last container: the server and the directory.
void stop_network_dns(const std::string& network_dir, const AliveFn& alive);

}  // namespace husk::net
