"""husk-dns, the DNS server of a bridge network other than the default
husk0: containers find each other by id and --network-alias whenever they
joined, a name two containers share gets both addresses in turn, a reverse
lookup of a container's address gives its id under
dns.husk, a container that left is no longer found, another network's names
are not answered, other names go to the host's resolvers, and the server
and its state go with the network's last container. husk runs in a network
and mount namespace of the test's (the host's /etc/resolv.conf there names
a DNS responder of the test's on 127.0.0.2)."""
import os
import socket
import struct
import subprocess
import sys
import time

import pytest

from husktest import wait_for
from test_network import NetNs, check_no_network_left, run_husk_in

UPSTREAM = r'''
import socket, struct, sys, threading

def reply(q):
    at, labels = 12, []
    while q[at]:
        labels.append(q[at + 1:at + 1 + q[at]].decode()); at += 1 + q[at]
    name, qtype = ".".join(labels).lower(), struct.unpack("!H", q[at + 1:at + 3])[0]
    print(name, qtype, flush=True)
    question = q[12:at + 5]
    if name == "outside.example" and qtype == 1:
        rr = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + bytes([192, 0, 2, 77])
        return q[:2] + b"\x81\x80" + struct.pack("!HHHH", 1, 1, 0, 0) + question + rr
    return q[:2] + b"\x81\x83" + struct.pack("!HHHH", 1, 0, 0, 0) + question

t = socket.socket()
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("127.0.0.2", 53)); t.listen(8)

def tcp():
    while True:
        c, _ = t.accept()
        n = struct.unpack("!H", c.recv(2, socket.MSG_WAITALL))[0]
        r = reply(c.recv(n, socket.MSG_WAITALL))
        c.sendall(struct.pack("!H", len(r)) + r); c.close()

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.2", 53))
threading.Thread(target=tcp, daemon=True).start()
print("ready", flush=True)
while True:
    q, peer = u.recvfrom(4096)
    u.sendto(reply(q), peer)
'''


@pytest.fixture
def dnsnet(husk, tmp_path, monkeypatch):
    resolv = tmp_path / "host-resolv.conf"
    resolv.write_text("search corp.example\nnameserver 127.0.0.2\n")
    ns = NetNs(setup=f"mount --bind {resolv} /etc/resolv.conf", mount=True)
    run_husk_in(ns, husk, tmp_path, monkeypatch, mount_ns=True)
    upstream = ns.popen(sys.executable, "-c", UPSTREAM, stdout=subprocess.PIPE, text=True)
    assert upstream.stdout.readline().strip() == "ready"
    husk.upstream = upstream
    yield husk
    try:
        check_no_network_left(husk, ns)
        assert dns_servers(husk) == [], "husk-dns left running"
    finally:
        upstream.kill()
        upstream.wait()
        ns.close()


def dns_servers(husk):
    """The husk-dns processes serving networks of this test's husk root."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"husk-dns") and any(husk.root.encode() in a for a in argv):
            out.append(int(d))
    return out


def lease(husk, cid):
    """The container's network record (address, address6, ...)."""
    with open(os.path.join(husk.root, cid, "network")) as f:
        return dict(line.split("=", 1) for line in f.read().split("\n") if "=" in line)


def lease_address(husk, cid):
    return lease(husk, cid)["address"]


def lookup(husk, cid, name):
    """busybox nslookup inside the container (it tries the name with each
    search domain and prints every answer): the addresses found, None when
    there were none."""
    r = husk.cmd("exec", cid, "nslookup", name, timeout=30)
    found, in_answer = set(), False
    for line in r.stdout.split("\n"):
        if line.startswith("Name:"):
            in_answer = True
        elif in_answer and line.startswith("Address"):
            found.add(line.split()[-1])
        elif not line.strip():
            in_answer = False
    return sorted(found) or None


def reverse_lookup(husk, cid, name, *flags):
    """busybox nslookup of an address (a PTR query of its in-addr.arpa or
    ip6.arpa name) or, with -type=ptr, of a reverse name: the names
    answered, or the error ("NXDOMAIN")."""
    r = husk.cmd("exec", cid, "nslookup", *flags, name, timeout=30)
    names = sorted(line.split("name = ", 1)[1].strip() for line in r.stdout.split("\n") if "name = " in line)
    if names:
        return names
    for line in r.stdout.split("\n"):
        if line.startswith("** server can't find"):
            return line.rsplit(": ", 1)[-1].strip()
    return r.stdout + r.stderr


