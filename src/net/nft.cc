#include "net/nft.h"

#include "net/command.h"

namespace husk::net {
namespace {

std::string tag(const std::string& id) { return cat("comment \"husk:", id, "\""); }

std::string trim(std::string s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.erase(s.begin());
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  return s;
}

Result<std::string> nft_binary() { return find_program("nft", "nftables"); }

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + what.size())) ++n;
  return n;
}
size_t count_tagged(const std::string& listing) { return count_of(listing, " comment \"husk:"); }
size_t count_lines(const std::string& script) { return count_of(script, "\n"); }

}  // namespace

std::string render_rules(const ContainerRules& r) {
  const std::string t = cat("inet ", kNftTable);
  const std::string ip = r.address.str();
  std::string s =
      cat("add table ", t, "\n", "add chain ", t, " prerouting { type nat hook prerouting priority dstnat; }\n",
          "add chain ", t, " output { type nat hook output priority -100; }\n", "add chain ", t,
          " postrouting { type nat hook postrouting priority srcnat; }\n");
  // Outbound: everything leaving the subnet goes out with the host's address.
  s += cat("add rule ", t, " postrouting ip saddr ", ip, " ip daddr != ", r.subnet.str(), " masquerade ", tag(r.id),
           "\n");
  if (r.address6)
    s += cat("add rule ", t, " postrouting ip6 saddr ", r.address6->str(), " ip6 daddr != ", r.subnet6, " masquerade ",
             tag(r.id), "\n");
  bool any_loopback = false;
  for (const auto& p : r.ports) {
    const char* proto = protocol_name(p.protocol);
    bool v4 = !p.host_ip || p.host_ip->family == AF_INET;
    bool v6 = r.address6 && (!p.host_ip || p.host_ip->family == AF_INET6);
    if (v4) {
      std::string to = cat(" dnat ip to ", ip, ":", p.container_port, " ", tag(r.id), "\n");
      std::string match =
          p.host_ip ? cat("ip daddr ", p.host_ip->str(), " ") : std::string("meta nfproto ipv4 fib daddr type local ");
      s += cat("add rule ", t, " prerouting ", match, proto, " dport ", p.host_port, to);
      s += cat("add rule ", t, " output ", match, proto, " dport ", p.host_port, to);
      if (!p.host_ip || p.host_ip->is_loopback()) any_loopback = true;
    }
    if (v6) {
      std::string to = cat(" dnat ip6 to [", r.address6->str(), "]:", p.container_port, " ", tag(r.id), "\n");
      std::string match =
          p.host_ip ? cat("ip6 daddr ", p.host_ip->str(), " ") : std::string("meta nfproto ipv6 fib daddr type local ");
      s += cat("add rule ", t, " prerouting ", match, proto, " dport ", p.host_port, to);
      s += cat("add rule ", t, " output ", match, proto, " dport ", p.host_port, to);
    }
  }
  // Connections to 127.0.0.1:PORT need a source the container can answer.
  if (any_loopback)
    s += cat("add rule ", t, " postrouting oifname \"", r.bridge, "\" ip saddr 127.0.0.0/8 ip daddr ", ip,
             " masquerade ", tag(r.id), "\n");
  return s;
}

std::string render_deletes(const std::string& listing, const std::string& id) {
  std::string out, chain;
  const std::string want = tag(id);
  size_t pos = 0;
  while (pos < listing.size()) {
    size_t nl = listing.find('\n', pos);
    if (nl == std::string::npos) nl = listing.size();
    std::string line = trim(listing.substr(pos, nl - pos));
    pos = nl + 1;
    if (line.starts_with("chain ")) {
      chain = line.substr(6);
      size_t sp = chain.find(' ');
      if (sp != std::string::npos) chain = chain.substr(0, sp);
      continue;
    }
    size_t h = line.rfind("# handle ");
    if (h == std::string::npos || chain.empty()) continue;
    // The tag ends the rule's text: "... comment "husk:ID" # handle 7".
    std::string body = trim(line.substr(0, h));
    if (!body.ends_with(want)) continue;
    out += cat("delete rule inet ", kNftTable, " ", chain, " handle ", line.substr(h + 9), "\n");
  }
  return out;
}

Result<> add_rules(const ContainerRules& r) {
  std::string nft = TRY(nft_binary());
  TRYV_CTX(run_program({nft, "-f", "-"}, render_rules(r)), "add the nftables rules of container \"", r.id, "\"");
  return {};
}

Result<> delete_rules(const std::string& id) {
  std::string nft = TRY(nft_binary());
  auto listing = run_program({nft, "-a", "list", "table", "inet", kNftTable});
  if (!listing) return {};  // no table: nothing of ours
  std::string script = render_deletes(*listing, id);
  // The table goes with its last rules: when every tagged rule is id's.
  if (count_tagged(*listing) == count_lines(script)) script = cat("delete table inet ", kNftTable, "\n");
  if (!script.empty())
    TRYV_CTX(run_program({nft, "-f", "-"}, script), "delete the nftables rules of container \"", id, "\"");
  return {};
}

}  // namespace husk::net
