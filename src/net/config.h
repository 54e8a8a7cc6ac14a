// What a bundle asks of the container's network, from the `run.husk.*`
// annotations of config.json (which `husk run/create` flags fill in):
//   run.husk.network    none | host | pasta | slirp4netns | bridge[:NAME] |
//                       veth:BRIDGE | ns:PATH | container:ID
//   run.husk.ports      [IP:]HOST:CONTAINER[/tcp|udp], comma separated
//   run.husk.dns        resolver addresses, comma separated
//   run.husk.add-hosts  NAME:IP, comma separated
//   run.husk.mtu        68..65535
//   run.husk.subnet     IPv4 CIDR of a bridge network, used when it is first made
//   run.husk.subnet6    IPv6 prefix (/64../120) making a bridge network dual stack
//   run.husk.mac        MAC address of the container's eth0 (bridge): 6 hex octets,
//                       unicast, not all zero
//   run.husk.aliases    names by which the other containers of its bridge network
//                       find this one, comma separated: through the network's
//                       husk-dns (every bridge network but husk0), or lines husk
//                       keeps in their /etc/hosts (husk0)
//   run.husk.ifname     the name of the container's end of the veth (bridge, veth):
//                       eth0 unless given (systemd-nspawn's is host0)
//   run.husk.hosts-file the host file bound at /etc/hosts when the bundle made it
//                       for the container (husk may add the aliases lines to it)
//   run.husk.resolv-file the host file bound at /etc/resolv.conf when the bundle
//                       made it for the container with the host's resolvers: on
//                       a network with husk-dns, husk points it at the gateway
//   run.husk.ip         the container's IPv4 address on its bridge network (static)
//   run.husk.ip6        its IPv6 address there (the network's IPv6 prefix + the
//                       container's offset, which its IPv4 address shares)
// Pure parsing and validation: every error names the annotation (or flag)
// and the value. No annotation at all = the OCI spec's own behaviour.
#pragma once

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"

namespace husk::net {

inline constexpr const char* kNetworkAnnotation = "run.husk.network";
inline constexpr const char* kPortsAnnotation = "run.husk.ports";
inline constexpr const char* kDnsAnnotation = "run.husk.dns";
inline constexpr const char* kAddHostsAnnotation = "run.husk.add-hosts";
inline constexpr const char* kMtuAnnotation = "run.husk.mtu";
inline constexpr const char* kSubnetAnnotation = "run.husk.subnet";
inline constexpr const char* kSubnet6Annotation = "run.husk.subnet6";
inline constexpr const char* kMacAnnotation = "run.husk.mac";
inline constexpr const char* kAliasesAnnotation = "run.husk.aliases";
inline constexpr const char* kHostsFileAnnotation = "run.husk.hosts-file";
inline constexpr const char* kResolvFileAnnotation = "run.husk.resolv-file";
inline constexpr const char* kIfnameAnnotation = "run.husk.ifname";
inline constexpr const char* kIpAnnotation = "run.husk.ip";
inline constexpr const char* kIp6Annotation = "run.husk.ip6";

// Veth: a veth pair whose host end joins an existing bridge husk does not
// manage (BRIDGE in Config::bridge); the container's eth0 is up with no
// address, for whatever serves that bridge (DHCP, a router) to configure.
enum class Mode { Unset, None, Host, Pasta, Slirp4netns, Bridge, Veth, Path, Container };
const char* mode_name(Mode m);

// An IPv4 or IPv6 address, kept in network byte order.
struct IpAddress {
  int family = AF_INET;
  unsigned char bytes[16] = {};
  std::string str() const;
  bool is_loopback() const;
  bool operator==(const IpAddress& o) const;
};
Result<IpAddress> parse_ip(const std::string& text);

enum class Protocol { Tcp, Udp };
const char* protocol_name(Protocol p);

struct PortForward {
  std::optional<IpAddress> host_ip;  // unset: every host address
  uint16_t host_port = 0;
  uint16_t container_port = 0;
  Protocol protocol = Protocol::Tcp;
  std::string str() const;  // back to [IP:]HOST:CONTAINER/proto
};

struct ExtraHost {
  std::string name;
  IpAddress address;
};

struct Config {
  Mode mode = Mode::Unset;
  std::string bridge = "husk0";  // Mode::Bridge
  std::string path;              // Mode::Path: netns file; Mode::Container: container id
  std::vector<PortForward> ports;
  std::vector<IpAddress> dns;
  std::vector<ExtraHost> extra_hosts;
  std::optional<int> mtu;
  std::optional<std::string> subnet;  // Mode::Bridge, validated by the IPAM
  std::optional<std::string> subnet6;
  std::optional<std::array<unsigned char, 6>> mac;  // Mode::Bridge
  std::optional<IpAddress> ip;                      // Mode::Bridge, IPv4
  std::optional<IpAddress> ip6;                     // Mode::Bridge, IPv6
  std::vector<std::string> aliases;                 // Mode::Bridge
  std::string ifname = "eth0";                      // Mode::Bridge, Mode::Veth

  // Whether husk touches the network at all (any annotation given).
  bool requested() const {
    return mode != Mode::Unset || !ports.empty() || !dns.empty() || !extra_hosts.empty() || mtu;
  }
  // Whether husk makes the container's interfaces (pasta, slirp4netns, bridge).
  bool configures_interfaces() const {
    return mode == Mode::Pasta || mode == Mode::Slirp4netns || mode == Mode::Bridge || mode == Mode::Veth;
  }
};

// rootless picks the default mode when only ports/dns/hosts are given:
// pasta for an unprivileged user, the bridge for root.
Result<Config> parse_config(const std::map<std::string, std::string>& annotations, bool rootless);

// The `husk run/create` flags, turned into annotations (flags win over what
// the bundle says). Each value is validated here, with the flag's name in
// the error.
struct Flags {
  std::optional<std::string> network;  // --network
  std::vector<std::string> publish;    // -p/--publish
  std::vector<std::string> dns;        // --dns
  std::vector<std::string> add_hosts;  // --add-host
  std::optional<std::string> mac;      // --mac-address
  std::optional<std::string> ip;       // --ip
  std::optional<std::string> ip6;      // --ip6
  std::vector<std::string> aliases;    // --network-alias
  bool empty() const {
    return !network && publish.empty() && dns.empty() && add_hosts.empty() && !mac && !ip && !ip6 && aliases.empty();
  }
};
Result<> apply_flags(const Flags& flags, std::map<std::string, std::string>& annotations);

// Pieces, exposed for the unit tests.
Result<Mode> parse_mode(const std::string& value, std::string& bridge, std::string& path);
Result<PortForward> parse_port(const std::string& text);
Result<ExtraHost> parse_extra_host(const std::string& text);
// An address of that family (AF_INET or AF_INET6) for run.husk.ip/ip6.
Result<IpAddress> parse_static_address(const std::string& text, int family);
bool valid_interface_name(const std::string& name);
// A host name for /etc/hosts (--add-host, run.husk.aliases): 1-253 of
// [A-Za-z0-9_.-], not starting with '-' or '.'.
bool valid_hostname(const std::string& name);
// aa:bb:cc:dd:ee:ff (or '-' separated); unicast and not all zero.
Result<std::array<unsigned char, 6>> parse_mac(const std::string& text);

}  // namespace husk::net
