// A small rtnetlink client (socket(AF_NETLINK, NETLINK_ROUTE), no libnl):
// the link, address and route requests the bridge mode needs. A socket
// belongs to the network namespace it was opened in, so one opened in a
// container's netns configures that namespace from husk's own process.
#pragma once

#include <string>

#include "common/error.h"
#include "common/fd.h"
#include "net/config.h"

namespace husk::net {

class Netlink {
 public:
  // In husk's own network namespace.
  static Result<Netlink> open();
  // In the network namespace of netns_fd (setns there and back).
  static Result<Netlink> open_in(int netns_fd);

  // 0 when there is no such link.
  Result<int> link_index(const std::string& name);
  // mac (6 bytes): the bridge's, set, so that it keeps it when ports come
  // and go.
  Result<> create_bridge(const std::string& name, int mtu, const unsigned char* mac);
  // A veth pair: host_name here, peer_name made directly in peer_netns_fd.
  // peer_mac (6 bytes) or nullptr: the kernel picks a random one.
  Result<> create_veth(const std::string& host_name, const std::string& peer_name, int peer_netns_fd, int mtu,
                       const unsigned char* peer_mac = nullptr);
  Result<> set_master(int index, int master_index);
  Result<> set_up(int index);
  Result<> set_mtu(int index, int mtu);
  // EEXIST is success: the address is there.
  Result<> add_address(int index, const IpAddress& addr, int prefix);
  Result<> add_default_route(const IpAddress& gateway);
  // ENODEV is success: nothing to delete.
  Result<> delete_link(const std::string& name);

 private:
  explicit Netlink(UniqueFd fd) : fd_(std::move(fd)) {}
  // Send one request with NLM_F_ACK and wait for its answer; errno of a NACK.
  Result<> request(void* msg, size_t len, std::string* reply = nullptr);
  UniqueFd fd_;
  uint32_t seq_ = 1;
};

}  // namespace husk::net
