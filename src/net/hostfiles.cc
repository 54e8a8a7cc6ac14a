#include "net/hostfiles.h"

#include <algorithm>

#include "common/fd.h"
#include "common/text.h"

namespace husk::net {
namespace {

std::vector<IpAddress> nameservers(const std::string& text) {
  std::vector<IpAddress> out;
  for (std::string_view l : lines_of(text)) {
    if (!l.starts_with("nameserver")) continue;
    std::string v(l.substr(10));
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(v.begin());
    size_t end = v.find_first_of(" \t#%");
    if (end != std::string::npos) v = v.substr(0, end);
    if (auto ip = parse_ip(v); ip) out.push_back(*ip);
  }
  return out;
}

void add_unique(std::vector<IpAddress>& list, const IpAddress& a) {
  for (const auto& x : list)
    if (x == a) return;
  list.push_back(a);
}

}  // namespace

std::string render_hosts(const HostsInput& in) {
  std::string out =
      "127.0.0.1\tlocalhost localhost.localdomain\n"
      "::1\tlocalhost localhost.localdomain ip6-localhost ip6-loopback\n";
  if (!in.hostname.empty()) {
    std::string names = in.hostname;
    size_t dot = in.hostname.find('.');
    if (dot != std::string::npos) names += " " + in.hostname.substr(0, dot);
    out += cat(in.own_address ? in.own_address->str() : std::string("127.0.1.1"), "\t", names, "\n");
    if (in.own_address6) out += cat(in.own_address6->str(), "\t", names, "\n");
  }
  for (const auto& h : in.extra_hosts) out += cat(h.address.str(), "\t", h.name, "\n");
  if (in.host_address) out += cat(in.host_address->str(), "\thost.containers.internal host.husk.internal\n");
  return out;
}

std::string render_resolv_conf(const ResolvInput& in) {
  std::string out;
  for (std::string_view l : lines_of(in.host_resolv_conf))
    if (l.starts_with("search") || l.starts_with("domain") || l.starts_with("options")) out.append(l).append("\n");
  std::vector<IpAddress> servers;
  if (!in.dns.empty()) {
    servers = in.dns;
  } else if (in.forwarder) {
    servers.push_back(*in.forwarder);
  } else {
    for (const auto& ns : nameservers(in.host_resolv_conf)) {
      if (!ns.is_loopback() || in.keep_loopback) {
        add_unique(servers, ns);
        continue;
      }
      for (const auto& up : nameservers(in.upstream_resolv_conf))
        if (!up.is_loopback()) add_unique(servers, up);
    }
  }
  for (const auto& s : servers) out += cat("nameserver ", s.str(), "\n");
  if (in.network_dns && in.dns.empty()) return resolv_conf_for_network_dns(out, *in.network_dns);
  return out;
}

std::string resolv_conf_for_network_dns(const std::string& resolv_conf, const IpAddress& gateway) {
  std::string search = kNetworkDnsDomain, options;
  for (std::string_view l : lines_of(resolv_conf)) {
    if (l.starts_with("search") || l.starts_with("domain")) {
      std::string words(l.substr(6));
      std::replace(words.begin(), words.end(), '\t', ' ');
      for (std::string_view w : split_views(words, ' '))
        if (!w.empty() && w != kNetworkDnsDomain) search += " " + std::string(w);
    } else if (l.starts_with("options")) {
      options.append(l).append("\n");
    }
  }
  return cat("search ", search, "\nnameserver ", gateway.str(), "\n", options);
}

Result<> write_host_files(const std::string& dir, const HostsInput& hosts, const ResolvInput& resolv) {
  TRYV_CTX(write_file_atomic(dir + "/" + kHostsFile, render_hosts(hosts), 0644), "write the container's /etc/hosts");
  TRYV_CTX(write_file_atomic(dir + "/" + kResolvFile, render_resolv_conf(resolv), 0644),
           "write the container's /etc/resolv.conf");
  TRYV_CTX(write_file_atomic(dir + "/" + kHostnameFile, hosts.hostname + "\n", 0644),
           "write the container's /etc/hostname");
  return {};
}

}  // namespace husk::net
