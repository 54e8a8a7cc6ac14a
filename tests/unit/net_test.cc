// Pure logic of src/net: annotations and flags, the generated hosts and
// resolv.conf, nftables scripts, the IPAM files, helper arguments.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "net/command.h"
#include "net/config.h"
#include "net/helpers.h"
#include "net/hostfiles.h"
#include "net/network_dns.h"
#include "net/ipam.h"
#include "net/nft.h"
#include "net/ports.h"

using namespace husk;
using namespace husk::net;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/husk-net-unit-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

IpAddress ip(const char* s) { return *parse_ip(s); }

TEST(NetConfig, NoAnnotationsMeansNothingRequested) {
  auto c = parse_config({}, false);
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->requested());
  EXPECT_EQ(c->mode, Mode::Unset);
}

TEST(NetConfig, Modes) {
  std::string bridge, path;
  EXPECT_EQ(*parse_mode("pasta", bridge, path), Mode::Pasta);
  EXPECT_EQ(*parse_mode("bridge:br7", bridge, path), Mode::Bridge);
  EXPECT_EQ(bridge, "br7");
  EXPECT_EQ(*parse_mode("ns:/run/netns/x", bridge, path), Mode::Path);
  EXPECT_EQ(path, "/run/netns/x");
  EXPECT_EQ(*parse_mode("container:abc", bridge, path), Mode::Container);
  EXPECT_FALSE(parse_mode("ns:relative", bridge, path));
  EXPECT_FALSE(parse_mode("bridge:this-name-is-too-long", bridge, path));
  EXPECT_EQ(*parse_mode("veth:br0", bridge, path), Mode::Veth);
  EXPECT_EQ(bridge, "br0");
  EXPECT_FALSE(parse_mode("veth:", bridge, path));
  auto veth = parse_config({{"run.husk.network", "veth:br0"}, {"run.husk.mac", "02:42:ac:11:00:02"}}, false);
  ASSERT_TRUE(veth) << veth.error().str();
  EXPECT_TRUE(veth->configures_interfaces());
  EXPECT_FALSE(parse_config({{"run.husk.network", "veth:br0"}, {"run.husk.ports", "80:80"}}, false));
  EXPECT_FALSE(parse_config({{"run.husk.network", "veth:br0"}, {"run.husk.ip", "10.0.0.2"}}, false));
  EXPECT_FALSE(parse_config({{"run.husk.network", "veth:br0"}}, true));  // root only
  EXPECT_EQ(veth->ifname, "eth0");
  EXPECT_EQ(parse_config({{"run.husk.network", "veth:br0"}, {"run.husk.ifname", "host0"}}, false)->ifname, "host0");
  EXPECT_FALSE(parse_config({{"run.husk.network", "bridge"}, {"run.husk.ifname", "lo"}}, false));
  EXPECT_FALSE(parse_config({{"run.husk.network", "host"}, {"run.husk.ifname", "host0"}}, false));
  auto bad = parse_mode("wifi", bridge, path);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().what().find("\"wifi\""), std::string::npos);
}

TEST(NetConfig, Ports) {
  auto p = parse_port("8080:80");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_port, 8080);
  EXPECT_EQ(p->container_port, 80);
  EXPECT_EQ(p->protocol, Protocol::Tcp);
  EXPECT_FALSE(p->host_ip);
  p = parse_port("127.0.0.1:53:5353/udp");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_ip->str(), "127.0.0.1");
  EXPECT_EQ(p->protocol, Protocol::Udp);
  EXPECT_EQ(p->str(), "127.0.0.1:53:5353/udp");
  p = parse_port("[::1]:8080:80");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->host_ip->family, AF_INET6);
  EXPECT_EQ(p->str(), "[::1]:8080:80/tcp");
  EXPECT_FALSE(parse_port("80"));
  EXPECT_FALSE(parse_port("0:80"));
  EXPECT_FALSE(parse_port("8080:80/sctp"));
  EXPECT_FALSE(parse_port("nothost:8080:80"));
}