def start(husk, bundle, *flags):
    bundle.set_args("sleep", "120")
    cid = husk.create(None, *flags)
    husk.cmd("start", cid, check=True)
    return cid


def test_a_container_started_later_is_found_by_name_and_alias(dnsnet, bundle):
    first = start(dnsnet, bundle, "--network", "bridge:dn0")
    second = start(dnsnet, bundle, "--network", "bridge:dn0", "--network-alias", "db,cache.internal")
    addr = lease_address(dnsnet, second)
    gateway = addr.rsplit(".", 1)[0] + ".1"
    with open(os.path.join(dnsnet.root, first, "resolv.conf")) as f:
        assert f.read() == f"search dns.husk corp.example\nnameserver {gateway}\n"
    assert lookup(dnsnet, first, "db") == [addr]
    assert lookup(dnsnet, first, "cache.internal") == [addr]
    assert lookup(dnsnet, first, second) == [addr]
    assert lookup(dnsnet, first, "db.dns.husk") == [addr]
    # Names are the DNS's: no alias lines in the hosts files.
    with open(os.path.join(dnsnet.root, first, "hosts")) as f:
        assert "db" not in f.read()
    assert len(dns_servers(dnsnet)) == 1


def test_a_reverse_lookup_of_a_containers_address_gives_its_name(dnsnet, bundle):
    bundle.config["annotations"] = {"run.husk.subnet6": "fd42::/64"}
    first = start(dnsnet, bundle, "--network", "bridge:dn0")
    bundle.config["annotations"] = {}
    second = start(dnsnet, bundle, "--network", "bridge:dn0", "--network-alias", "db")
    rec = lease(dnsnet, second)
    addr, addr6 = rec["address"], rec["address6"]
    # Its own name, the id, not the alias; and that name leads back.
    assert reverse_lookup(dnsnet, first, addr) == [f"{second}.dns.husk"]
    assert reverse_lookup(dnsnet, first, addr6) == [f"{second}.dns.husk"]
    assert lookup(dnsnet, first, f"{second}.dns.husk") == sorted([addr, addr6])
    # Another address of the subnet: the network is authoritative, no such name.
    prefix = addr.rsplit(".", 1)[0]
    unknown = prefix + ".250"
    assert reverse_lookup(dnsnet, first, unknown) == "NXDOMAIN"
    assert reverse_lookup(dnsnet, first, "fd42::fa") == "NXDOMAIN"
    # A malformed name in the subnet's zone gets the same answer.
    zone = ".".join(reversed(prefix.split("."))) + ".in-addr.arpa"
    assert reverse_lookup(dnsnet, first, f"256.{zone}", "-type=ptr") == "NXDOMAIN"
    assert reverse_lookup(dnsnet, first, f"x.{addr.rsplit('.', 1)[1]}.{zone}", "-type=ptr") == "NXDOMAIN"
    # Addresses elsewhere go to the host's resolvers.
    assert reverse_lookup(dnsnet, first, "192.0.2.77") == "NXDOMAIN"
    dnsnet.upstream.kill()
    seen = dnsnet.upstream.stdout.read().splitlines()
    assert "77.2.0.192.in-addr.arpa 12" in seen, seen
    assert not [line for line in seen if zone in line or "2.4.d.f.ip6.arpa" in line], seen
    # Stopped: its address is no longer answered.
    dnsnet.cmd("kill", second, "KILL", check=True)
    wait_for(lambda: dnsnet.state(second)["status"] == "stopped", timeout=10)
    assert reverse_lookup(dnsnet, first, addr) == "NXDOMAIN"


def test_a_container_that_left_is_no_longer_found(dnsnet, bundle):
    first = start(dnsnet, bundle, "--network", "bridge:dn0")
    second = start(dnsnet, bundle, "--network", "bridge:dn0", "--network-alias", "db")
    third = start(dnsnet, bundle, "--network", "bridge:dn0", "--network-alias", "cache")
    assert lookup(dnsnet, first, "db") == [lease_address(dnsnet, second)]
    assert lookup(dnsnet, first, "cache") == [lease_address(dnsnet, third)]
    # Stopped, not deleted: no longer answered.
    dnsnet.cmd("kill", third, "KILL", check=True)
    wait_for(lambda: dnsnet.state(third)["status"] == "stopped", timeout=10)
    assert lookup(dnsnet, first, "cache") is None
    dnsnet.cmd("delete", "--force", second, check=True)
    assert lookup(dnsnet, first, "db") is None
    assert lookup(dnsnet, first, second) is None


