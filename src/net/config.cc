#include "net/config.h"

#include <arpa/inet.h>

#include <cstdlib>
#include <cstring>
#include <tuple>

namespace husk::net {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t next = s.find(sep, pos);
    if (next == std::string::npos) next = s.size();
    std::string part = s.substr(pos, next - pos);
    while (!part.empty() && part.front() == ' ') part.erase(part.begin());
    while (!part.empty() && part.back() == ' ') part.pop_back();
    if (!part.empty()) out.push_back(part);
    pos = next + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ",") + p;
  return out;
}

Result<uint16_t> parse_port_number(const std::string& s) {
  char* end = nullptr;
  long v = strtol(s.c_str(), &end, 10);
  if (s.empty() || *end || v < 1 || v > 65535) return fail_msg("port \"", s, "\" is not a number in 1..65535");
  return static_cast<uint16_t>(v);
}

}  // namespace

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::Unset:
      return "unset";
    case Mode::None:
      return "none";
    case Mode::Host:
      return "host";
    case Mode::Pasta:
      return "pasta";
    case Mode::Slirp4netns:
      return "slirp4netns";
    case Mode::Bridge:
      return "bridge";
    case Mode::Veth:
      return "veth";
    case Mode::Path:
      return "ns";
    case Mode::Container:
      return "container";
  }
  return "?";
}

const char* protocol_name(Protocol p) { return p == Protocol::Udp ? "udp" : "tcp"; }

std::string IpAddress::str() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(family, bytes, buf, sizeof buf);
  return buf;
}

bool IpAddress::is_loopback() const {
  if (family == AF_INET) return bytes[0] == 127;
  static const unsigned char kLoop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return memcmp(bytes, kLoop6, 16) == 0;
}

bool IpAddress::operator==(const IpAddress& o) const {
  return family == o.family && memcmp(bytes, o.bytes, family == AF_INET ? 4 : 16) == 0;
}

Result<IpAddress> parse_ip(const std::string& text) {
  IpAddress a;
  std::string t = text;
  if (t.size() > 2 && t.front() == '[' && t.back() == ']') t = t.substr(1, t.size() - 2);
  if (inet_pton(AF_INET, t.c_str(), a.bytes) == 1) {
    a.family = AF_INET;
    return a;
  }
  if (inet_pton(AF_INET6, t.c_str(), a.bytes) == 1) {
    a.family = AF_INET6;
    return a;
  }
  return fail_errno(EINVAL, "\"", text, "\" is not an IP address");
}

std::string PortForward::str() const {
  std::string ip;
  if (host_ip) ip = (host_ip->family == AF_INET6 ? "[" + host_ip->str() + "]" : host_ip->str()) + ":";
  return cat(ip, host_port, ":", container_port, "/", protocol_name(protocol));
}

bool valid_hostname(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_')) return false;
  return name.front() != '-' && name.front() != '.';
}

