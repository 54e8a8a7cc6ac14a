// The container's /etc/hosts, /etc/resolv.conf and /etc/hostname: their
// text (pure functions, unit-tested) and the files in the container's state
// directory that are bind-mounted over the image's, so the image is never
// written.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "net/config.h"

namespace husk::net {

struct HostsInput {
  std::string hostname;
  std::optional<IpAddress> own_address;  // the container's, when husk gave it one
  std::optional<IpAddress> own_address6;
  std::optional<IpAddress> host_address;  // host.containers.internal, when reachable
  std::vector<ExtraHost> extra_hosts;
};
std::string render_hosts(const HostsInput& in);

struct ResolvInput {
  std::string host_resolv_conf;        // the host's /etc/resolv.conf
  std::string upstream_resolv_conf;    // systemd-resolved's upstream list, may be ""
  std::vector<IpAddress> dns;          // --dns / run.husk.dns: replaces the nameservers
  std::optional<IpAddress> forwarder;  // pasta/slirp4netns DNS forwarder: the only nameserver
  bool keep_loopback = false;          // host network: the host's loopback resolver works
  std::optional<IpAddress> network_dns;  // the gateway of a network with husk-dns (unless dns is given)
};
// The host's search/options lines, and nameservers the container can reach:
// loopback ones (127.0.0.53 of systemd-resolved) are replaced by the
// upstream servers, or dropped.
std::string render_resolv_conf(const ResolvInput& in);

// The domain of the names husk-dns answers (src/dns/message.h's kDomain).
inline constexpr const char* kNetworkDnsDomain = "dns.husk";
// A resolv.conf for a network with husk-dns: the search list of
// resolv_conf with dns.husk first, its options, and the gateway as the only
// nameserver.
std::string resolv_conf_for_network_dns(const std::string& resolv_conf, const IpAddress& gateway);

// Names of the generated files in the container's state directory.
inline constexpr const char* kHostsFile = "hosts";
inline constexpr const char* kResolvFile = "resolv.conf";
inline constexpr const char* kHostnameFile = "hostname";

// Write the three files into dir (the container's state directory).
Result<> write_host_files(const std::string& dir, const HostsInput& hosts, const ResolvInput& resolv);

}  // namespace husk::net
