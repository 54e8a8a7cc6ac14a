"""Container networking (src/net): the run.husk.* annotations and the
--network/--publish/--dns/--add-host flags. Every test runs husk inside a
private network namespace the test makes (a process holds it), so bridges,
veths and nftables rules live there and traffic never leaves the machine;
teardown still checks that delete removed them."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

import husktest
from husktest import wait_for

HTTPD = ["sh", "-c", "echo hello-from-husk > /tmp/index.html; exec httpd -f -p 80 -h /tmp"]


class NetNs:
    """A network namespace held by a sleeping process, loopback up."""

    def __init__(self, setup="true", mount=False):
        flags = ["--net", "--mount", "--propagation", "private"] if mount else ["--net"]
        self.proc = subprocess.Popen(
            ["unshare", *flags, "sh", "-c", f"ip link set lo up && {setup} && echo ready && exec sleep infinity"],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    @property
    def path(self):
        return f"/proc/{self.proc.pid}/ns/net"

    def argv(self, *args):
        return ["nsenter", f"--net={self.path}", *args]

    def run(self, *args, check=True, **kw):
        r = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=30, **kw)
        if check and r.returncode != 0:
            raise AssertionError(f"{args} failed: {r.stderr}")
        return r

    def popen(self, *args, **kw):
        return subprocess.Popen(self.argv(*args), **kw)

    def links(self):
        return [line.split()[0].split("@")[0] for line in self.run("ip", "-br", "link").stdout.splitlines()]

    def close(self):
        self.proc.kill()
        self.proc.wait()


def http_get(ns, url):
    code = ("import sys, urllib.request; "
            "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
    return ns.run("python3", "-c", code, url)


def http_get_ok(ns, url):
    return http_get_result(ns, url).returncode == 0


def http_get_result(ns, url):
    code = ("import sys, urllib.request; "
            "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())")
    return ns.run("python3", "-c", code, url, check=False)


def run_husk_in(ns, husk, tmp_path, monkeypatch, mount_ns=False):
    """From now on this test's husk runs inside `ns` (its network namespace,
    and with mount_ns its mount namespace too)."""
    wrapper = tmp_path / "husk-in-netns"
    nsenter = shutil.which("nsenter")
    mnt = f" --mount=/proc/{ns.proc.pid}/ns/mnt" if mount_ns else ""
    wrapper.write_text(f"#!/bin/sh\nexec {nsenter} --net={ns.path}{mnt} {husktest.HUSK} \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setattr(husktest, "HUSK", str(wrapper))
    husk.ns = ns


def check_no_network_left(husk, ns):
    """After deleting every container: no interface, nftables rule or
    network state is left (the lock file stays by design)."""
    husk.delete_all()
    assert ns.links() == ["lo"], "network interfaces left behind"
    assert ns.run("nft", "list", "ruleset").stdout.strip() == "", "nftables rules left behind"
    leases = os.path.join(husk.root, ".networks")
    left = [d for d in os.listdir(leases) if d != "lock"] if os.path.isdir(leases) else []
    assert left == [], f"network state left behind: {left}"
    shutil.rmtree(leases, ignore_errors=True)


@pytest.fixture
def net(husk, tmp_path, monkeypatch):
    """husk runs inside a private network namespace (husk.ns)."""
    ns = NetNs()
    run_husk_in(ns, husk, tmp_path, monkeypatch)
    yield husk
    try:
        check_no_network_left(husk, ns)
    finally:
        ns.close()


def record(husk, cid):
    with open(os.path.join(husk.root, cid, "network")) as f:
        return dict(line.split("=", 1) for line in f.read().split("\n") if "=" in line)


def run_out(husk, *args, **kw):
    r = husk.run(*args, **kw)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_without_annotations_the_bundle_gets_a_bare_netns(net, bundle):
    with open(os.path.join(bundle.rootfs, "etc", "hosts"), "w") as f:
        f.write("# the image's own\n")
    bundle.set_args("sh", "-c", "ip -o link; cat /etc/hosts")
    out = run_out(net)
    assert "eth0" not in out and "lo: <LOOPBACK> " in out  # there, and down
    assert "# the image's own" in out


def test_bridge_publishes_a_port_to_httpd(net, bundle):
    bundle.set_args(*HTTPD)
    cid = net.create(None, "--network", "bridge", "-p", "8080:80")
    net.cmd("start", cid, check=True)
    addr = record(net, cid)["address"]
    assert addr.startswith("10.89.0.")
    assert "hk" in " ".join(net.ns.links()) and "husk0" in net.ns.links()
    # From the host's loopback, the bridge's address, and straight to the container.
    assert wait_for(lambda: http_get(net.ns, "http://127.0.0.1:8080/").stdout == "hello-from-husk\n")
    assert http_get(net.ns, "http://10.89.0.1:8080/").stdout == "hello-from-husk\n"
    assert http_get(net.ns, f"http://{addr}/").stdout == "hello-from-husk\n"
    rules = net.ns.run("nft", "list", "table", "inet", "husk").stdout
    assert f'comment "husk:{cid}"' in rules and "dport 8080" in rules
    # The flags went into the annotations of the saved config.
    with open(os.path.join(net.root, cid, "config.json")) as f:
        ann = json.load(f)["annotations"]
    assert ann["run.husk.network"] == "bridge" and ann["run.husk.ports"] == "8080:80/tcp"
    net.cmd("delete", "--force", cid, check=True)
    assert net.ns.links() == ["lo"]
    assert net.ns.run("nft", "list", "ruleset").stdout.strip() == ""


def test_two_bridge_containers_reach_each_other(net, bundle):
    bundle.set_args(*HTTPD)
    server = net.create(None, "--network", "bridge")
    net.cmd("start", server, check=True)
    addr = record(net, server)["address"]
    bundle.set_args("sh", "-c", f"for i in 1 2 3 4 5; do wget -q -O- http://{addr}/ && exit 0; sleep 0.2; done; exit 1")
    out = run_out(net, "--network", "bridge")
    assert out == "hello-from-husk\n"


def test_ifname_names_the_containers_end(net, bundle):
    bundle.set_args("sh", "-c", "ls /sys/class/net | tr '\\n' ' '; ip -o -4 addr show host0")
    bundle.config["annotations"] = {"run.husk.network": "bridge:hif0", "run.husk.ifname": "host0"}
    out = run_out(net)
    assert "host0" in out and "eth0" not in out and "inet 10.89." in out, out


def test_mac_address_is_the_containers_eth0(net, bundle):
    bundle.set_args("cat", "/sys/class/net/eth0/address")
    out = run_out(net, "--network", "bridge:hmac0", "--mac-address", "02:42:AC:11:00:2a")
    assert out == "02:42:ac:11:00:2a\n"


def test_static_addresses_on_a_network_made_for_them(net, bundle):
    """--ip/--ip6 on a new network: it gets the /24 and /64 holding them, the
    container has exactly those addresses, and a second container reaches it."""
    bundle.set_args(*HTTPD)
    server = net.create(None, "--network", "bridge:hst0", "--ip", "172.20.0.5", "--ip6", "fd20::5")
    net.cmd("start", server, check=True)
    rec = record(net, server)
    assert rec["address"] == "172.20.0.5" and rec["address6"] == "fd20::5"
    with open(os.path.join(net.root, ".networks", "hst0", "subnet")) as f:
        assert f.read().strip() == "172.20.0.0/24"
    bundle.set_args("sh", "-c", "ip -o addr show eth0; "
                    "for i in 1 2 3 4 5; do wget -q -O- http://172.20.0.5/ && exit 0; sleep 0.2; done; exit 1")
    out = run_out(net, "--network", "bridge:hst0", "--ip6", "fd20::9")
    assert "inet 172.20.0.9/24" in out and "inet6 fd20::9/64" in out, out
    assert out.endswith("hello-from-husk\n")


def test_static_address_errors_name_the_address_and_leave_nothing(net, bundle):
    bundle.set_args("sleep", "60")
    holder = net.create(None, "--network", "bridge", "--ip", "10.89.0.7")
    assert record(net, holder)["address"] == "10.89.0.7"
    links = net.ns.links()
    for flags, message in [
        (["--ip", "10.89.0.7"], f'address 10.89.0.7 on network "husk0" is held by container "{holder}"'),
        (["--ip", "10.90.0.2"], 'address 10.90.0.2 is not in network "husk0"\'s subnet 10.89.0.0/24'),
        (["--ip", "10.89.0.1"], "is the gateway"),
        (["--ip6", "fd89::3"], 'network "husk0" has no IPv6 prefix'),
    ]:
        r = net.run("--network", "bridge", *flags)
        assert r.returncode != 0 and message in r.stderr, (flags, r.stderr)
        assert net.ns.links() == links
    # Both given on a new dual-stack network: they must share an offset.
    r = net.run("--network", "bridge:hst1", "--ip", "172.21.0.5", "--ip6", "fd21::6")
    assert r.returncode != 0 and "have different offsets" in r.stderr and "fd21::5" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(net.root, ".networks", "hst1"))
    assert net.ns.links() == links


def test_network_aliases_reach_the_other_containers_hosts_files(net, bundle):
    """--network-alias on the default network husk0, which has no DNS
    server (test_network_dns.py has the others'): the other containers find
    the container by those names (lines husk keeps in their /etc/hosts,
    already running ones included); they go when it is deleted."""
    bundle.set_args("sleep", "60")
    bundle.config["annotations"] = {"run.husk.subnet6": "fd31::/64"}
    client = net.create(None, "--network", "bridge", "--ip", "10.89.0.2", "--ip6", "fd31::2")
    net.cmd("start", client, check=True)
    del bundle.config["annotations"]
    bundle.set_args(*HTTPD)
    server = net.create(None, "--network", "bridge", "--network-alias", "db,cache", "--ip6", "fd31::9")
    net.cmd("start", server, check=True)
    # A container whose /etc/hosts is a file of the user's: never written.
    own = bundle.path + "/own-hosts"
    with open(own, "w") as f:
        f.write("127.0.0.1 localhost\n")
    bundle.config["mounts"].append({"destination": "/etc/hosts", "type": "bind", "source": own,
                                    "options": ["bind", "ro"]})
    bundle.set_args("sleep", "60")
    mine = net.create(None, "--network", "bridge")
    net.cmd("start", mine, check=True)
    with open(own) as f:
        assert f.read() == "127.0.0.1 localhost\n"
    hosts = os.path.join(net.root, client, "hosts")
    with open(hosts) as f:
        text = f.read()
    assert "10.89.0.9\tdb cache\n" in text and "fd31::9\tdb cache\n" in text, text
    # Inside the running client, by name (its /etc/hosts is the same file).
    r = net.cmd("exec", client, "wget", "-q", "-O-", "http://db/")
    assert r.returncode == 0 and r.stdout == "hello-from-husk\n", r.stderr
    # The server's own file has no line about itself.
    with open(os.path.join(net.root, server, "hosts")) as f:
        assert "db cache" not in f.read()
    net.cmd("delete", "--force", server, check=True)
    with open(hosts) as f:
        assert "db" not in f.read()
    r = net.run("--network", "bridge", "--network-alias", "bad name")
    assert r.returncode != 0 and '--network-alias: "bad name" is not a host name' in r.stderr, r.stderr
    r = net.run("--network", "host", "--network-alias", "db")
    assert r.returncode != 0 and "run.husk.aliases: network aliases need network mode bridge" in r.stderr, r.stderr


def test_veth_joins_a_bridge_husk_did_not_make(net, bundle):
    """veth:BRIDGE (nspawn's network_bridge): the container's veth joins an
    existing bridge, eth0 comes up with no address and whoever serves the
    bridge configures it; delete removes the veth and leaves the bridge."""
    net.ns.run("ip", "link", "add", "br9", "type", "bridge")
    try:
        net.ns.run("ip", "addr", "add", "192.0.2.1/24", "dev", "br9")
        net.ns.run("ip", "link", "set", "br9", "up")
        bundle.set_args(*HTTPD)
        cid = net.create(None, "--network", "veth:br9")
        assert record(net, cid)["mode"] == "veth"
        pid = net.state(cid)["pid"]
        members = net.ns.run("ip", "-o", "link", "show", "master", "br9").stdout
        assert "hk" in members, members
        inside = ["nsenter", f"--net=/proc/{pid}/ns/net"]
        addrs = subprocess.run([*inside, "ip", "-o", "-4", "addr", "show", "eth0"], capture_output=True, text=True)
        assert addrs.returncode == 0 and addrs.stdout == "", addrs
        link = subprocess.run([*inside, "ip", "-o", "link", "show", "eth0"], capture_output=True, text=True).stdout
        assert ",UP" in link, link
        # The bridge's side (here: the test) gives it an address; then it answers.
        subprocess.run([*inside, "ip", "addr", "add", "192.0.2.5/24", "dev", "eth0"], check=True)
        net.cmd("start", cid, check=True)
        assert wait_for(lambda: http_get_ok(net.ns, "http://192.0.2.5/"))
        net.cmd("delete", "--force", cid, check=True)
        assert net.ns.links() == ["lo", "br9"]
        assert not os.path.exists(os.path.join(net.root, ".networks", "br9"))
        r = net.run("--network", "veth:nosuch0")
        assert r.returncode != 0 and 'bridge "nosuch0" does not exist' in r.stderr, r.stderr
        r = net.run("--network", "veth:br9", "-p", "8080:80")
        assert r.returncode != 0 and "port forwarding needs network mode" in r.stderr, r.stderr
    finally:
        net.ns.run("ip", "link", "del", "br9", check=False)


def test_bridge_outbound_is_masqueraded(net, bundle):
    """A server in another namespace, routed from the test's namespace, sees
    the host's address, not the container's."""
    outside = NetNs()
    try:
        net.ns.run("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1", "netns", str(outside.proc.pid))
        net.ns.run("ip", "addr", "add", "192.0.2.1/24", "dev", "up0")
        net.ns.run("ip", "link", "set", "up0", "up")
        outside.run("ip", "addr", "add", "192.0.2.2/24", "dev", "up1")
        outside.run("ip", "link", "set", "up1", "up")
        server = outside.popen("python3", "-c",
                               "import socket; s = socket.socket(); s.bind(('192.0.2.2', 9000)); s.listen(1); "
                               "print('ready', flush=True); c, a = s.accept(); print(a[0], flush=True); "
                               "c.sendall(b'pong\\n'); c.close()",
                               stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        bundle.set_args("sh", "-c", "echo ping | nc 192.0.2.2 9000")
        out = run_out(net, "--network", "bridge")
        assert out == "pong\n"
        assert server.stdout.readline().strip() == "192.0.2.1"
        server.wait(timeout=10)
        net.ns.run("ip", "link", "del", "up0")
    finally:
        outside.close()


def test_bridge_dual_stack_when_the_network_has_an_ipv6_prefix(net, bundle):
    bundle.set_args(*HTTPD)
    bundle.config["annotations"] = {"run.husk.network": "bridge", "run.husk.subnet6": "fd89::/64",
                                    "run.husk.ports": "8080:80"}
    cid = net.create()
    net.cmd("start", cid, check=True)
    rec = record(net, cid)
    assert rec["address6"] == "fd89::2"
    assert wait_for(lambda: http_get_ok(net.ns, "http://[fd89::2]:80/"))
    assert http_get(net.ns, "http://[fd89::1]:8080/").stdout == "hello-from-husk\n"
    assert http_get(net.ns, "http://127.0.0.1:8080/").stdout == "hello-from-husk\n"
    bundle.config["annotations"] = {}  # the network is dual stack now: later containers too
    bundle.set_args("sh", "-c", "cat /etc/hosts; ip -o -6 route show default")
    out = run_out(net, "--network", "bridge")
    assert "fd89::3\t" in out and "default via fd89::1" in out


def test_generated_files_are_bind_mounted_over_the_image(net, bundle):
    hosts = os.path.join(bundle.rootfs, "etc", "hosts")
    with open(hosts, "w") as f:
        f.write("# the image's own\n")
    bundle.config["hostname"] = "web"
    bundle.set_args("sh", "-c", "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; cat /etc/hostname")
    out = run_out(net, "--network", "bridge", "--dns", "192.0.2.53", "--add-host", "db:10.1.2.3")
    hosts_text, resolv, hostname = out.split("---\n")
    assert "127.0.0.1\tlocalhost" in hosts_text
    assert "\tweb\n" in hosts_text and hosts_text.split("\tweb\n")[0].split("\n")[-1].startswith("10.89.0.")
    assert "10.1.2.3\tdb\n" in hosts_text
    assert "10.89.0.1\thost.containers.internal" in hosts_text
    assert "# the image's own" not in hosts_text
    assert [l for l in resolv.splitlines() if l.startswith("nameserver")] == ["nameserver 192.0.2.53"]
    assert hostname == "web\n"
    with open(hosts) as f:
        assert f.read() == "# the image's own\n", "the image was modified"


def test_dns_and_hosts_annotations_without_a_mode(net, bundle):
    bundle.config["annotations"] = {"run.husk.add-hosts": "db:10.1.2.3,cache:10.1.2.4"}
    bundle.set_args("sh", "-c", "cat /etc/hosts; ip -o link")
    out = run_out(net)
    assert "10.1.2.3\tdb\n" in out and "10.1.2.4\tcache\n" in out
    assert "eth0" not in out


def test_ns_path_joins_the_given_netns(net, bundle):
    target = NetNs()
    try:
        bundle.set_args("readlink", "/proc/self/ns/net")
        out = run_out(net, "--network", f"ns:{target.path}")
        assert out.strip() == os.readlink(target.path)
    finally:
        target.close()


def test_network_host_shares_the_runtime_netns(net, bundle):
    bundle.set_args("readlink", "/proc/self/ns/net")
    out = run_out(net, "--network", "host")
    assert out.strip() == os.readlink(net.ns.path)


def test_container_shares_another_containers_netns(net, bundle):
    bundle.set_args("sleep", "60")
    first = net.create(None, "--network", "bridge")
    addr = record(net, first)["address"]
    bundle.set_args("ip", "-o", "addr", "show", "eth0")
    out = run_out(net, "--network", f"container:{first}")
    assert f"inet {addr}/24" in out


def test_concurrent_creates_get_distinct_addresses(net, bundle, tmp_path):
    bundle.set_args("sleep", "60")
    bundle.write()
    ids = [net.new_id() for _ in range(4)]
    # Output to files: a created container keeps its stdio open.
    errs = [open(tmp_path / f"err{i}", "w+") for i in range(4)]
    procs = [subprocess.Popen([husktest.HUSK, "--root", net.root, "create", "--bundle", bundle.path,
                               "--network", "bridge", cid], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=err) for cid, err in zip(ids, errs)]
    for p, err in zip(procs, errs):
        p.wait(timeout=60)
        err.seek(0)
        assert p.returncode == 0, err.read()
    addrs = [record(net, cid)["address"] for cid in ids]
    assert len(set(addrs)) == 4, addrs


def test_a_dead_containers_lease_is_reclaimed_with_its_rules(net, bundle):
    bundle.set_args(*HTTPD)
    dead = net.create(None, "--network", "bridge", "-p", "8080:80")
    os.kill(net.state(dead)["pid"], 9)
    wait_for(lambda: net.state(dead)["status"] == "stopped")
    # Its port is free again, and its rules go when its lease is reclaimed.
    other = net.create(None, "--network", "bridge", "-p", "8080:80")
    rules = net.ns.run("nft", "list", "table", "inet", "husk").stdout
    assert f"husk:{dead}" not in rules and f"husk:{other}" in rules
    net.cmd("delete", dead, check=True)
    assert f"husk:{other}" in net.ns.run("nft", "list", "table", "inet", "husk").stdout


@pytest.mark.parametrize("flags,message", [
    (["--network", "wifi"], 'unknown network mode "wifi"'),
    (["-p", "80"], 'port "80": expected [IP:]HOST:CONTAINER'),
    (["-p", "8080:99999"], "container port \"99999\" is not a number"),
    (["-p", "8080:80/sctp"], "protocol must be tcp or udp"),
    (["--dns", "not-an-ip"], '--dns: "not-an-ip" is not an IP address'),
    (["--add-host", "db"], "--add-host: host \"db\": expected NAME:IP"),
    (["--network", "none", "-p", "8080:80"], "port forwarding needs network mode"),
    (["--network", "container:nosuch"], "container:nosuch"),
    (["--network", "bridge", "--mac-address", "01:00:5e:00:00:01"],
     '--mac-address: "01:00:5e:00:00:01" is not a MAC address (a multicast'),
    (["--network", "host", "--mac-address", "02:42:ac:11:00:02"],
     "run.husk.mac: a MAC address needs network mode bridge"),
    (["--network", "bridge", "--ip", "fd00::2"], '--ip: "fd00::2" is not an IPv4 address'),
    (["--network", "none", "--ip", "10.89.0.9"], "run.husk.ip: a static address needs network mode bridge"),
])
def test_invalid_flags_name_flag_and_value(net, bundle, flags, message):
    r = net.run(*flags)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr


def test_invalid_annotation_names_the_annotation(net, bundle):
    bundle.config["annotations"] = {"run.husk.mtu": "9"}
    r = net.run()
    assert r.returncode != 0 and 'annotations.run.husk.mtu: "9" is not an MTU' in r.stderr, r.stderr


def test_port_in_use_is_refused_before_anything_is_made(net, bundle):
    holder = net.ns.popen("python3", "-c", "import socket, time; s = socket.socket(); s.bind(('0.0.0.0', 8080)); "
                          "s.listen(1); print('ready', flush=True); time.sleep(60)", stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        r = net.run("--network", "bridge", "-p", "8080:80")
        assert r.returncode != 0 and "port 8080/tcp is already in use on 0.0.0.0" in r.stderr, r.stderr
        assert net.ns.links() == ["lo"]
    finally:
        holder.kill()
        holder.wait()


def test_subnet_exhausted(net, bundle):
    bundle.set_args("sleep", "60")
    bundle.config["annotations"] = {"run.husk.network": "bridge", "run.husk.subnet": "10.89.7.0/30"}
    net.create()
    r = net.create(check=False)
    assert r.returncode != 0 and 'network "husk0" (10.89.7.0/30) has no free address' in r.stderr, r.stderr


def test_bridge_name_clash(net, bundle):
    net.ns.run("ip", "link", "add", "mine0", "type", "veth", "peer", "name", "mine1")
    try:
        r = net.run("--network", "bridge:mine0")
        assert r.returncode != 0 and 'a network interface named "mine0" exists and is not a husk bridge' in r.stderr
        assert sorted(net.ns.links()) == ["lo", "mine0", "mine1"]
    finally:
        net.ns.run("ip", "link", "del", "mine0")


def test_helper_binary_missing(net, bundle):
    r = net.run("--network", "pasta", env={"PATH": "/nonexistent"})
    assert r.returncode != 0 and 'pasta is not installed (Debian package "passt")' in r.stderr, r.stderr


@pytest.fixture
def uplink(net):
    """pasta and slirp4netns want a host interface with a default route."""
    net.ns.run("ip", "link", "add", "up0", "type", "veth", "peer", "name", "up1")
    net.ns.run("ip", "link", "set", "up1", "up")
    net.ns.run("ip", "addr", "add", "192.0.2.1/24", "dev", "up0")
    net.ns.run("ip", "link", "set", "up0", "up")
    net.ns.run("ip", "route", "add", "default", "via", "192.0.2.254")
    yield net
    net.ns.run("ip", "link", "del", "up0", check=False)


@pytest.mark.parametrize("mode,port", [("slirp4netns", 8081), ("pasta", 8082)])
def test_helper_publishes_a_port_and_dies_with_delete(uplink, bundle, mode, port):
    net = uplink
    bundle.set_args(*HTTPD)
    cid = net.create(None, "--network", mode, "-p", f"{port}:80")
    net.cmd("start", cid, check=True)
    helper = int(record(net, cid)["helper_pid"])
    assert os.path.exists(f"/proc/{helper}")
    assert wait_for(lambda: http_get(net.ns, f"http://127.0.0.1:{port}/").returncode == 0, timeout=10)
    assert http_get(net.ns, f"http://127.0.0.1:{port}/").stdout == "hello-from-husk\n"
    net.cmd("delete", "--force", cid, check=True)
    assert wait_for(lambda: not os.path.exists(f"/proc/{helper}") or
                    open(f"/proc/{helper}/stat").read().split(") ")[1][0] == "Z")


@pytest.mark.parametrize("mode", ["slirp4netns", "pasta"])
def test_helper_exits_when_the_container_is_killed(uplink, bundle, mode):
    net = uplink
    bundle.set_args("sleep", "60")
    cid = net.create(None, "--network", mode)
    helper = int(record(net, cid)["helper_pid"])
    net.cmd("kill", cid, "KILL", check=True)
    assert wait_for(lambda: not os.path.exists(f"/proc/{helper}") or
                    open(f"/proc/{helper}/stat").read().split(") ")[1][0] == "Z")


def test_slirp4netns_resolv_conf_uses_its_dns_forwarder(uplink, bundle):
    bundle.set_args("sh", "-c", "grep nameserver /etc/resolv.conf; grep host.containers.internal /etc/hosts; ip -o -4 addr show tap0")
    out = run_out(uplink, "--network", "slirp4netns")
    assert out.startswith("nameserver 10.0.2.3\n")
    assert "192.0.2.1\thost.containers.internal" in out
    assert "inet 10.0.2.100/24" in out


def test_a_container_cannot_share_its_own_netns(net, bundle):
    cid = net.new_id()
    r = net.run("--network", f"container:{cid}", cid=cid, timeout=20)
    assert r.returncode != 0 and "cannot share its own network namespace" in r.stderr, r.stderr


def test_a_failure_halfway_leaves_no_network_behind(net, bundle, tmp_path):
    """nft refusing the container's rules comes after the bridge, the veth
    and the lease were made: all of them must go."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nft").write_text(
        "#!/bin/sh\n"
        "if [ \"$1\" = -f ]; then in=$(cat); case \"$in\" in *'add rule'*) echo 'simulated failure' >&2; exit 1;; esac\n"
        "  printf '%s\\n' \"$in\" | exec /usr/sbin/nft -f -; fi\n"
        "exec /usr/sbin/nft \"$@\"\n")
    (fake / "nft").chmod(0o755)
    bundle.set_args("true")
    r = net.run("--network", "bridge", "-p", "8080:80", env={"PATH": f"{fake}:/usr/bin:/bin"})
    assert r.returncode != 0 and "simulated failure" in r.stderr, r.stderr
    assert net.ns.links() == ["lo"]
    assert os.listdir(os.path.join(net.root, ".networks")) == ["lock"]


def test_delete_after_husk_was_killed_during_create_removes_the_network(net, bundle, tmp_path):
    """The network is made before the createRuntime hooks; husk dies in one.
    The init dies with husk; `delete` of what is left removes the rest."""
    pidfile = tmp_path / "hook.pid"
    bundle.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"]}]}
    bundle.set_args("true")
    bundle.write()
    cid = net.new_id()
    husk = subprocess.Popen([husktest.HUSK, "--root", net.root, "create", "--bundle", bundle.path,
                             "--network", "bridge", "-p", "8080:80", cid],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
    assert "husk0" in net.ns.links()
    husk.kill()
    husk.wait()
    os.kill(int(pidfile.read_text()), 9)
    net.cmd("delete", "--force", cid, check=True)
    assert net.ns.links() == ["lo"]
    assert net.ns.run("nft", "list", "ruleset").stdout.strip() == ""
    assert not os.path.exists(os.path.join(net.root, cid))


ROOTLESS_UID = 65534  # nobody: one id mapped, no /etc/subuid range needed


@pytest.fixture
def rootless_netns(husk, rootfs_template):
    """A private network and mount namespace for an unprivileged husk: an
    uplink with a default route, and its own /dev/net/tun node (0666, as
    Debian makes it; this machine's is root-only) on a tmpfs there."""
    ns = NetNs("mount -t tmpfs tmpfs /dev/net && mknod -m 666 /dev/net/tun c 10 200 && "
               "ip link add up0 type veth peer name up1 && ip link set up1 up && "
               "ip addr add 192.0.2.1/24 dev up0 && ip link set up0 up && ip route add default via 192.0.2.254",
               mount=True)
    ns.proc_mnt = f"/proc/{ns.proc.pid}/ns/mnt"
    base = tempfile.mkdtemp(prefix="husk-net-rootless-")
    os.chmod(base, 0o755)
    bundle = os.path.join(base, "bundle")
    shutil.copytree(rootfs_template, os.path.join(bundle, "rootfs"), symlinks=True)
    cfg = json.loads(json.dumps(husktest.BASE_CONFIG))
    cfg["process"]["args"] = HTTPD
    cfg["linux"]["namespaces"] = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "user", "network")]
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": ROOTLESS_UID, "size": 1}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": ROOTLESS_UID, "size": 1}]
    cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] not in ("/sys", "/dev/mqueue")]
    cfg["mounts"] = [dict(m, options=[o for o in m.get("options", []) if not o.startswith("gid=")]) for m in cfg["mounts"]]
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    os.makedirs(os.path.join(base, "state"))
    subprocess.run(["chown", "-R", f"{ROOTLESS_UID}:{ROOTLESS_UID}", base], check=True)

    def husk_as_user(*args):
        argv = ["nsenter", f"--net={ns.path}", f"--mount={ns.proc_mnt}", "setpriv", f"--reuid={ROOTLESS_UID}",
                f"--regid={ROOTLESS_UID}", "--clear-groups", "env", f"XDG_RUNTIME_DIR={base}",
                husktest.HUSK, "--root", os.path.join(base, "state"), "--cgroup-manager=disabled", *args]
        if args[0] == "run":
            argv[-1:-1] = ["--bundle", bundle]
        with tempfile.TemporaryFile() as out:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=60, cwd=bundle)
            out.seek(0)
            return r.returncode, out.read().decode(errors="replace")

    ns.husk = husk_as_user
    ns.state = os.path.join(base, "state")
    yield ns
    code, out = husk_as_user("list", "-q")
    for cid in out.split():
        husk_as_user("delete", "--force", cid)
    ns.close()
    shutil.rmtree(base, ignore_errors=True)


def gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("mode,port", [("pasta", 18091), ("slirp4netns", 18092)])
def test_rootless_helper_publishes_a_port(rootless_netns, mode, port):
    ns = rootless_netns
    cid = f"rl-{mode}-{os.getpid()}"
    code, out = ns.husk("run", "-d", "--network", mode, "-p", f"{port}:80", cid)
    assert code == 0, out
    with open(os.path.join(ns.state, cid, "network")) as f:
        helper = int(dict(l.split("=", 1) for l in f.read().split("\n") if "=" in l)["helper_pid"])
    assert os.stat(f"/proc/{helper}").st_uid == ROOTLESS_UID
    assert wait_for(lambda: http_get_ok(ns, f"http://127.0.0.1:{port}/"), timeout=10)
    assert http_get(ns, f"http://127.0.0.1:{port}/").stdout == "hello-from-husk\n"
    code, out = ns.husk("delete", "--force", cid)
    assert code == 0, out
    assert wait_for(lambda: gone(helper))


def test_rootless_helper_without_tun_access_says_so(husk, rootfs_template, tmp_path):
    """On this machine /dev/net/tun is root-only: the error names it."""
    if os.access("/dev/net/tun", os.R_OK) and os.stat("/dev/net/tun").st_mode & 0o006:
        pytest.skip("/dev/net/tun is open to every user here")
    base = tempfile.mkdtemp(prefix="husk-net-notun-")
    try:
        os.chmod(base, 0o755)
        shutil.copytree(rootfs_template, os.path.join(base, "bundle", "rootfs"), symlinks=True)
        cfg = json.loads(json.dumps(husktest.BASE_CONFIG))
        cfg["linux"]["namespaces"] = [{"type": t} for t in ("pid", "mount", "user", "network")]
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": ROOTLESS_UID, "size": 1}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": ROOTLESS_UID, "size": 1}]
        cfg["mounts"] = [m for m in cfg["mounts"] if m["destination"] == "/proc"]
        with open(os.path.join(base, "bundle", "config.json"), "w") as f:
            json.dump(cfg, f)
        os.makedirs(os.path.join(base, "state"))
        subprocess.run(["chown", "-R", f"{ROOTLESS_UID}:{ROOTLESS_UID}", base], check=True)
        r = subprocess.run(["setpriv", f"--reuid={ROOTLESS_UID}", f"--regid={ROOTLESS_UID}", "--clear-groups",
                            husktest.HUSK, "--root", os.path.join(base, "state"), "--cgroup-manager=disabled",
                            "run", "--bundle", os.path.join(base, "bundle"), "--network", "pasta", "notun"],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "pasta needs /dev/net/tun" in r.stderr, r.stderr
        assert os.listdir(os.path.join(base, "state")) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)
