// Rootful bridge networking: a Linux bridge per husk network (default
// husk0, 10.89.0.0/24, the bridge holding .1), a veth pair per container
// (the container's end is its eth0), an address from the IPAM, loopback
// up, a default route via the bridge, the nftables rules, and on a network
// with DNS the container's names and the network's husk-dns. attach()
// undoes its own partial work on failure; detach() removes a container's
// veth, rules, names and lease, and the bridge and its husk-dns with its
// network's last lease.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "net/config.h"
#include "net/ipam.h"

namespace husk::net {

struct BridgeRequest {
  std::string ipam_root;
  std::string network = "husk0";
  std::optional<std::string> subnet;   // first use only
  std::optional<std::string> subnet6;  // dual stack, first use only
  std::string id;
  pid_t pid = 0;
  uint64_t pid_start = 0;
  int netns_fd = -1;
  int mtu = 0;
  std::optional<std::array<unsigned char, 6>> mac;  // the container end's; unset: random
  std::string ifname = "eth0";                       // the container end's name
  // Static addresses (run.husk.ip/ip6). A network made for a container with
  // one and no subnet given gets the /24 (IPv4) or /64 (IPv6) holding it.
  std::optional<IpAddress> address;
  std::optional<IpAddress> address6;
  std::vector<PortForward> ports;
  // The network's husk-dns (network_dns.h) answers these names with the
  // container's addresses.
  bool dns = false;
  std::vector<std::string> dns_names;
};

struct BridgeAttachment {
  IpAddress address;
  IpAddress gateway;
  Subnet subnet;
  std::optional<IpAddress> address6;
};

// The host end of a container's veth pair: "hk" + a hash of the id.
std::string veth_name(const std::string& id);

Result<BridgeAttachment> bridge_attach(const BridgeRequest& req, const AliveFn& alive);
// Mode::Veth: the container's veth (host end veth_name(id)) joins the
// existing bridge `bridge` (an error naming it when missing); the
// container's interface and lo are up, with no address. Undone by
// veth_detach (which deleting the netns also does).
Result<> veth_attach(const std::string& bridge, const std::string& id, int netns_fd, int mtu,
                     const std::optional<std::array<unsigned char, 6>>& mac, const std::string& ifname = "eth0");
Result<> veth_detach(const std::string& id);
Result<> bridge_detach(const std::string& ipam_root, const std::string& network, const std::string& id,
                       const AliveFn& alive);

}  // namespace husk::net