bool valid_interface_name(const std::string& name) {
  if (name.empty() || name.size() > 15 || name == "." || name == "..") return false;
  for (char c : name)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

Result<std::array<unsigned char, 6>> parse_mac(const std::string& text) {
  std::array<unsigned char, 6> m{};
  auto bad = [&](const char* why) { return fail_errno(EINVAL, "\"", text, "\" is not a MAC address (", why, ")"); };
  if (text.size() != 17) return bad("expected 6 hex octets, aa:bb:cc:dd:ee:ff");
  for (size_t i = 0; i < 6; ++i) {
    if (i > 0 && text[i * 3 - 1] != ':' && text[i * 3 - 1] != '-') return bad("expected 6 hex octets, aa:bb:cc:dd:ee:ff");
    unsigned v = 0;
    for (size_t k = 0; k < 2; ++k) {
      char c = text[i * 3 + k];
      if (!isxdigit(static_cast<unsigned char>(c))) return bad("expected 6 hex octets, aa:bb:cc:dd:ee:ff");
      v = v * 16 + static_cast<unsigned>(isdigit(static_cast<unsigned char>(c)) ? c - '0' : (tolower(c) - 'a' + 10));
    }
    m[i] = static_cast<unsigned char>(v);
  }
  if (m[0] & 1) return bad("a multicast address; the first octet must be even");
  bool zero = true;
  for (auto b : m) zero = zero && b == 0;
  if (zero) return bad("all zero");
  return m;
}

Result<Mode> parse_mode(const std::string& value, std::string& bridge, std::string& path) {
  if (value == "none") return Mode::None;
  if (value == "host") return Mode::Host;
  if (value == "pasta") return Mode::Pasta;
  if (value == "slirp4netns") return Mode::Slirp4netns;
  if (value == "bridge") return Mode::Bridge;
  if (value.starts_with("bridge:")) {
    bridge = value.substr(7);
    if (!valid_interface_name(bridge))
      return fail_errno(EINVAL, "bridge name \"", bridge, "\" is not a valid interface name (1-15 of [A-Za-z0-9_.-])");
    return Mode::Bridge;
  }
  if (value.starts_with("veth:")) {
    bridge = value.substr(5);
    if (!valid_interface_name(bridge))
      return fail_errno(EINVAL, "bridge name \"", bridge, "\" is not a valid interface name (1-15 of [A-Za-z0-9_.-])");
    return Mode::Veth;
  }
  if (value.starts_with("ns:")) {
    path = value.substr(3);
    if (path.empty() || path[0] != '/') return fail_errno(EINVAL, "ns: needs an absolute path to a network namespace");
    return Mode::Path;
  }
  if (value.starts_with("container:")) {
    path = value.substr(10);
    if (path.empty()) return fail_errno(EINVAL, "container: needs a container id");
    return Mode::Container;
  }
  return fail_errno(EINVAL, "unknown network mode \"", value,
                    "\" (none, host, pasta, slirp4netns, bridge[:NAME], veth:BRIDGE, ns:PATH, container:ID)");
}

Result<PortForward> parse_port(const std::string& text) {
  PortForward p;
  std::string s = text;
  size_t slash = s.rfind('/');
  if (slash != std::string::npos) {
    std::string proto = s.substr(slash + 1);
    if (proto == "tcp")
      p.protocol = Protocol::Tcp;
    else if (proto == "udp")
      p.protocol = Protocol::Udp;
    else
      return fail_errno(EINVAL, "port \"", text, "\": protocol must be tcp or udp, got \"", proto, "\"");
    s = s.substr(0, slash);
  }
  // [IP:]HOST:CONTAINER, the IP possibly a bracketed IPv6 address.
  size_t last = s.rfind(':');
  if (last == std::string::npos)
    return fail_errno(EINVAL, "port \"", text, "\": expected [IP:]HOST:CONTAINER[/tcp|udp]");
  std::string container = s.substr(last + 1);
  std::string rest = s.substr(0, last);
  size_t mid = rest.rfind(':');
  std::string host = mid == std::string::npos ? rest : rest.substr(mid + 1);
  if (mid != std::string::npos) {
    auto ip = parse_ip(rest.substr(0, mid));
    if (!ip) return fail_errno(EINVAL, "port \"", text, "\": ", ip.error().what());
    p.host_ip = *ip;
  }
  auto hp = parse_port_number(host);
  if (!hp) return fail_errno(EINVAL, "port \"", text, "\": host ", hp.error().what());
  auto cp = parse_port_number(container);
  if (!cp) return fail_errno(EINVAL, "port \"", text, "\": container ", cp.error().what());
  p.host_port = *hp;
  p.container_port = *cp;
  return p;
}

Result<IpAddress> parse_static_address(const std::string& text, int family) {
  auto ip = parse_ip(text);
  if (!ip) return fail(std::move(ip.error()));
  if (ip->family != family)
    return fail_errno(EINVAL, "\"", text, "\" is not an ", family == AF_INET ? "IPv4" : "IPv6", " address");
  return *ip;
}

Result<ExtraHost> parse_extra_host(const std::string& text) {
  size_t colon = text.find(':');
  if (colon == std::string::npos) return fail_errno(EINVAL, "host \"", text, "\": expected NAME:IP");
  ExtraHost h;
  h.name = text.substr(0, colon);
  if (!valid_hostname(h.name)) return fail_errno(EINVAL, "host \"", text, "\": \"", h.name, "\" is not a host name");
  auto ip = parse_ip(text.substr(colon + 1));
  if (!ip) return fail_errno(EINVAL, "host \"", text, "\": ", ip.error().what());
  h.address = *ip;
  return h;
}

Result<Config> parse_config(const std::map<std::string, std::string>& a, bool rootless) {
  Config c;
  auto get = [&](const char* key) -> const std::string* {
    auto it = a.find(key);
    return it == a.end() ? nullptr : &it->second;
  };
  if (const std::string* v = get(kNetworkAnnotation)) {
    c.mode = TRY_CTX(parse_mode(*v, c.bridge, c.path), "annotations.", kNetworkAnnotation);
  }
  if (const std::string* v = get(kPortsAnnotation)) {
    for (const auto& p : split(*v, ',')) c.ports.push_back(TRY_CTX(parse_port(p), "annotations.", kPortsAnnotation));
    for (size_t i = 0; i < c.ports.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (c.ports[i].host_port == c.ports[j].host_port && c.ports[i].protocol == c.ports[j].protocol)
          return fail_errno(EINVAL, "annotations.", kPortsAnnotation, ": host port ", c.ports[i].host_port, "/",
                            protocol_name(c.ports[i].protocol), " is forwarded twice");
  }
  if (const std::string* v = get(kDnsAnnotation)) {
    for (const auto& d : split(*v, ',')) c.dns.push_back(TRY_CTX(parse_ip(d), "annotations.", kDnsAnnotation));
  }
  if (const std::string* v = get(kAddHostsAnnotation)) {
    for (const auto& h : split(*v, ','))
      c.extra_hosts.push_back(TRY_CTX(parse_extra_host(h), "annotations.", kAddHostsAnnotation));
  }
  if (const std::string* v = get(kMtuAnnotation)) {
    char* end = nullptr;
    long m = strtol(v->c_str(), &end, 10);
    if (v->empty() || *end || m < 68 || m > 65535)
      return fail_errno(EINVAL, "annotations.", kMtuAnnotation, ": \"", *v, "\" is not an MTU in 68..65535");
    c.mtu = static_cast<int>(m);
  }
  if (const std::string* v = get(kSubnetAnnotation)) {
    if (c.mode != Mode::Bridge)
      return fail_errno(EINVAL, "annotations.", kSubnetAnnotation, ": a subnet needs network mode bridge");
    c.subnet = *v;
  }
  if (const std::string* v = get(kSubnet6Annotation)) {
    if (c.mode != Mode::Bridge)
      return fail_errno(EINVAL, "annotations.", kSubnet6Annotation, ": a subnet needs network mode bridge");
    c.subnet6 = *v;
  }
  if (const std::string* v = get(kMacAnnotation)) {
    if (c.mode != Mode::Bridge && c.mode != Mode::Veth)
      return fail_errno(EINVAL, "annotations.", kMacAnnotation, ": a MAC address needs network mode bridge or veth");
    c.mac = TRY_CTX(parse_mac(*v), "annotations.", kMacAnnotation);
  }
  for (auto [key, family, out] : {std::tuple{kIpAnnotation, AF_INET, &c.ip}, std::tuple{kIp6Annotation, AF_INET6, &c.ip6}}) {
    const std::string* v = get(key);
    if (!v) continue;
    if (c.mode != Mode::Bridge)
      return fail_errno(EINVAL, "annotations.", key, ": a static address needs network mode bridge");
    *out = TRY_CTX(parse_static_address(*v, family), "annotations.", key);
  }
  if (const std::string* v = get(kIfnameAnnotation)) {
    if (c.mode != Mode::Bridge && c.mode != Mode::Veth)
      return fail_errno(EINVAL, "annotations.", kIfnameAnnotation, ": an interface name needs network mode bridge or veth");
    if (!valid_interface_name(*v) || *v == "lo")
      return fail_errno(EINVAL, "annotations.", kIfnameAnnotation, ": \"", *v,
                        "\" is not an interface name (1-15 of [A-Za-z0-9_.-], not lo)");
    c.ifname = *v;
  }
  if (const std::string* v = get(kAliasesAnnotation)) {
    if (c.mode != Mode::Bridge)
      return fail_errno(EINVAL, "annotations.", kAliasesAnnotation, ": network aliases need network mode bridge");
    for (const auto& name : split(*v, ',')) {
      if (!valid_hostname(name))
        return fail_errno(EINVAL, "annotations.", kAliasesAnnotation, ": \"", name, "\" is not a host name");
      c.aliases.push_back(name);
    }
  }
  if (c.mode == Mode::Unset && c.requested() && !c.ports.empty()) c.mode = rootless ? Mode::Pasta : Mode::Bridge;
  if (!c.ports.empty() && (!c.configures_interfaces() || c.mode == Mode::Veth))
    return fail_errno(EINVAL, "annotations.", kPortsAnnotation,
                      ": port forwarding needs network mode pasta, "
                      "slirp4netns or bridge, not ",
                      mode_name(c.mode));
  if ((c.mode == Mode::Bridge || c.mode == Mode::Veth) && rootless)
    return fail_errno(EPERM, "annotations.", kNetworkAnnotation,
                      ": bridge networking needs root; "
                      "use pasta or slirp4netns rootless");
  return c;
}

Result<> apply_flags(const Flags& f, std::map<std::string, std::string>& a) {
  if (f.network) {
    std::string bridge, path;
    TRYV_CTX(parse_mode(*f.network, bridge, path), "--network");
    a[kNetworkAnnotation] = *f.network;
  }
  if (!f.publish.empty()) {
    std::vector<std::string> all;
    for (const auto& p : f.publish)
      for (const auto& one : split(p, ',')) all.push_back(TRY_CTX(parse_port(one), "--publish").str());
    a[kPortsAnnotation] = join(all);
  }
  if (!f.dns.empty()) {
    for (const auto& d : f.dns) TRYV_CTX(parse_ip(d), "--dns");
    a[kDnsAnnotation] = join(f.dns);
  }
  if (!f.add_hosts.empty()) {
    for (const auto& h : f.add_hosts) TRYV_CTX(parse_extra_host(h), "--add-host");
    a[kAddHostsAnnotation] = join(f.add_hosts);
  }
  if (f.mac) {
    TRYV_CTX(parse_mac(*f.mac), "--mac-address");
    a[kMacAnnotation] = *f.mac;
  }
  if (!f.aliases.empty()) {
    std::vector<std::string> all;
    for (const auto& given : f.aliases)
      for (const auto& one : split(given, ',')) {
        if (!valid_hostname(one)) return fail_errno(EINVAL, "--network-alias: \"", one, "\" is not a host name");
        all.push_back(one);
      }
    a[kAliasesAnnotation] = join(all);
  }
  if (f.ip) {
    TRYV_CTX(parse_static_address(*f.ip, AF_INET), "--ip");
    a[kIpAnnotation] = *f.ip;
  }
  if (f.ip6) {
    TRYV_CTX(parse_static_address(*f.ip6, AF_INET6), "--ip6");
    a[kIp6Annotation] = *f.ip6;
  }
  return {};
}

}  // namespace husk::net
