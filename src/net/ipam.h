// Address management for husk's bridge networks. State lives in files under
// a root directory (<state root>/.networks), so it survives a crash of husk:
//   lock            flock()ed by every allocation and release (one at a time)
//   NAME/subnet     the network's subnet ("10.89.0.0/24"), fixed at first use
//   NAME/leases     one line per address in use: ADDR ID PID START PORTS
// An address is never handed out twice: a lease is dropped only by its
// container's release, or when its container's init is gone (a container
// that crashed or was killed without `delete`); those stale leases are
// returned so their owner's leftovers can be cleaned up too.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "net/config.h"

namespace husk::net {

struct Subnet {
  IpAddress network;  // IPv4
  int prefix = 24;
  uint32_t first() const;  // host-order network address
  uint32_t size() const { return prefix >= 32 ? 1u : 1u << (32 - prefix); }
  IpAddress at(uint32_t offset) const;  // network + offset
  IpAddress gateway() const { return at(1); }
  bool contains(const IpAddress& a) const;
  std::string str() const;
};
Result<Subnet> parse_subnet(const std::string& cidr);

// The IPv6 prefix of a dual-stack network: a container's IPv6 address has
// the same offset in it as its IPv4 address in the IPv4 subnet, so the
// IPv4 lease covers both.
struct Subnet6 {
  IpAddress prefix;
  int length = 64;
  IpAddress at(uint32_t offset) const;
  IpAddress gateway() const { return at(1); }
  std::string str() const;
};
Result<Subnet6> parse_subnet6(const std::string& cidr);

// The default network's subnet: not podman's 10.88.0.0/16.
inline constexpr const char* kDefaultSubnet = "10.89.0.0/24";

struct Lease {
  IpAddress address;
  std::string id;
  pid_t pid = 0;
  uint64_t start = 0;
  std::string ports = "-";  // the container's host ports, "8080/tcp,53/udp" or "-"
};

// Whether pid with that start time still runs (the runtime's check).
using AliveFn = std::function<bool(pid_t, uint64_t)>;

class Ipam {
 public:
  // Lock the IPAM root (created if missing).
  static Result<Ipam> lock(const std::string& root, AliveFn alive);

  // The network's subnet; on first use it is `wanted` or, unset, the
  // default for husk0 and the next free 10.89.N.0/24 for other names.
  Result<Subnet> subnet(const std::string& name, const std::optional<std::string>& wanted);
  // The network's IPv6 prefix, when it has one (fixed at first use too).
  Result<std::optional<Subnet6>> subnet6(const std::string& name, const std::optional<std::string>& wanted);
  // Every live lease of every network (stale ones are left for allocate).
  Result<std::vector<Lease>> all_leases();
  // The live leases of one network.
  Result<std::vector<Lease>> live_leases(const std::string& name);
  // A free address for id (the one at `wanted` offset in the subnet when
  // given: an error if a live container holds it); stale leases of the
  // network are reclaimed and appended to `reclaimed`.
  Result<IpAddress> allocate(const std::string& name, const Subnet& subnet, const Lease& lease_template,
                             std::vector<Lease>& reclaimed, std::optional<uint32_t> wanted = std::nullopt);
  // Drop id's lease; returns how many leases the network still has.
  Result<size_t> release(const std::string& name, const std::string& id);
  // Forget a network whose last lease went (its subnet file and directory).
  void forget(const std::string& name);

 private:
  Ipam(std::string root, UniqueFd lock, AliveFn alive)
      : root_(std::move(root)), lock_(std::move(lock)), alive_(std::move(alive)) {}
  Result<std::vector<Lease>> read_leases(const std::string& name);
  Result<> write_leases(const std::string& name, const std::vector<Lease>& leases);
  std::string root_;
  UniqueFd lock_;
  AliveFn alive_;
};

std::string format_lease(const Lease& l);
Result<Lease> parse_lease(const std::string& line);

}  // namespace husk::net
