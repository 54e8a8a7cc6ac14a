#include "net/bridge.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "common/fd.h"
#include "net/netlink.h"
#include "net/nft.h"
#include "net/ports.h"

namespace husk::net {
namespace {

// What a dead container left on the host: its rules and its veth (gone
// with its netns, normally).
void clean_leftovers(Netlink& nl, const std::string& id) {
  (void)delete_rules(id);
  (void)nl.delete_link(veth_name(id));
}

Result<int> ensure_bridge(Netlink& nl, const std::string& name, const Subnet& subnet, bool network_is_new, int mtu,
                          bool& made) {
  int index = TRY(nl.link_index(name));
  if (index > 0 && network_is_new)
    return fail_errno(EEXIST, "a network interface named \"", name,
                      "\" exists and is not a husk bridge: "
                      "choose another name with --network bridge:NAME");
  if (index == 0) {
    TRYV(nl.create_bridge(name, mtu));
    made = true;
    index = TRY(nl.link_index(name));
    if (index == 0) return fail_errno(ENODEV, "bridge ", name, " vanished after it was made");
  }
  TRYV(nl.add_address(index, subnet.gateway(), subnet.prefix));
  TRYV(nl.set_up(index));
  return index;
}

Result<> configure_container_side(int netns_fd, const IpAddress& addr, const Subnet& subnet,
                                  const std::optional<Subnet6>& subnet6, uint32_t offset) {
  Netlink nl = TRY(Netlink::open_in(netns_fd));
  int lo = TRY(nl.link_index("lo"));
  if (lo > 0) TRYV(nl.set_up(lo));
  int eth = TRY(nl.link_index("eth0"));
  if (eth == 0) return fail_errno(ENODEV, "eth0 is missing in the container's network namespace");
  TRYV(nl.add_address(eth, addr, subnet.prefix));
  TRYV(nl.set_up(eth));
  TRYV(nl.add_default_route(subnet.gateway()));
  if (subnet6) {
    TRYV(nl.add_address(eth, subnet6->at(offset), subnet6->length));
    TRYV(nl.add_default_route(subnet6->gateway()));
  }
  return {};
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
  Subnet subnet = TRY(ipam.subnet(req.network, req.subnet));
  std::optional<Subnet6> subnet6 = TRY(ipam.subnet6(req.network, req.subnet6));
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
  auto address = ipam.allocate(req.network, subnet, tmpl, reclaimed);
  for (const auto& l : reclaimed) clean_leftovers(nl, l.id);
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
    std::string veth = veth_name(req.id);
    auto created = nl.create_veth(veth, "eth0", req.netns_fd, req.mtu, req.mac ? req.mac->data() : nullptr);
    if (!created && created.error().code() == EEXIST)
      return fail_errno(EEXIST, "network interface \"", veth, "\" for container \"", req.id,
                        "\" exists already (another container's, or a name clash)");
    if (!created) return fail(std::move(created.error()));
    int host_end = TRY(nl.link_index(veth));
    TRYV(nl.set_master(host_end, bridge));
    TRYV(nl.set_up(host_end));
    TRYV_CTX(configure_container_side(req.netns_fd, *address, subnet, subnet6, offset),
             "configure the container's eth0");
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
    return BridgeAttachment{*address, subnet.gateway(), subnet, rules.address6};
  }();
  if (!made) {
    clean_leftovers(nl, req.id);
    auto left = ipam.release(req.network, req.id);
    if (left && *left == 0) {
      // Only a bridge of ours: a clash must not delete someone's interface.
      if (made_bridge || !is_new) (void)nl.delete_link(req.network);
      ipam.forget(req.network);
    }
    return fail(std::move(made.error()).with_context(cat("network \"", req.network, "\"")));
  }
  return made;
}

Result<> bridge_detach(const std::string& ipam_root, const std::string& network, const std::string& id,
                       const AliveFn& alive) {
  Ipam ipam = TRY(Ipam::lock(ipam_root, alive));
  Netlink nl = TRY(Netlink::open());
  TRYV(delete_rules(id));
  TRYV(nl.delete_link(veth_name(id)));
  // No subnet file: the network is not (or no longer) husk's, and the
  // interface of that name is not ours to delete.
  if (access((ipam_root + "/" + network + "/subnet").c_str(), F_OK) != 0) return {};
  size_t left = TRY(ipam.release(network, id));
  if (left == 0) {
    TRYV(nl.delete_link(network));
    ipam.forget(network);
  }
  return {};
}

}  // namespace husk::net