TEST(NetConfig, AnnotationErrorsNameTheAnnotation) {
  auto c = parse_config({{"run.husk.ports", "8080:80,8080:81"}}, false);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("annotations.run.husk.ports"), std::string::npos);
  c = parse_config({{"run.husk.dns", "1.2.3"}}, false);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("annotations.run.husk.dns"), std::string::npos);
  c = parse_config({{"run.husk.network", "bridge"}}, true);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("needs root"), std::string::npos);
}

TEST(NetConfig, PortsAloneChooseTheDefaultMode) {
  EXPECT_EQ(parse_config({{"run.husk.ports", "8080:80"}}, true)->mode, Mode::Pasta);
  EXPECT_EQ(parse_config({{"run.husk.ports", "8080:80"}}, false)->mode, Mode::Bridge);
  auto c = parse_config({{"run.husk.add-hosts", "db:10.0.0.1, cache:10.0.0.2"}}, false);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->requested());
  EXPECT_EQ(c->mode, Mode::Unset);
  ASSERT_EQ(c->extra_hosts.size(), 2u);
  EXPECT_EQ(c->extra_hosts[1].name, "cache");
}

TEST(NetConfig, FlagsBecomeAnnotations) {
  Flags f;
  f.network = "bridge";
  f.publish = {"8080:80", "53:53/udp"};
  f.dns = {"192.0.2.53"};
  f.add_hosts = {"db:10.0.0.1"};
  std::map<std::string, std::string> a = {{"run.husk.network", "pasta"}};
  ASSERT_TRUE(apply_flags(f, a));
  EXPECT_EQ(a["run.husk.network"], "bridge");
  EXPECT_EQ(a["run.husk.ports"], "8080:80/tcp,53:53/udp");
  EXPECT_EQ(a["run.husk.dns"], "192.0.2.53");
  EXPECT_EQ(a["run.husk.add-hosts"], "db:10.0.0.1");
  Flags bad;
  bad.publish = {"x"};
  auto r = apply_flags(bad, a);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("--publish"), std::string::npos);
}

TEST(NetConfig, MacAddress) {
  auto m = parse_mac("02:42:AC:11:00:2a");
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)[0], 0x02);
  EXPECT_EQ((*m)[2], 0xac);
  EXPECT_EQ((*m)[5], 0x2a);
  EXPECT_TRUE(parse_mac("02-42-ac-11-00-02"));
  EXPECT_FALSE(parse_mac("01:00:5e:00:00:01"));  // multicast
  EXPECT_FALSE(parse_mac("00:00:00:00:00:00"));
  EXPECT_FALSE(parse_mac("02:42:ac:11:00"));
  EXPECT_FALSE(parse_mac("02:42:ac:11:00:zz"));
  EXPECT_FALSE(parse_mac("0242ac110002xxxxx"));
  auto c = parse_config({{"run.husk.network", "bridge:br7"}, {"run.husk.mac", "02:42:ac:11:00:02"}}, false);
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->mac);
  EXPECT_EQ((*c->mac)[5], 0x02);
  c = parse_config({{"run.husk.network", "bridge"}, {"run.husk.mac", "ff:ff:ff:ff:ff:ff"}}, false);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("run.husk.mac"), std::string::npos);
  EXPECT_NE(c.error().str().find("ff:ff:ff:ff:ff:ff"), std::string::npos);
  c = parse_config({{"run.husk.network", "host"}, {"run.husk.mac", "02:42:ac:11:00:02"}}, false);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("run.husk.mac"), std::string::npos);
  Flags f;
  f.mac = "02:42:ac:11:00:03";
  std::map<std::string, std::string> a;
  ASSERT_TRUE(apply_flags(f, a));
  EXPECT_EQ(a["run.husk.mac"], "02:42:ac:11:00:03");
  f.mac = "nope";
  auto r = apply_flags(f, a);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("--mac-address"), std::string::npos);
}

