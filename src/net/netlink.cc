#include "net/netlink.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace husk::net {
namespace {

// A netlink message under construction: header, fixed part, attributes.
class Message {
 public:
  Message(uint16_t type, uint16_t flags, const void* body, size_t body_len) {
    buf_.resize(NLMSG_LENGTH(body_len));
    auto* h = header();
    h->nlmsg_type = type;
    h->nlmsg_flags = static_cast<uint16_t>(flags | NLM_F_REQUEST | NLM_F_ACK);
    h->nlmsg_len = static_cast<uint32_t>(buf_.size());
    memcpy(NLMSG_DATA(h), body, body_len);
    align();
  }
  void attr(uint16_t type, const void* data, size_t len) {
    size_t at = buf_.size();
    buf_.resize(at + RTA_LENGTH(len));
    auto* rta = reinterpret_cast<struct rtattr*>(buf_.data() + at);
    rta->rta_type = type;
    rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    if (len) memcpy(RTA_DATA(rta), data, len);
    align();
  }
  void attr_str(uint16_t type, const std::string& s) { attr(type, s.c_str(), s.size() + 1); }
  void attr_u32(uint16_t type, uint32_t v) { attr(type, &v, sizeof v); }
  size_t begin_nest(uint16_t type) {
    size_t at = buf_.size();
    attr(type, nullptr, 0);
    return at;
  }
  void end_nest(size_t at) {
    auto* rta = reinterpret_cast<struct rtattr*>(buf_.data() + at);
    rta->rta_len = static_cast<uint16_t>(buf_.size() - at);
  }
  void raw(const void* data, size_t len) {  // a struct inside a nest
    size_t at = buf_.size();
    buf_.resize(at + NLMSG_ALIGN(len));
    memcpy(buf_.data() + at, data, len);
  }
  void* data() { return buf_.data(); }
  size_t size() {
    header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
    return buf_.size();
  }

 private:
  struct nlmsghdr* header() {
    return reinterpret_cast<struct nlmsghdr*>(buf_.data());
  }
  void align() { buf_.resize(NLMSG_ALIGN(buf_.size())); }
  std::vector<char> buf_;
};

struct ifinfomsg link_of(int index) {
  struct ifinfomsg ifi = {};
  ifi.ifi_family = AF_UNSPEC;
  ifi.ifi_index = index;
  return ifi;
}

}  // namespace

Result<Netlink> Netlink::open() {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return fail_sys("open a netlink socket");
  UniqueFd owned(fd);
  struct sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  if (::bind(fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0) return fail_sys("bind a netlink socket");
  return Netlink(std::move(owned));
}

Result<Netlink> Netlink::open_in(int netns_fd) {
  int self = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) return fail_sys("open /proc/self/ns/net");
  UniqueFd own(self);
  if (setns(netns_fd, CLONE_NEWNET) < 0) return fail_sys("enter the container's network namespace");
  auto nl = open();
  if (setns(self, CLONE_NEWNET) < 0) return fail_sys("return to husk's network namespace");
  return nl;
}

Result<> Netlink::request(void* msg, size_t len, std::string* reply) {
  auto* h = static_cast<struct nlmsghdr*>(msg);
  h->nlmsg_seq = seq_++;
  struct sockaddr_nl sa = {};
  sa.nl_family = AF_NETLINK;
  if (::sendto(fd_.get(), msg, len, 0, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0)
    return fail_sys("send a netlink request");
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_sys("read the netlink answer");
    for (auto* r = reinterpret_cast<struct nlmsghdr*>(buf); NLMSG_OK(r, static_cast<unsigned>(n));
         r = NLMSG_NEXT(r, n)) {
      if (r->nlmsg_seq != h->nlmsg_seq) continue;
      if (r->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<struct nlmsgerr*>(NLMSG_DATA(r));
        if (e->error == 0) return {};
        return fail_errno(-e->error, "netlink");
      }
      if (reply) reply->assign(reinterpret_cast<char*>(r), r->nlmsg_len);
    }
  }
}

Result<int> Netlink::link_index(const std::string& name) {
  struct ifinfomsg ifi = link_of(0);
  Message m(RTM_GETLINK, 0, &ifi, sizeof ifi);
  m.attr_str(IFLA_IFNAME, name);
  std::string reply;
  auto r = request(m.data(), m.size(), &reply);
  if (!r) {
    if (r.error().code() == ENODEV) return 0;
    return fail(std::move(r.error()).with_context(cat("look up link ", name)));
  }
  if (reply.size() < NLMSG_LENGTH(sizeof(struct ifinfomsg))) return 0;
  auto* got = static_cast<struct ifinfomsg*>(NLMSG_DATA(reinterpret_cast<struct nlmsghdr*>(reply.data())));
  return got->ifi_index;
}

Result<> Netlink::create_bridge(const std::string& name, int mtu, const unsigned char* mac) {
  struct ifinfomsg ifi = link_of(0);
  Message m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
  m.attr_str(IFLA_IFNAME, name);
  if (mtu > 0) m.attr_u32(IFLA_MTU, static_cast<uint32_t>(mtu));
  m.attr(IFLA_ADDRESS, mac, 6);
  size_t info = m.begin_nest(IFLA_LINKINFO);
  m.attr_str(IFLA_INFO_KIND, "bridge");
  m.end_nest(info);
  TRYV_CTX(request(m.data(), m.size()), "create bridge ", name);
  return {};
}

