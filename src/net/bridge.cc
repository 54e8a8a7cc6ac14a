#include "net/bridge.h"

#include <arpa/inet.h>
#include <sys/random.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstring>

#include "common/fd.h"
#include "net/netlink.h"
#include "net/network_dns.h"
#include "net/nft.h"
#include "net/ports.h"

namespace husk::net {
namespace {

// What a dead container left on the host: its rules, its names in the
// network's DNS and its veth (gone with its netns, normally).
void clean_leftovers(Netlink& nl, const std::string& network_dir, const std::string& id) {
  (void)delete_rules(id);
  leave_network_dns(network_dir, id);
  (void)nl.delete_link(veth_name(id));
}

// A bridge whose address the kernel chose takes the lowest of its ports'
// (br_stp_recalculate_bridge_id): a container leaving would change the
// gateway's MAC under the others, whose neighbour entries then point
// nowhere for seconds. One set at creation stays, as docker's bridges'.
Result<std::array<unsigned char, 6>> random_bridge_mac() {
  std::array<unsigned char, 6> mac;
  if (getrandom(mac.data(), mac.size(), 0) != static_cast<ssize_t>(mac.size()))
    return fail_sys("random MAC address for a bridge");
  mac[0] = static_cast<unsigned char>((mac[0] & 0xfe) | 0x02);  // unicast, locally administered
  return mac;
}

Result<int> ensure_bridge(Netlink& nl, const std::string& name, const Subnet& subnet, bool network_is_new, int mtu,
                          bool& made) {
  int index = TRY(nl.link_index(name));
  if (index > 0 && network_is_new)
    return fail_errno(EEXIST, "a network interface named \"", name,
                      "\" exists and is not a husk bridge: "
                      "choose another name with --network bridge:NAME");
  if (index == 0) {
    auto mac = TRY(random_bridge_mac());
    TRYV(nl.create_bridge(name, mtu, mac.data()));
    made = true;
    index = TRY(nl.link_index(name));
    if (index == 0) return fail_errno(ENODEV, "bridge ", name, " vanished after it was made");
  }
  TRYV(nl.add_address(index, subnet.gateway(), subnet.prefix));
  TRYV(nl.set_up(index));
  return index;
}

Result<> configure_container_side(int netns_fd, const std::string& ifname, const IpAddress& addr, const Subnet& subnet,
                                  const std::optional<Subnet6>& subnet6, uint32_t offset) {
  Netlink nl = TRY(Netlink::open_in(netns_fd));
  int lo = TRY(nl.link_index("lo"));
  if (lo > 0) TRYV(nl.set_up(lo));
  int eth = TRY(nl.link_index(ifname));
  if (eth == 0) return fail_errno(ENODEV, ifname, " is missing in the container's network namespace");
  TRYV(nl.add_address(eth, addr, subnet.prefix));
  TRYV(nl.set_up(eth));
  TRYV(nl.add_default_route(subnet.gateway()));
  if (subnet6) {
    TRYV(nl.add_address(eth, subnet6->at(offset), subnet6->length));
    TRYV(nl.add_default_route(subnet6->gateway()));
  }
  return {};
}

// The /24 holding a static IPv4 address, the /64 holding an IPv6 one: the
// subnet of a network made for it.
std::string enclosing_subnet(const IpAddress& a) {
  IpAddress n = a;
  n.bytes[3] = 0;
  return n.str() + "/24";
}
std::string enclosing_subnet6(const IpAddress& a) {
  IpAddress n = a;
  memset(n.bytes + 8, 0, 8);
  return n.str() + "/64";
}

// The offset in the network of the container's static address(es): an
// IPv6 one is the prefix + the offset in its low 32 bits, the same offset
// as the container's IPv4 address (one lease covers both).
Result<std::optional<uint32_t>> static_offset(const BridgeRequest& req, const Subnet& subnet,
                                              const std::optional<Subnet6>& subnet6) {
  std::optional<uint32_t> off;
  if (req.address) {
    if (!subnet.contains(*req.address))
      return fail_errno(EINVAL, "address ", req.address->str(), " is not in network \"", req.network, "\"'s subnet ",
                        subnet.str());
    uint32_t v;
    memcpy(&v, req.address->bytes, 4);
    off = ntohl(v) - subnet.first();
  }
  if (req.address6) {
    if (!subnet6)
      return fail_errno(EINVAL, "address ", req.address6->str(), ": network \"", req.network,
                        "\" has no IPv6 prefix (it is given with the network's first container)");
    uint32_t v;
    memcpy(&v, req.address6->bytes + 12, 4);
    uint32_t off6 = ntohl(v);
    if (!(subnet6->at(off6) == *req.address6))
      return fail_errno(EINVAL, "address ", req.address6->str(), " is not network \"", req.network,
                        "\"'s IPv6 prefix ", subnet6->str(), " with an offset in its last 32 bits");
    if (off6 >= subnet.size())
      return fail_errno(EINVAL, "address ", req.address6->str(), ": its offset ", off6, " is outside network \"",
                        req.network, "\"'s IPv4 subnet ", subnet.str(),
                        " (a container has the same offset in both)");
    if (off && *off != off6)
      return fail_errno(EINVAL, "addresses ", req.address->str(), " and ", req.address6->str(),
                        " have different offsets in network \"", req.network, "\" (", subnet.str(), ", ",
                        subnet6->str(), "); a container has the same offset in both: ", subnet6->at(*off).str());
    off = off6;
  }
  return off;
}

// The container's veth pair: its end `ifname` in netns_fd, the host end
// veth_name(id), whose name is returned.
Result<std::string> make_veth(Netlink& nl, const std::string& id, const std::string& ifname, int netns_fd, int mtu,
                              const std::optional<std::array<unsigned char, 6>>& mac) {
  std::string veth = veth_name(id);
  auto created = nl.create_veth(veth, ifname, netns_fd, mtu, mac ? mac->data() : nullptr);
  if (!created && created.error().code() == EEXIST)
    return fail_errno(EEXIST, "network interface \"", veth, "\" for container \"", id,
                      "\" exists already (another container's, or a name clash)");
  if (!created) return fail(std::move(created.error()));
  return veth;
}

}  // namespace

std::string veth_name(const std::string& id) {
  uint32_t h = 2166136261u;  // FNV-1a
  for (unsigned char c : id) h = (h ^ c) * 16777619u;
  char buf[16];
  snprintf(buf, sizeof buf, "hk%08x", h);
  return buf;
}

Result<BridgeAttachment> bridge_attach(const BridgeRequest& req, const AliveFn& alive) {
  Ipam ipam = TRY(Ipam::lock(req.ipam_root, alive));
  bool is_new = access((req.ipam_root + "/" + req.network + "/subnet").c_str(), F_OK) != 0;
  std::optional<std::string> want_subnet = req.subnet, want_subnet6 = req.subnet6;
  if (is_new && !want_subnet && req.address) want_subnet = enclosing_subnet(*req.address);
  if (is_new && !want_subnet6 && req.address6) want_subnet6 = enclosing_subnet6(*req.address6);
  auto subnets = [&]() -> Result<std::pair<Subnet, std::optional<Subnet6>>> {
    Subnet s4 = TRY(ipam.subnet(req.network, want_subnet));
    std::optional<Subnet6> s6 = TRY(ipam.subnet6(req.network, want_subnet6));
    return std::pair{s4, s6};
  }();
  if (!subnets) {
    if (is_new) ipam.forget(req.network);
    return fail(std::move(subnets.error()).with_context(cat("network \"", req.network, "\"")));
  }
  auto [subnet, subnet6] = *subnets;
  auto offset_wanted = static_offset(req, subnet, subnet6);
  if (!offset_wanted) {
    if (is_new) ipam.forget(req.network);
    return fail(std::move(offset_wanted.error()));
  }
  Netlink nl = TRY(Netlink::open());
  if (!req.ports.empty()) {
    std::vector<Lease> others = TRY(ipam.all_leases());
    TRYV(check_ports_free(req.ports, others));
  }

  Lease tmpl;
  tmpl.id = req.id;
  tmpl.pid = req.pid;
  tmpl.start = req.pid_start;
  tmpl.ports = ports_key(req.ports);
  std::vector<Lease> reclaimed;
  auto address = ipam.allocate(req.network, subnet, tmpl, reclaimed, *offset_wanted);
  const std::string network_dir = req.ipam_root + "/" + req.network;
  for (const auto& l : reclaimed) clean_leftovers(nl, network_dir, l.id);
  if (!address) {
    if (is_new) ipam.forget(req.network);
    return fail(std::move(address.error()));
  }

  // From here a failure undoes what was made, the lease last.
  bool made_bridge = false;
  auto made = [&]() -> Result<BridgeAttachment> {
    int bridge = TRY(ensure_bridge(nl, req.network, subnet, is_new, req.mtu, made_bridge));
    (void)write_file("/proc/sys/net/ipv4/ip_forward", "1");
    if (subnet6) {
      TRYV(nl.add_address(bridge, subnet6->gateway(), subnet6->length));
      (void)write_file("/proc/sys/net/ipv6/conf/all/forwarding", "1");
    }
    uint32_t offset = [&] {
      uint32_t v;
      memcpy(&v, address->bytes, 4);
      return ntohl(v) - subnet.first();
    }();
    if (!req.ports.empty()) (void)write_file(cat("/proc/sys/net/ipv4/conf/", req.network, "/route_localnet"), "1");
    std::string veth = TRY(make_veth(nl, req.id, req.ifname, req.netns_fd, req.mtu, req.mac));
    int host_end = TRY(nl.link_index(veth));
    TRYV(nl.set_master(host_end, bridge));
    TRYV(nl.set_up(host_end));
    TRYV_CTX(configure_container_side(req.netns_fd, req.ifname, *address, subnet, subnet6, offset),
             "configure the container's ", req.ifname);
    ContainerRules rules;
    rules.id = req.id;
    rules.bridge = req.network;
    rules.address = *address;
    rules.subnet = subnet;
    rules.ports = req.ports;
    if (subnet6) {
      rules.address6 = subnet6->at(offset);
      rules.subnet6 = subnet6->str();
    }
    TRYV(add_rules(rules));
    if (req.dns) {
      DnsMember m{req.id, req.dns_names, *address, rules.address6, req.pid, req.pid_start};
      TRYV_CTX(join_network_dns(network_dir, m, subnet, subnet6, alive), "the network's DNS server");
    }
    return BridgeAttachment{*address, subnet.gateway(), subnet, rules.address6};
  }();
  if (!made) {
    clean_leftovers(nl, network_dir, req.id);
    auto left = ipam.release(req.network, req.id);
    if (left && *left == 0) {
      // Only a bridge of ours: a clash must not delete someone's interface.
      if (made_bridge || !is_new) (void)nl.delete_link(req.network);
      stop_network_dns(network_dir, alive);
      ipam.forget(req.network);
    }
    return fail(std::move(made.error()).with_context(cat("network \"", req.network, "\"")));
  }
  return made;
}

Result<> veth_attach(const std::string& bridge, const std::string& id, int netns_fd, int mtu,
                     const std::optional<std::array<unsigned char, 6>>& mac, const std::string& ifname) {
  Netlink nl = TRY(Netlink::open());
  int master = TRY(nl.link_index(bridge));
  if (master == 0) return fail_errno(ENODEV, "bridge \"", bridge, "\" does not exist");
  std::string veth = TRY(make_veth(nl, id, ifname, netns_fd, mtu, mac));
  auto joined = [&]() -> Result<> {
    int host_end = TRY(nl.link_index(veth));
    TRYV_CTX(nl.set_master(host_end, master), "attach ", veth, " to bridge \"", bridge, "\" (is it a bridge?)");
    TRYV(nl.set_up(host_end));
    Netlink inner = TRY(Netlink::open_in(netns_fd));
    for (const std::string& name : {std::string("lo"), ifname}) {
      int index = TRY(inner.link_index(name));
      if (index > 0) TRYV(inner.set_up(index));
    }
    return {};
  }();
  if (!joined) {
    (void)nl.delete_link(veth);
    return fail(std::move(joined.error()));
  }
  return {};
}

Result<> veth_detach(const std::string& id) {
  Netlink nl = TRY(Netlink::open());
  return nl.delete_link(veth_name(id));
}

Result<> bridge_detach(const std::string& ipam_root, const std::string& network, const std::string& id,
                       const AliveFn& alive) {
  Ipam ipam = TRY(Ipam::lock(ipam_root, alive));
  Netlink nl = TRY(Netlink::open());
  TRYV(delete_rules(id));
  TRYV(nl.delete_link(veth_name(id)));
  const std::string network_dir = ipam_root + "/" + network;
  leave_network_dns(network_dir, id);
  // No subnet file: the network is not (or no longer) husk's, and the
  // interface of that name is not ours to delete.
  if (access((ipam_root + "/" + network + "/subnet").c_str(), F_OK) != 0) return {};
  size_t left = TRY(ipam.release(network, id));
  if (left == 0) {
    stop_network_dns(network_dir, alive);
    TRYV(nl.delete_link(network));
    ipam.forget(network);
  }
  return {};
}

}  // namespace husk::net