TEST(HostFiles, Hosts) {
  HostsInput in;
  in.hostname = "web.example.com";
  in.own_address = ip("10.89.0.2");
  in.host_address = ip("10.89.0.1");
  in.extra_hosts = {{"db", ip("10.1.2.3")}};
  std::string h = render_hosts(in);
  EXPECT_NE(h.find("127.0.0.1\tlocalhost"), std::string::npos);
  EXPECT_NE(h.find("10.89.0.2\tweb.example.com web\n"), std::string::npos);
  EXPECT_NE(h.find("10.1.2.3\tdb\n"), std::string::npos);
  EXPECT_NE(h.find("10.89.0.1\thost.containers.internal"), std::string::npos);
  in.own_address.reset();
  in.host_address.reset();
  h = render_hosts(in);
  EXPECT_NE(h.find("127.0.1.1\tweb.example.com"), std::string::npos);
  EXPECT_EQ(h.find("host.containers.internal"), std::string::npos);
}

TEST(HostFiles, ResolvConfReplacesLoopbackResolvers) {
  ResolvInput in;
  in.host_resolv_conf = "# generated\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
  in.upstream_resolv_conf = "nameserver 192.0.2.1\nnameserver 192.0.2.2\n";
  EXPECT_EQ(render_resolv_conf(in), "options edns0 trust-ad\nsearch lan\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n");
  in.keep_loopback = true;  // host network
  EXPECT_EQ(render_resolv_conf(in), "options edns0 trust-ad\nsearch lan\nnameserver 127.0.0.53\n");
  in.keep_loopback = false;
  in.forwarder = ip("169.254.1.1");
  EXPECT_EQ(render_resolv_conf(in), "options edns0 trust-ad\nsearch lan\nnameserver 169.254.1.1\n");
  in.dns = {ip("192.0.2.53")};
  EXPECT_EQ(render_resolv_conf(in), "options edns0 trust-ad\nsearch lan\nnameserver 192.0.2.53\n");
  ResolvInput plain;
  plain.host_resolv_conf = "nameserver 10.0.0.1\nnameserver ::1\n";
  EXPECT_EQ(render_resolv_conf(plain), "nameserver 10.0.0.1\n");
}

TEST(HostFiles, ResolvConfOnANetworkWithDnsNamesTheGatewayOnly) {
  ResolvInput in;
  in.host_resolv_conf = "nameserver 192.0.2.1\nsearch lan corp\noptions edns0\n";
  in.network_dns = ip("10.89.1.1");
  EXPECT_EQ(render_resolv_conf(in), "search dns.husk lan corp\nnameserver 10.89.1.1\noptions edns0\n");
  in.dns = {ip("192.0.2.53")};  // the container's own servers win
  EXPECT_EQ(render_resolv_conf(in), "search lan corp\noptions edns0\nnameserver 192.0.2.53\n");
  // The driver's file, rewritten: domain counts as search, dns.husk once.
  EXPECT_EQ(resolv_conf_for_network_dns("domain example.com\nnameserver 1.1.1.1\n", ip("10.89.2.1")),
            "search dns.husk example.com\nnameserver 10.89.2.1\n");
  EXPECT_EQ(resolv_conf_for_network_dns("search dns.husk x\nnameserver 10.89.2.1\n", ip("10.89.2.1")),
            "search dns.husk x\nnameserver 10.89.2.1\n");
  EXPECT_EQ(resolv_conf_for_network_dns("search\ta.example\t b.example\n", ip("10.89.2.1")),
            "search dns.husk a.example b.example\nnameserver 10.89.2.1\n");
}

TEST(NetworkDns, EveryBridgeButTheDefaultHasIt) {
  EXPECT_FALSE(network_has_dns("husk0"));
  EXPECT_TRUE(network_has_dns("backend"));
}

TEST(NetworkDns, RecordLinesHoldEveryNameForEachAddress) {
  DnsMember m{"c1", {"c1", "db"}, ip("10.89.1.5"), ip("fd00::5")};
  EXPECT_EQ(render_dns_record(m), "10.89.1.5 c1 db\nfd00::5 c1 db\n");
  m.pid = 42;
  m.start = 7;
  EXPECT_EQ(render_dns_record(m), "10.89.1.5 c1 db\nfd00::5 c1 db\nowner 42 7\n");
  m.pid = 0;
  m.names.clear();
  EXPECT_EQ(render_dns_record(m), "");
}

