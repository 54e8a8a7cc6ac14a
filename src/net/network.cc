#include "net/network.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "common/fd.h"
#include "common/text.h"
#include "net/bridge.h"
#include "net/helpers.h"
#include "net/hostfiles.h"
#include "net/netlink.h"
#include "net/network_dns.h"

namespace husk::net {
namespace {

using Record = std::map<std::string, std::string>;

Result<> save_record(const std::string& state_dir, const Record& r) {
  std::string text;
  for (const auto& [k, v] : r) text += k + "=" + v + "\n";
  return write_file_atomic(state_dir + "/" + kRecordFile, text, 0600);
}

Result<Record> load_record(const std::string& state_dir) {
  Record r;
  auto text = read_file(state_dir + "/" + kRecordFile);
  if (!text) {
    if (text.error().code() == ENOENT) return r;
    return fail(std::move(text.error()));
  }
  return key_values(*text);
}

void set_network_namespace(oci::Spec& spec, bool present, const std::string& path) {
  auto& nss = spec.linux->namespaces;
  for (auto it = nss.begin(); it != nss.end(); ++it) {
    if (it->type != oci::NamespaceType::Network) continue;
    if (!present) {
      nss.erase(it);
      return;
    }
    it->path = path.empty() ? std::nullopt : std::optional<std::string>(path);
    return;
  }
  if (present) {
    oci::Namespace ns;
    ns.type = oci::NamespaceType::Network;
    if (!path.empty()) ns.path = path;
    nss.push_back(ns);
  }
}

bool has_mount_at(const oci::Spec& spec, const std::string& dest) {
  for (const auto& m : spec.mounts)
    if (m.destination == dest) return true;
  return false;
}

std::string hostname_of(const oci::Spec& spec) {
  if (spec.hostname && !spec.hostname->empty()) return *spec.hostname;
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

Result<> bring_loopback_up(int netns_fd) {
  Netlink nl = TRY(Netlink::open_in(netns_fd));
  int lo = TRY(nl.link_index("lo"));
  if (lo > 0) TRYV(nl.set_up(lo));
  return {};
}

void kill_helper(pid_t pid, uint64_t start, const AliveFn& alive) {
  if (pid <= 0 || !alive(pid, start)) return;
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return;
  UniqueFd owned(pidfd);
  if (!alive(pid, start)) return;  // the pidfd pins it: still the helper we started
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  struct pollfd p = {pidfd, POLLIN, 0};
  poll(&p, 1, 5000);
}

// The section husk keeps at the end of the /etc/hosts of every container of
// a bridge network where some container has aliases (run.husk.aliases):
// one line per other container with aliases. Rewritten in place (the file
// is bind-mounted: its inode must stay) whenever a container of the network
// comes or goes; what is above the marker is the container's own.
constexpr const char* kPeersMarker = "# husk: the network's other containers (run.husk.aliases)\n";

// The container's /etc/hosts when it is a file made for it: husk's own, or
// the one the bundle's run.husk.hosts-file names (the Nomad driver's). A
// host file bound there by a user is never written.
std::string mounted_hosts_file(const oci::Spec& spec, const std::string& state_dir) {
  auto named = spec.annotations.find(kHostsFileAnnotation);
  for (const auto& m : spec.mounts)
    if (m.destination == "/etc/hosts" && m.source) {
      if (*m.source == state_dir + "/" + kHostsFile) return *m.source;
      if (named != spec.annotations.end() && named->second == *m.source) return *m.source;
      return "";
    }
  return "";
}

// The container's /etc/resolv.conf when the bundle made it (the Nomad
// driver's, with the host's resolvers) and names it in run.husk.resolv-file.
std::string mounted_resolv_file(const oci::Spec& spec) {
  auto named = spec.annotations.find(kResolvFileAnnotation);
  if (named == spec.annotations.end()) return "";
  for (const auto& m : spec.mounts)
    if (m.destination == "/etc/resolv.conf" && m.source) return *m.source == named->second ? *m.source : "";
  return "";
}

Result<> rewrite_in_place(const std::string& path, const std::string& text) {
  UniqueFd fd = TRY(open_fd(path, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC));
  TRYV_CTX(write_all(fd.get(), text), "write ", path);
  return {};
}

// Each live container of `network`: its peers' alias lines into its hosts
// file. `root` holds the containers' state dirs (the IPAM root's parent).
Result<> refresh_peer_hosts(const std::string& ipam_root, const std::string& network, const AliveFn& alive) {
  std::string root = ipam_root.substr(0, ipam_root.rfind('/'));
  Ipam ipam = TRY(Ipam::lock(ipam_root, alive));
  struct Member {
    std::string id, hosts, lines;
  };
  std::vector<Member> members;
  for (const auto& l : TRY(ipam.live_leases(network))) {
    if (l.id.empty() || l.id.find('/') != std::string::npos || l.id[0] == '.') continue;
    Record r = TRY(load_record(root + "/" + l.id));
    Member m{l.id, r["hosts"], ""};
    if (!r["aliases"].empty()) {
      std::string names = r["aliases"];
      std::replace(names.begin(), names.end(), ',', ' ');
      m.lines = cat(l.address.str(), "\t", names, "\n");
      if (!r["address6"].empty()) m.lines += cat(r["address6"], "\t", names, "\n");
    }
    members.push_back(std::move(m));
  }
  for (const auto& m : members) {
    if (m.hosts.empty()) continue;
    std::string section;
    for (const auto& other : members)
      if (other.id != m.id) section += other.lines;
    auto text = read_file(m.hosts);
    if (!text) continue;  // gone with its container
    size_t at = text->find(kPeersMarker);
    if (at == std::string::npos && section.empty()) continue;
    std::string base = text->substr(0, at);
    std::string want = section.empty() ? base : base + kPeersMarker + section;
    if (want != *text) TRYV_CTX(rewrite_in_place(m.hosts, want), "update the hosts file of container \"", m.id, "\"");
  }
  return {};
}

}  // namespace

Result<> plan(const Config& cfg, oci::Spec& spec, const std::string& state_dir, const std::string& join_path) {
  if (!cfg.requested()) return {};
  switch (cfg.mode) {
    case Mode::Host:
      set_network_namespace(spec, false, "");
      break;
    case Mode::Path:
    case Mode::Container:
      set_network_namespace(spec, true, join_path);
      break;
    case Mode::None:
    case Mode::Pasta:
    case Mode::Slirp4netns:
    case Mode::Bridge:
    case Mode::Veth:
      set_network_namespace(spec, true, "");
      break;
    case Mode::Unset:
      break;
  }
  // The image's own files stay as they are: ours go over them.
  for (const char* name : {kHostsFile, kResolvFile, kHostnameFile}) {
    std::string dest = cat("/etc/", name);
    if (has_mount_at(spec, dest)) continue;
    oci::Mount m;
    m.destination = dest;
    m.type = "bind";
    m.source = state_dir + "/" + name;
    m.options = {"bind", "nosuid", "nodev", "noexec"};
    spec.mounts.push_back(m);
  }
  return {};
}

Result<> attach(const Config& cfg, const Context& ctx, const oci::Spec& spec, pid_t pid, uint64_t pid_start,
                int netns_fd) {
  if (!cfg.requested()) return {};
  HostsInput hosts;
  hosts.hostname = hostname_of(spec);
  hosts.extra_hosts = cfg.extra_hosts;
  ResolvInput resolv;
  resolv.host_resolv_conf = read_file("/etc/resolv.conf").value_or("");
  resolv.upstream_resolv_conf = read_file("/run/systemd/resolve/resolv.conf").value_or("");
  resolv.dns = cfg.dns;
  resolv.keep_loopback = cfg.mode == Mode::Host;

  Record rec;
  rec["mode"] = mode_name(cfg.mode);
  // Set on a network with husk-dns: the container's nameserver, unless
  // the bundle gives its own (run.husk.dns).
  std::optional<IpAddress> dns_gateway;
  if (cfg.configures_interfaces() && netns_fd < 0)
    return fail_msg("network mode ", mode_name(cfg.mode), ": the container's network namespace is unknown");
  switch (cfg.mode) {
    case Mode::Bridge: {
      // Recorded first: a failure from here on is undone by detach().
      rec["network"] = cfg.bridge;
      rec["ipam_root"] = ctx.ipam_root;
      TRYV(save_record(ctx.state_dir, rec));
      BridgeRequest req;
      req.ipam_root = ctx.ipam_root;
      req.network = cfg.bridge;
      req.id = ctx.id;
      req.pid = pid;
      req.pid_start = pid_start;
      req.netns_fd = netns_fd;
      req.mtu = cfg.mtu.value_or(0);
      req.subnet = cfg.subnet;
      req.subnet6 = cfg.subnet6;
      req.mac = cfg.mac;
      req.ifname = cfg.ifname;
      req.address = cfg.ip;
      req.address6 = cfg.ip6;
      req.ports = cfg.ports;
      req.dns = network_has_dns(cfg.bridge);
      if (valid_hostname(ctx.id)) req.dns_names.push_back(ctx.id);
      for (const auto& name : cfg.aliases)
        if (name != ctx.id) req.dns_names.push_back(name);
      BridgeAttachment a = TRY(bridge_attach(req, ctx.alive));
      rec["address"] = a.address.str();
      rec["hosts"] = mounted_hosts_file(spec, ctx.state_dir);
      for (const auto& name : cfg.aliases) rec["aliases"] += (rec["aliases"].empty() ? "" : ",") + name;
      if (a.address6) rec["address6"] = a.address6->str();
      hosts.own_address = a.address;
      hosts.own_address6 = a.address6;
      hosts.host_address = a.gateway;
      if (req.dns) dns_gateway = resolv.network_dns = a.gateway;
      break;
    }
    case Mode::Veth:
      rec["network"] = cfg.bridge;
      TRYV(save_record(ctx.state_dir, rec));
      TRYV_CTX(veth_attach(cfg.bridge, ctx.id, netns_fd, cfg.mtu.value_or(0), cfg.mac, cfg.ifname), "network veth:", cfg.bridge);
      break;
    case Mode::Pasta:
    case Mode::Slirp4netns: {
      HelperRequest req;
      req.state_dir = ctx.state_dir;
      req.netns_fd = netns_fd;
      req.init_pid = pid;
      req.mtu = cfg.mtu;
      req.ports = cfg.ports;
      if (!ctx.rootless) TRYV_CTX(bring_loopback_up(netns_fd), "bring up lo");
      Helper h = TRY(cfg.mode == Mode::Pasta ? start_pasta(req) : start_slirp4netns(req));
      rec["helper"] = mode_name(cfg.mode);
      rec["helper_pid"] = std::to_string(h.pid);
      rec["helper_start"] = std::to_string(ctx.start_time(h.pid));
      TRYV(save_record(ctx.state_dir, rec));
      hosts.own_address = h.own_address;
      hosts.host_address = h.host_address;
      resolv.forwarder = h.dns_forwarder;
      break;
    }
    case Mode::None:
      if (!ctx.rootless && netns_fd >= 0) TRYV_CTX(bring_loopback_up(netns_fd), "bring up lo");
      break;
    default:
      break;
  }
  TRYV(save_record(ctx.state_dir, rec));
  TRYV(write_host_files(ctx.state_dir, hosts, resolv));
  if (dns_gateway && cfg.dns.empty()) {
    // The network's husk-dns answers the containers' names and forwards
    // the rest to the host's resolvers: the bundle's own file too.
    if (std::string bound = mounted_resolv_file(spec); !bound.empty()) {
      std::string text = read_file(bound).value_or("");
      TRYV_CTX(rewrite_in_place(bound, resolv_conf_for_network_dns(text, *dns_gateway)),
               "point the container's resolv.conf at the network's DNS");
    }
  }
  // A network without DNS: the aliases go into the other containers'
  // /etc/hosts.
  if (cfg.mode == Mode::Bridge && !network_has_dns(cfg.bridge))
    TRYV_CTX(refresh_peer_hosts(ctx.ipam_root, cfg.bridge, ctx.alive), "network \"", cfg.bridge, "\"");
  return {};
}

Result<> detach(const std::string& state_dir, const std::string& id, const AliveFn& alive) {
  Record rec = TRY(load_record(state_dir));
  if (rec.empty()) return {};
  if (rec.count("helper_pid"))
    kill_helper(static_cast<pid_t>(atoi(rec["helper_pid"].c_str())), strtoull(rec["helper_start"].c_str(), nullptr, 10),
                alive);
  if (rec["mode"] == "bridge" && !rec["ipam_root"].empty()) {
    TRYV_CTX(bridge_detach(rec["ipam_root"], rec["network"], id, alive), "remove the network of container \"", id,
             "\"");
    // Its aliases leave the other containers' hosts files (best effort: they
    // may be going too); on a network with DNS bridge_detach dropped its names.
    if (!network_has_dns(rec["network"])) (void)refresh_peer_hosts(rec["ipam_root"], rec["network"], alive);
  }
  if (rec["mode"] == "veth") TRYV_CTX(veth_detach(id), "remove the veth of container \"", id, "\"");
  ::unlink((state_dir + "/" + kRecordFile).c_str());
  return {};
}

}  // namespace husk::net
