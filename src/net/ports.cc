#include "net/ports.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/fd.h"

namespace husk::net {

std::string ports_key(const std::vector<PortForward>& ports) {
  std::string out;
  for (const auto& p : ports) out += cat(out.empty() ? "" : ",", p.host_port, "/", protocol_name(p.protocol));
  return out.empty() ? "-" : out;
}

Result<> check_ports_free(const std::vector<PortForward>& ports, const std::vector<Lease>& others) {
  for (const auto& p : ports) {
    std::string key = cat(p.host_port, "/", protocol_name(p.protocol));
    for (const auto& l : others) {
      std::string list = "," + l.ports + ",";
      if (list.find("," + key + ",") != std::string::npos)
        return fail_errno(EADDRINUSE, "port ", key, " is already published by container \"", l.id, "\"");
    }
    int family = p.host_ip && p.host_ip->family == AF_INET6 ? AF_INET6 : AF_INET;
    int fd = ::socket(family, (p.protocol == Protocol::Udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail_sys("socket to check port ", key);
    UniqueFd owned(fd);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_storage ss = {};
    socklen_t len;
    if (family == AF_INET) {
      auto* sin = reinterpret_cast<struct sockaddr_in*>(&ss);
      sin->sin_family = AF_INET;
      sin->sin_port = htons(p.host_port);
      if (p.host_ip) memcpy(&sin->sin_addr, p.host_ip->bytes, 4);
      len = sizeof *sin;
    } else {
      auto* sin6 = reinterpret_cast<struct sockaddr_in6*>(&ss);
      sin6->sin6_family = AF_INET6;
      sin6->sin6_port = htons(p.host_port);
      memcpy(&sin6->sin6_addr, p.host_ip->bytes, 16);
      len = sizeof *sin6;
    }
    if (::bind(fd, reinterpret_cast<struct sockaddr*>(&ss), len) < 0) {
      std::string where = p.host_ip ? p.host_ip->str() : std::string("0.0.0.0");
      if (errno == EADDRINUSE) return fail_errno(EADDRINUSE, "port ", key, " is already in use on ", where);
      if (errno == EADDRNOTAVAIL)
        return fail_errno(EADDRNOTAVAIL, "port ", key, ": ", where, " is not an address of this host");
      if (errno != EACCES) return fail_sys("check port ", key, " on ", where);
    }
  }
  return {};
}

}  // namespace husk::net