TEST(Nft, RulesAreTaggedAndDeletedByTag) {
  ContainerRules r;
  r.id = "c1";
  r.bridge = "husk0";
  r.address = ip("10.89.0.2");
  r.subnet = *parse_subnet("10.89.0.0/24");
  r.ports = {*parse_port("8080:80"), *parse_port("127.0.0.1:5353:53/udp")};
  std::string s = render_rules(r);
  EXPECT_NE(s.find("add table inet husk\n"), std::string::npos);
  EXPECT_NE(s.find("ip saddr 10.89.0.2 ip daddr != 10.89.0.0/24 masquerade comment \"husk:c1\""), std::string::npos);
  EXPECT_NE(s.find("prerouting meta nfproto ipv4 fib daddr type local tcp dport 8080 dnat ip to 10.89.0.2:80 "
                   "comment \"husk:c1\""),
            std::string::npos);
  EXPECT_EQ(s.find("ip6"), std::string::npos);  // IPv4 only
  r.address6 = ip("fd89::2");
  r.subnet6 = "fd89::/64";
  s = render_rules(r);
  EXPECT_NE(s.find("postrouting ip6 saddr fd89::2 ip6 daddr != fd89::/64 masquerade"), std::string::npos);
  EXPECT_NE(s.find("prerouting meta nfproto ipv6 fib daddr type local tcp dport 8080 dnat ip6 to [fd89::2]:80"),
            std::string::npos);
  EXPECT_EQ(s.find("dport 5353 dnat ip6"), std::string::npos);  // bound to an IPv4 address
  EXPECT_NE(s.find("output ip daddr 127.0.0.1 udp dport 5353 dnat ip to 10.89.0.2:53"), std::string::npos);
  std::string listing =
      "table inet husk { # handle 3\n"
      "\tchain prerouting { # handle 1\n"
      "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
      "\t\ttcp dport 8080 dnat ip to 10.89.0.2:80 comment \"husk:c1\" # handle 4\n"
      "\t\ttcp dport 8081 dnat ip to 10.89.0.3:80 comment \"husk:c11\" # handle 5\n"
      "\t}\n"
      "\tchain postrouting { # handle 2\n"
      "\t\tip saddr 10.89.0.2 masquerade comment \"husk:c1\" # handle 6\n"
      "\t}\n}\n";
  EXPECT_EQ(render_deletes(listing, "c1"),
            "delete rule inet husk prerouting handle 4\ndelete rule inet husk postrouting handle 6\n");
}

TEST(Ipam, NeverTheSameAddressTwiceAndStaleLeasesAreReclaimed) {
  TempDir d;
  std::set<pid_t> alive = {100, 101, 102};
  AliveFn is_alive = [&](pid_t pid, uint64_t) { return alive.count(pid) > 0; };
  Ipam ipam = *Ipam::lock(d.path, is_alive);
  Subnet s = *ipam.subnet("husk0", std::nullopt);
  EXPECT_EQ(s.str(), kDefaultSubnet);
  EXPECT_EQ(ipam.subnet("other", std::nullopt)->str(), "10.89.1.0/24");
  EXPECT_FALSE(ipam.subnet("third", std::string("10.89.0.0/25")));  // overlaps husk0
  std::vector<Lease> reclaimed;
  Lease l;
  l.id = "a";
  l.pid = 100;
  EXPECT_EQ(ipam.allocate("husk0", s, l, reclaimed)->str(), "10.89.0.2");
  l.id = "b";
  l.pid = 101;
  EXPECT_EQ(ipam.allocate("husk0", s, l, reclaimed)->str(), "10.89.0.3");
  EXPECT_FALSE(ipam.allocate("husk0", s, l, reclaimed));  // b has one already
  alive.erase(100);                                       // a died without delete
  l.id = "c";
  l.pid = 102;
  EXPECT_EQ(ipam.allocate("husk0", s, l, reclaimed)->str(), "10.89.0.2");
  ASSERT_EQ(reclaimed.size(), 1u);
  EXPECT_EQ(reclaimed[0].id, "a");
  EXPECT_EQ(*ipam.release("husk0", "b"), 1u);
  EXPECT_EQ(*ipam.release("husk0", "a"), 1u);  // already gone: fine
}