Result<> Netlink::create_veth(const std::string& host_name, const std::string& peer_name, int peer_netns_fd, int mtu,
                              const unsigned char* peer_mac) {
  struct ifinfomsg ifi = link_of(0);
  Message m(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
  m.attr_str(IFLA_IFNAME, host_name);
  if (mtu > 0) m.attr_u32(IFLA_MTU, static_cast<uint32_t>(mtu));
  size_t info = m.begin_nest(IFLA_LINKINFO);
  m.attr_str(IFLA_INFO_KIND, "veth");
  size_t data = m.begin_nest(IFLA_INFO_DATA);
  size_t peer = m.begin_nest(VETH_INFO_PEER);
  struct ifinfomsg peer_ifi = link_of(0);
  m.raw(&peer_ifi, sizeof peer_ifi);
  m.attr_str(IFLA_IFNAME, peer_name);
  if (mtu > 0) m.attr_u32(IFLA_MTU, static_cast<uint32_t>(mtu));
  if (peer_mac) m.attr(IFLA_ADDRESS, peer_mac, 6);
  m.attr_u32(IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
  m.end_nest(peer);
  m.end_nest(data);
  m.end_nest(info);
  TRYV_CTX(request(m.data(), m.size()), "create veth pair ", host_name, "/", peer_name);
  return {};
}

Result<> Netlink::set_master(int index, int master_index) {
  struct ifinfomsg ifi = link_of(index);
  Message m(RTM_NEWLINK, 0, &ifi, sizeof ifi);
  m.attr_u32(IFLA_MASTER, static_cast<uint32_t>(master_index));
  TRYV_CTX(request(m.data(), m.size()), "attach link ", index, " to bridge ", master_index);
  return {};
}

Result<> Netlink::set_up(int index) {
  struct ifinfomsg ifi = link_of(index);
  ifi.ifi_flags = IFF_UP;
  ifi.ifi_change = IFF_UP;
  Message m(RTM_NEWLINK, 0, &ifi, sizeof ifi);
  TRYV_CTX(request(m.data(), m.size()), "bring link ", index, " up");
  return {};
}

Result<> Netlink::set_mtu(int index, int mtu) {
  struct ifinfomsg ifi = link_of(index);
  Message m(RTM_NEWLINK, 0, &ifi, sizeof ifi);
  m.attr_u32(IFLA_MTU, static_cast<uint32_t>(mtu));
  TRYV_CTX(request(m.data(), m.size()), "set the MTU of link ", index, " to ", mtu);
  return {};
}

Result<> Netlink::add_address(int index, const IpAddress& addr, int prefix) {
  struct ifaddrmsg ifa = {};
  ifa.ifa_family = static_cast<unsigned char>(addr.family);
  ifa.ifa_prefixlen = static_cast<unsigned char>(prefix);
  ifa.ifa_index = static_cast<unsigned>(index);
  Message m(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
  size_t len = addr.family == AF_INET ? 4 : 16;
  m.attr(IFA_LOCAL, addr.bytes, len);
  m.attr(IFA_ADDRESS, addr.bytes, len);
  // No duplicate address detection: the IPAM already made it unique, and
  // a tentative address cannot be used for the first seconds.
  if (addr.family == AF_INET6) m.attr_u32(IFA_FLAGS, IFA_F_NODAD);
  if (addr.family == AF_INET && prefix < 31) {
    unsigned char brd[4];
    memcpy(brd, addr.bytes, 4);
    uint32_t host_bits = prefix == 0 ? 0xffffffffu : (1u << (32 - prefix)) - 1;
    uint32_t v;
    memcpy(&v, brd, 4);
    v = htonl(ntohl(v) | host_bits);
    m.attr(IFA_BROADCAST, &v, 4);
  }
  auto r = request(m.data(), m.size());
  if (!r && r.error().code() != EEXIST)
    return fail(std::move(r.error()).with_context(cat("add address ", addr.str(), "/", prefix, " to link ", index)));
  return {};
}

Result<> Netlink::add_default_route(const IpAddress& gateway) {
  struct rtmsg rt = {};
  rt.rtm_family = static_cast<unsigned char>(gateway.family);
  rt.rtm_table = RT_TABLE_MAIN;
  rt.rtm_protocol = RTPROT_BOOT;
  rt.rtm_scope = RT_SCOPE_UNIVERSE;
  rt.rtm_type = RTN_UNICAST;
  Message m(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rt, sizeof rt);
  m.attr(RTA_GATEWAY, gateway.bytes, gateway.family == AF_INET ? 4 : 16);
  TRYV_CTX(request(m.data(), m.size()), "add a default route via ", gateway.str());
  return {};
}

Result<> Netlink::delete_link(const std::string& name) {
  struct ifinfomsg ifi = link_of(0);
  Message m(RTM_DELLINK, 0, &ifi, sizeof ifi);
  m.attr_str(IFLA_IFNAME, name);
  auto r = request(m.data(), m.size());
  if (!r && r.error().code() != ENODEV) return fail(std::move(r.error()).with_context(cat("delete link ", name)));
  return {};
}

}  // namespace husk::net