def test_the_server_answers_at_once_after_another_container_left(dnsnet, bundle):
    """The gateway keeps its MAC address while containers come and go: a
    bridge with an address of the kernel's takes its lowest port's, and the
    containers that learnt the old one could not reach the gateway until
    their neighbour entry was probed again, seconds later."""
    first = start(dnsnet, bundle, "--network", "bridge:dn0")
    addr = lease_address(dnsnet, first)

    def bridge():
        # The netns's own sysfs, in a mount namespace of its own.
        show = "mount -t sysfs sysfs /sys && cat /sys/class/net/dn0/address /sys/class/net/dn0/addr_assign_type"
        return dnsnet.ns.run("unshare", "--mount", "sh", "-c", show).stdout.split()

    mac, assigned = bridge()
    assert assigned == "3"  # NET_ADDR_SET: set when it was made, not the kernel's choice
    for _ in range(3):
        other = start(dnsnet, bundle, "--network", "bridge:dn0")
        assert bridge()[0] == mac
        assert lookup(dnsnet, first, other) == [lease_address(dnsnet, other)]
        dnsnet.cmd("delete", "--force", other, check=True)
        began = time.monotonic()
        assert lookup(dnsnet, first, first) == [addr]
        assert time.monotonic() - began < 3


def test_names_on_another_network_are_not_answered(dnsnet, bundle):
    first = start(dnsnet, bundle, "--network", "bridge:dn0")
    start(dnsnet, bundle, "--network", "bridge:dn1", "--network-alias", "far")
    assert len(dns_servers(dnsnet)) == 2
    assert lookup(dnsnet, first, "far") is None
    assert lookup(dnsnet, first, "far.dns.husk") is None
    # Refused locally: the upstream never saw them (only the names with the
    # host's search domain, which are not the network's).
    dnsnet.upstream.kill()
    seen = [line.split()[0] for line in dnsnet.upstream.stdout.read().splitlines()]
    assert "far" not in seen and "far.dns.husk" not in seen, seen
    assert "far.corp.example" in seen, seen


def test_other_names_are_forwarded_to_the_hosts_resolver(dnsnet, bundle):
    first = start(dnsnet, bundle, "--network", "bridge:dn0")
    assert lookup(dnsnet, first, "outside.example") == ["192.0.2.77"]
    assert lookup(dnsnet, first, "missing.example") is None
    dnsnet.upstream.kill()
    seen = dnsnet.upstream.stdout.read()
    assert "outside.example 1" in seen and "missing.example" in seen, seen


def test_the_server_and_its_state_go_with_the_last_container(dnsnet, bundle):
    first = start(dnsnet, bundle, "--network", "bridge:dn0", "--network-alias", "db")
    second = start(dnsnet, bundle, "--network", "bridge:dn0")
    servers = dns_servers(dnsnet)
    assert len(servers) == 1
    dns_dir = os.path.join(dnsnet.root, ".networks", "dn0", "dns")
    assert os.path.exists(os.path.join(dns_dir, "records", f"{first}.rec"))
    dnsnet.cmd("delete", "--force", first, check=True)
    assert dns_servers(dnsnet) == servers  # still serving the second
    assert not os.path.exists(os.path.join(dns_dir, "records", f"{first}.rec"))
    dnsnet.cmd("delete", "--force", second, check=True)
    assert dns_servers(dnsnet) == []
    assert not os.path.exists(os.path.join(dnsnet.root, ".networks", "dn0"))


def test_a_killed_server_is_started_again_by_the_next_container(dnsnet, bundle):
    first = start(dnsnet, bundle, "--network", "bridge:dn0")
    [pid] = dns_servers(dnsnet)
    os.kill(pid, 9)
    second = start(dnsnet, bundle, "--network", "bridge:dn0", "--network-alias", "db")
    assert len(dns_servers(dnsnet)) == 1
    assert lookup(dnsnet, first, "db") == [lease_address(dnsnet, second)]