TEST(Ipam, Ipv6PrefixFollowsTheIpv4Offset) {
  Subnet6 s = *parse_subnet6("fd89:0:0:7::/64");
  EXPECT_EQ(s.gateway().str(), "fd89:0:0:7::1");
  EXPECT_EQ(s.at(5).str(), "fd89:0:0:7::5");
  EXPECT_FALSE(parse_subnet6("fd89::1/64"));
  EXPECT_FALSE(parse_subnet6("10.0.0.0/24"));
  EXPECT_FALSE(parse_subnet6("fd89::/48"));
  TempDir d;
  Ipam ipam = *Ipam::lock(d.path, [](pid_t, uint64_t) { return true; });
  ASSERT_TRUE(ipam.subnet("husk0", std::nullopt));
  EXPECT_FALSE(*ipam.subnet6("husk0", std::nullopt));
  EXPECT_EQ((*ipam.subnet6("husk0", std::string("fd89::/64")))->str(), "fd89::/64");
  EXPECT_EQ((*ipam.subnet6("husk0", std::nullopt))->str(), "fd89::/64");  // fixed now
  EXPECT_FALSE(ipam.subnet6("husk0", std::string("fd90::/64")));
}

TEST(Ipam, ExhaustedSubnetNamesTheNetwork) {
  TempDir d;
  Ipam ipam = *Ipam::lock(d.path, [](pid_t, uint64_t) { return true; });
  Subnet s = *ipam.subnet("small", std::string("10.89.9.0/30"));
  std::vector<Lease> reclaimed;
  Lease l;
  l.id = "a";
  ASSERT_TRUE(ipam.allocate("small", s, l, reclaimed));
  l.id = "b";
  auto r = ipam.allocate("small", s, l, reclaimed);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ENOSPC);
  EXPECT_NE(r.error().what().find("\"small\" (10.89.9.0/30)"), std::string::npos);
}

TEST(Ipam, StaticAddressIsTakenOnceAndNeverTheGateway) {
  TempDir d;
  std::set<pid_t> alive = {100, 101};
  Ipam ipam = *Ipam::lock(d.path, [&](pid_t pid, uint64_t) { return alive.count(pid) > 0; });
  Subnet s = *ipam.subnet("net1", std::string("172.20.0.0/24"));
  std::vector<Lease> reclaimed;
  Lease l;
  l.id = "a";
  l.pid = 100;
  EXPECT_EQ(ipam.allocate("net1", s, l, reclaimed, 5)->str(), "172.20.0.5");
  l.id = "b";
  l.pid = 101;
  auto r = ipam.allocate("net1", s, l, reclaimed, 5);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), EADDRINUSE);
  EXPECT_NE(r.error().what().find("172.20.0.5 on network \"net1\" is held by container \"a\""), std::string::npos);
  for (uint32_t bad : {0u, 1u, 255u}) {
    auto g = ipam.allocate("net1", s, l, reclaimed, bad);
    ASSERT_FALSE(g) << bad;
    EXPECT_EQ(g.error().code(), EINVAL);
  }
  EXPECT_NE(ipam.allocate("net1", s, l, reclaimed, 1).error().what().find("the gateway"), std::string::npos);
  // The next dynamic address skips the static one; a dead holder's goes.
  EXPECT_EQ(ipam.allocate("net1", s, l, reclaimed)->str(), "172.20.0.2");
  alive.erase(100);
  l.id = "c";
  l.pid = 101;
  EXPECT_EQ(ipam.allocate("net1", s, l, reclaimed, 5)->str(), "172.20.0.5");
  ASSERT_EQ(reclaimed.size(), 1u);
  EXPECT_EQ(reclaimed[0].id, "a");
}

