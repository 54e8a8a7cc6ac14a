// Published host ports: a port is free when no husk container publishes it
// and nothing on this host is bound to it (checked with bind(2), before
// anything is made, so the error comes early and names the port).
#pragma once

#include <vector>

#include "common/error.h"
#include "net/config.h"
#include "net/ipam.h"

namespace husk::net {

Result<> check_ports_free(const std::vector<PortForward>& ports, const std::vector<Lease>& others);
// "8080/tcp,53/udp": how a lease records the ports it holds.
std::string ports_key(const std::vector<PortForward>& ports);

}  // namespace husk::net