def test_the_default_network_has_no_dns_server(dnsnet, bundle):
    first = start(dnsnet, bundle, "--network", "bridge")
    assert dns_servers(dnsnet) == []
    with open(os.path.join(dnsnet.root, first, "resolv.conf")) as f:
        assert "dns.husk" not in f.read()


ASK = r'''
import socket, struct, sys
server, name, qtype, proto = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
family = socket.AF_INET6 if ":" in server else socket.AF_INET
q = struct.pack("!HHHHHH", 0x4242, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack("!HH", qtype, 1)
if proto == "tcp":
    s = socket.create_connection((server, 53), timeout=5)
    s.sendall(struct.pack("!H", len(q)) + q)
    n = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]
    r = s.recv(n, socket.MSG_WAITALL)
else:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(q, (server, 53))
    r = s.recv(4096)
rcode, answers = r[3] & 0xf, struct.unpack("!H", r[6:8])[0]
size = 4 if qtype == 1 else 16
print(rcode, answers, socket.inet_ntop(socket.AF_INET if size == 4 else socket.AF_INET6, r[-size:]) if answers else "-")
'''


def ask(husk, server, name, qtype, proto):
    return husk.ns.run(sys.executable, "-c", ASK, server, name, str(qtype), proto).stdout.split()


def test_dual_stack_names_over_udp_and_tcp(dnsnet, bundle):
    bundle.config["annotations"] = {"run.husk.subnet6": "fd41::/64"}
    first = start(dnsnet, bundle, "--network", "bridge:dn6")
    bundle.config["annotations"] = {}
    second = start(dnsnet, bundle, "--network", "bridge:dn6", "--network-alias", "db")
    rec = lease(dnsnet, second)
    assert lookup(dnsnet, first, "db") == sorted([rec["address"], rec["address6"]])
    gateway = rec["address"].rsplit(".", 1)[0] + ".1"
    # From the host: the server listens on both gateways, UDP and TCP.
    assert ask(dnsnet, gateway, "db", 1, "tcp") == ["0", "1", rec["address"]]
    assert ask(dnsnet, "fd41::1", "db.dns.husk", 28, "udp") == ["0", "1", rec["address6"]]
    assert ask(dnsnet, "fd41::1", "nobody", 1, "tcp") == ["3", "0", "-"]  # NXDOMAIN
    assert ask(dnsnet, gateway, "outside.example", 1, "tcp") == ["0", "1", "192.0.2.77"]  # forwarded over TCP


ASK_MANY = r'''
import socket, struct, sys
server, name, times = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
for i in range(times):
    q = struct.pack("!HHHHHH", i, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack("!HH", 1, 1)
    s.sendto(q, (server, 53))
    r = s.recv(4096)
    n = struct.unpack("!H", r[6:8])[0]
    # the answers are the last n records, each 16 bytes with its 4-byte address last
    print(" ".join(socket.inet_ntop(socket.AF_INET, r[len(r) - 16 * k + 12:len(r) - 16 * k + 16])
                   for k in range(n, 0, -1)))
'''


def test_a_name_two_containers_share_gets_both_addresses_in_turn(dnsnet, bundle):
    """docker's round robin: an alias of two containers answers with both
    addresses, in an order that changes, so that clients taking the first
    spread over them."""
    first = start(dnsnet, bundle, "--network", "bridge:dn0")
    web1 = start(dnsnet, bundle, "--network", "bridge:dn0", "--network-alias", "web")
    web2 = start(dnsnet, bundle, "--network", "bridge:dn0", "--network-alias", "web")
    both = sorted([lease_address(dnsnet, web1), lease_address(dnsnet, web2)])
    assert lookup(dnsnet, first, "web") == both
    gateway = both[0].rsplit(".", 1)[0] + ".1"
    replies = [line.split() for line in
               dnsnet.ns.run(sys.executable, "-c", ASK_MANY, gateway, "web", "32").stdout.splitlines()]
    assert len(replies) == 32 and all(sorted(r) == both for r in replies), replies
    # Both orders come up (a fixed order would do so with probability 0; a fair shuffle misses one with 2^-31).
    assert {r[0] for r in replies} == set(both), replies