TEST(NetConfig, StaticAddresses) {
  auto c = parse_config({{"run.husk.network", "bridge:n1"}, {"run.husk.ip", "172.20.0.5"}, {"run.husk.ip6", "fd20::5"}},
                        false);
  ASSERT_TRUE(c) << c.error().str();
  ASSERT_TRUE(c->ip && c->ip6);
  EXPECT_EQ(c->ip->str(), "172.20.0.5");
  EXPECT_EQ(c->ip6->str(), "fd20::5");
  c = parse_config({{"run.husk.network", "bridge"}, {"run.husk.ip", "fd20::5"}}, false);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("annotations.run.husk.ip: \"fd20::5\" is not an IPv4 address"), std::string::npos);
  c = parse_config({{"run.husk.network", "none"}, {"run.husk.ip6", "fd20::5"}}, false);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("run.husk.ip6: a static address needs network mode bridge"), std::string::npos);
  c = parse_config({{"run.husk.network", "bridge:n1"}, {"run.husk.aliases", "db, db.internal"}}, false);
  ASSERT_TRUE(c) << c.error().str();
  EXPECT_EQ(c->aliases, (std::vector<std::string>{"db", "db.internal"}));
  c = parse_config({{"run.husk.network", "bridge:n1"}, {"run.husk.aliases", "db,-x"}}, false);
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().str().find("annotations.run.husk.aliases: \"-x\" is not a host name"), std::string::npos);
  EXPECT_FALSE(parse_config({{"run.husk.network", "pasta"}, {"run.husk.aliases", "db"}}, false));
  Flags f;
  f.aliases = {"db,cache", "web"};
  f.ip = "10.89.0.9";
  f.ip6 = "fd89::9";
  std::map<std::string, std::string> a;
  ASSERT_TRUE(apply_flags(f, a));
  EXPECT_EQ(a["run.husk.ip"], "10.89.0.9");
  EXPECT_EQ(a["run.husk.ip6"], "fd89::9");
  EXPECT_EQ(a["run.husk.aliases"], "db,cache,web");
  f.ip6 = "10.0.0.1";
  auto r = apply_flags(f, a);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().str().find("--ip6: \"10.0.0.1\" is not an IPv6 address"), std::string::npos);
}

TEST(Ipam, LeaseLinesRoundTrip) {
  Lease l;
  l.address = ip("10.89.0.7");
  l.id = "web";
  l.pid = 42;
  l.start = 123456;
  l.ports = "8080/tcp";
  Lease back = *parse_lease(format_lease(l).substr(0, format_lease(l).size() - 1));
  EXPECT_EQ(back.address.str(), "10.89.0.7");
  EXPECT_EQ(back.id, "web");
  EXPECT_EQ(back.pid, 42);
  EXPECT_EQ(back.start, 123456u);
  EXPECT_EQ(back.ports, "8080/tcp");
}

TEST(Ports, PublishedByAnotherContainer) {
  Lease other;
  other.id = "web";
  other.ports = "8080/tcp,53/udp";
  auto r = check_ports_free({*parse_port("53:53/udp")}, {other});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().what().find("port 53/udp is already published by container \"web\""), std::string::npos);
  EXPECT_EQ(ports_key({*parse_port("8080:80"), *parse_port("53:53/udp")}), "8080/tcp,53/udp");
}

TEST(Helpers, Arguments) {
  auto args = pasta_port_args({*parse_port("8080:80"), *parse_port("127.0.0.1:5353:53/udp")});
  std::vector<std::string> want = {"-t", "8080:80", "-u", "127.0.0.1/5353:53", "-T", "none", "-U", "none"};
  EXPECT_EQ(args, want);
  args = pasta_port_args({});
  want = {"-t", "none", "-u", "none", "-T", "none", "-U", "none"};
  EXPECT_EQ(args, want);
  EXPECT_EQ(slirp_hostfwd_request(*parse_port("8080:80")),
            "{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"tcp\", \"host_addr\": \"0.0.0.0\", "
            "\"host_port\": 8080, \"guest_addr\": \"10.0.2.100\", \"guest_port\": 80}}");
}

}  // namespace

TEST(RunProgram, OutputOnSuccessAndOneLineErrorWithStderrOnFailure) {
  auto ok = net::run_program({"/bin/sh", "-c", "cat; echo more"}, "in\n");
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ(*ok, "in\nmore\n");
  auto bad = net::run_program({"/bin/sh", "-c", "echo first >&2; echo second >&2; exit 3"});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().str(), "/bin/sh failed (exit 3): first second");
  auto killed = net::run_program({"/bin/sh", "-c", "kill -9 $$"});
  ASSERT_FALSE(killed);
  EXPECT_EQ(killed.error().str(), "/bin/sh failed (signal 9)");
}
