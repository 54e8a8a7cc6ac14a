"""nomad-driver-husk as Nomad's docker driver (nomad-driver-docker), fields
checked inside running containers through driver-probe: interactive (stdin
kept open), pid_mode and ipc_mode = "container:NAME" (another task's
namespaces joined). What a docker user would check: a `read` that blocks
instead of failing, the other task's processes in `ps`, one IPC namespace."""
import json
import os
import subprocess
import time

import pytest

from husktest import HUSK, mount_points
from test_driver_fields import Probe, image  # noqa: F401  (fixture)

# Images from the test's own directories need volumes enabled (as in the docker driver).
VOLUMES = {"volumes": {"enabled": True}}
MODES = dict(VOLUMES, allowed_modes={"pid": ["private", "container:*"], "ipc": ["private", "shareable", "container:*"]})


def containers(probe):
    root = probe.state / "containers"
    return sorted(c for c in os.listdir(root) if not c.startswith("."))


def test_interactive_keeps_stdin_open(tmp_path, image):  # noqa: F811
    before = mount_points()
    probe = Probe(tmp_path, name="nomad-driver-docker", plugin_config=VOLUMES)
    try:
        script = "read line || exit 7; echo got:$line; exit 3"
        # Without interactive, stdin is /dev/null: read sees end of file at once.
        r = probe.start("closed", {"image": image, "command": "/bin/sh", "args": ["-c", script],
                                   "network_mode": "none"})
        assert r["ok"], r
        assert probe.stop("closed")["exit_code"] == 7
        # With it, the read blocks: the task is still there to exec into.
        r = probe.start("open", {"image": image, "command": "/bin/sh", "args": ["-c", script],
                                 "network_mode": "none", "interactive": True})
        assert r["ok"], r
        out = probe.sh("open", "sleep 2; tr '\\0' ' ' </proc/1/cmdline; echo; ls -l /proc/1/fd/0", timeout=120)["stdout"]
        assert "read line" in out, out  # the task's shell, still reading
        assert "stdin" in out, out  # fd 0 is the task's stdin FIFO
        code = probe.stop("open")["exit_code"]
        assert code not in (7, 3), code  # it never read end of file
        assert containers(probe) == []
    finally:
        probe.close()
    assert mount_points() == before


def test_pid_and_ipc_mode_join_another_task(tmp_path, image):  # noqa: F811
    before = mount_points()
    probe = Probe(tmp_path, name="nomad-driver-docker", plugin_config=MODES)
    try:
        r = probe.start("donor", {"image": image, "command": "/bin/sleep", "args": ["1001"], "network_mode": "none",
                                  "ipc_mode": "shareable"})
        assert r["ok"], r
        [donor] = containers(probe)
        r = probe.start("joiner", {"image": image, "command": "/bin/sleep", "args": ["1002"], "network_mode": "none",
                                   "pid_mode": f"container:{donor}", "ipc_mode": f"container:{donor}"})
        assert r["ok"], r
        ns = "for n in pid ipc mnt; do readlink /proc/self/ns/$n; done"
        d = probe.sh("donor", ns)["stdout"].split()
        j = probe.sh("joiner", f"{ns}; ps -o args")["stdout"].split("\n")
        assert j[0] == d[0] and j[1] == d[1], (d, j)  # one PID and one IPC namespace
        assert j[2] != d[2], (d, j)  # but a mount namespace (a root) of its own
        rest = "\n".join(j[3:])
        assert "sleep 1001" in rest and "sleep 1002" in rest, rest  # the donor's processes are visible
        # The donor is shareable: its /dev/shm is the joiner's too (a host-side tmpfs).
        probe.sh("donor", "echo from-donor > /dev/shm/seg")
        assert probe.sh("joiner", "cat /dev/shm/seg")["stdout"] == "from-donor\n"
        # A private donor's IPC is not shareable: an error, as in docker.
        had = set(containers(probe))
        r = probe.start("private", {"image": image, "command": "/bin/sleep", "args": ["1003"], "network_mode": "none"})
        assert r["ok"], r
        [private] = set(containers(probe)) - had
        bad = probe.start("nope", {"image": image, "command": "/bin/true", "network_mode": "none",
                                   "ipc_mode": f"container:{private}"})
        assert not bad["ok"] and "non-shareable" in bad["error"] and "config.ipc_mode" in bad["error"], bad
        assert probe.stop("private")["ok"]
        # Joining a task that is not there: StartTask fails naming the field, leaving nothing.
        bad = probe.start("lost", {"image": image, "command": "/bin/true", "network_mode": "none",
                                   "pid_mode": "container:no-such-task"})
        assert not bad["ok"] and "config.pid_mode" in bad["error"], bad
        assert len(containers(probe)) == 2
        assert probe.stop("joiner")["ok"] and probe.stop("donor")["ok"]
        assert containers(probe) == []
        assert os.listdir(probe.state / "tasks") == []  # the shareable /dev/shm went with its task
    finally:
        probe.close()
    assert mount_points() == before


def test_mac_address_on_the_bridge(tmp_path, image):  # noqa: F811
    before = mount_points()
    probe = Probe(tmp_path, name="nomad-driver-docker", plugin_config=VOLUMES)
    try:
        r = probe.start("mac", {"image": image, "command": "/bin/sleep", "args": ["1000"],
                                "mac_address": "02:42:AC:11:00:2a"})
        assert r["ok"], r
        # On the default bridge the address goes to Nomad, not advertised by default (as docker's "bridge").
        assert r["network"]["addr"].startswith("10.89.0.") and not r["network"]["auto_advertise"], r
        assert probe.sh("mac", "cat /sys/class/net/eth0/address")["stdout"].strip() == "02:42:ac:11:00:2a"
        assert probe.stop("mac")["ok"]
        bad = probe.start("bad", {"image": image, "command": "/bin/true", "mac_address": "01:00:5e:00:00:01"})
        assert not bad["ok"] and "config.mac_address" in bad["error"] and "multicast" in bad["error"], bad
        assert containers(probe) == []
    finally:
        probe.close()
    assert mount_points() == before


def dns_servers(network):
    """The husk-dns processes of a network (argv: husk-dns --records DIR ...)."""
    out = []
    for d in os.listdir("/proc"):
        try:
            argv = open(f"/proc/{d}/cmdline").read().split("\0") if d.isdigit() else []
        except OSError:
            continue
        if len(argv) > 2 and argv[0].endswith("husk-dns") and f"/{network}/dns/" in argv[2]:
            out.append(int(d))
    return out


def link_exists(name):
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def test_user_defined_network_with_static_addresses(tmp_path, image):  # noqa: F811
    """network_mode = "NAME": husk's bridge NAME, made with its first task and
    removed with its last; ipv4_address/ipv6_address pin the task's address,
    and tasks on the network reach each other."""
    before = mount_points()
    probe = Probe(tmp_path, name="nomad-driver-docker", plugin_config=VOLUMES)
    try:
        # A task started before the web task finds it later, by name: the
        # network's husk-dns answers, not a line in its /etc/hosts.
        r = probe.start("early", {"image": image, "command": "/bin/sleep", "args": ["1000"],
                                  "network_mode": "appnet", "ipv4_address": "172.30.0.5", "ipv6_address": "fd30::5"})
        assert r["ok"], r
        web = "echo hello-appnet > /tmp/index.html; exec httpd -f -p 80 -h /tmp"
        r = probe.start("web", {"image": image, "command": "/bin/sh", "args": ["-c", web], "network_mode": "appnet",
                                "ipv4_address": "172.30.0.10", "ipv6_address": "fd30::a",
                                "network_aliases": ["www", "www.appnet"]})
        assert r["ok"], r
        # What Nomad is told (DriverNetwork): the address, advertised on a user-defined network.
        assert r["network"] == {"addr": "172.30.0.10", "auto_advertise": True, "port_map": {}}, r
        assert link_exists("appnet")
        addrs = probe.sh("web", "ip -o addr show eth0")["stdout"]
        assert "inet 172.30.0.10/24" in addrs and "inet6 fd30::a/64" in addrs, addrs
        r = probe.start("client", {"image": image, "command": "/bin/sleep", "args": ["1000"],
                                   "network_mode": "appnet"})
        assert r["ok"], r
        got = probe.sh("client", "for i in 1 2 3 4 5; do wget -q -O- http://172.30.0.10/ && exit 0; sleep 1; done; "
                       "exit 1")["stdout"]
        assert got == "hello-appnet\n", got
        # By its network_aliases too (and its docker name <task>-<alloc id>),
        # as docker's DNS answers them: the network's husk-dns on its gateway.
        for task in ("client", "early"):
            assert probe.sh(task, "cat /etc/resolv.conf")["stdout"].startswith("search dns.husk"), task
            assert "nameserver 172.30.0.1\n" in probe.sh(task, "cat /etc/resolv.conf")["stdout"], task
            got = probe.sh(task, "nslookup www.appnet")["stdout"]
            assert "172.30.0.10" in got and "fd30::a" in got, got
            assert "www" not in probe.sh(task, "cat /etc/hosts")["stdout"], task
        [server] = dns_servers("appnet")
        # It belongs to the network, not to the driver: its own session, no
        # child of the plugin (which a restart of the driver kills).
        assert os.getsid(server) not in (os.getsid(probe.p.pid), os.getsid(0))
        with open(f"/proc/{server}/stat") as f:
            assert int(f.read().rsplit(")", 1)[1].split()[1]) != probe.p.pid
        records = open(f"/proc/{server}/cmdline").read().split("\0")[2]
        names = " ".join(open(os.path.join(records, f)).read() for f in os.listdir(records))
        assert "web-probe-alloc" in names or "probe-alloc" in names, names
        docker_name = [w for w in names.split() if "alloc" in w][0]
        assert "172.30.0." in probe.sh("early", f"nslookup {docker_name}")["stdout"]
        # The address is the web task's while it runs: a clear error, nothing made.
        bad = probe.start("twin", {"image": image, "command": "/bin/true", "network_mode": "appnet",
                                   "ipv4_address": "172.30.0.10"})
        assert not bad["ok"] and "172.30.0.10" in bad["error"] and "is held by container" in bad["error"], bad
        bad = probe.start("dflt", {"image": image, "command": "/bin/true", "ipv4_address": "10.89.0.50"})
        assert not bad["ok"] and "config.ipv4_address" in bad["error"] and "user-defined network" in bad["error"], bad
        assert len(containers(probe)) == 3
        assert probe.stop("client")["ok"] and probe.stop("web")["ok"]
        assert "172.30.0.10" not in probe.sh("early", "nslookup www.appnet")["stdout"]  # gone with its task
        assert probe.stop("early")["ok"]
        assert containers(probe) == []
        assert not link_exists("appnet")  # gone with its last task
        assert dns_servers("appnet") == []  # and its DNS server
    finally:
        probe.close()
    assert mount_points() == before


def test_network_dns_outlives_a_restart_of_the_driver(tmp_path, image):  # noqa: F811
    """husk-dns belongs to the network, not to the driver: with the plugin
    killed it still answers the network's tasks, a task the next plugin
    starts is served by the same server, and it goes with the last one."""
    before = mount_points()
    first = Probe(tmp_path, name="nomad-driver-docker", plugin_config=VOLUMES)
    sleep = {"image": image, "command": "/bin/sleep", "args": ["1000"], "network_mode": "dnsnet"}
    assert first.start("a", sleep)["ok"]
    assert first.start("b", dict(sleep, network_aliases=["bee"]))["ok"]
    orphans = containers(first)
    [server] = dns_servers("dnsnet")
    first.p.kill()  # no StopTask: the tasks and the network outlive the plugin
    first.p.wait()
    root = str(first.state / "containers")
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    os.symlink(first.state, second_dir / "driver-state")
    second = Probe(second_dir, name="nomad-driver-docker", plugin_config=VOLUMES)
    try:
        assert dns_servers("dnsnet") == [server]
        for cid in orphans:
            out = subprocess.run([HUSK, "--root", root, "exec", cid, "nslookup", "bee"], capture_output=True,
                                 text=True, timeout=60).stdout
            assert "Address: 10.89." in out, out
        assert second.start("c", sleep)["ok"]
        assert "Address: 10.89." in second.sh("c", "nslookup bee")["stdout"]
        assert dns_servers("dnsnet") == [server]  # the same server, not a new one
        assert second.stop("c")["ok"]
        for cid in orphans:
            subprocess.run([HUSK, "--root", root, "delete", "--force", cid], check=True, timeout=60)
        assert dns_servers("dnsnet") == []
        assert not link_exists("dnsnet")
        assert not os.path.exists(os.path.join(root, ".networks", "dnsnet"))
    finally:
        second.close()
        for cid in orphans:
            subprocess.run([HUSK, "--root", root, "delete", "--force", cid], timeout=60)
        # The orphans' task roots: the killed plugin's DestroyTask would
        # have unmounted them.
        for m in reversed(mount_points()):
            if m.startswith(str(first.state / "tasks")):
                subprocess.run(["umount", "-l", m])
    assert mount_points() == before


def test_dangling_container_reaper(tmp_path, image):  # noqa: F811
    """gc.dangling_containers: a container of this driver whose task no
    plugin knows (here: its plugin was killed and a new one started without
    recovering it) is killed and removed once older than creation_grace."""
    before = mount_points()
    config = dict(VOLUMES, gc={"dangling_containers": {"period": "1s", "creation_grace": "1m"}})
    first = Probe(tmp_path, name="nomad-driver-docker", plugin_config=config)
    r = first.start("lost", {"image": image, "command": "/bin/sleep", "args": ["1000"], "network_mode": "none"})
    assert r["ok"], r
    [lost] = containers(first)
    first.p.kill()  # no StopTask: the container outlives its plugin
    first.p.wait()
    second_dir = tmp_path / "second"
    second_dir.mkdir()
    os.symlink(first.state, second_dir / "driver-state")
    second = Probe(second_dir, name="nomad-driver-docker", plugin_config=config)
    try:
        t0 = time.monotonic()
        while lost in containers(second) and time.monotonic() - t0 < 120:
            time.sleep(1)
        took = time.monotonic() - t0
        assert lost not in containers(second), "the dangling container is still there"
        assert took > 30, took  # not before creation_grace (1m from its creation)
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert "sleep 1000" not in ps, ps
        assert os.listdir(first.state / "tasks") == []
    finally:
        second.close()
    assert mount_points() == before


@pytest.mark.parametrize("name", ["nomad-driver-docker", "nomad-driver-podman"])
def test_gc_container_false_keeps_the_stopped_container(tmp_path, image, name):  # noqa: F811
    """gc.container = false: DestroyTask leaves the stopped container (husk
    list and state show it) and its task dir with what the task wrote, but
    no mount and no process. The `kept` file's command removes it (the
    reaper's leaving it alone is a unit test: driver_dangling_test)."""
    before = mount_points()
    config = dict(VOLUMES, gc={"container": False})
    probe = Probe(tmp_path, name=name, plugin_config=config)
    cfg = {"image": image, "command": "/bin/sh", "args": ["-c", "echo kept > /note; sleep 1000"],
           "network_mode": "none"}
    try:
        r = probe.start("a", cfg)
        assert r["ok"], r
        [cid] = containers(probe)
        assert probe.stop("a")["ok"]
        husk = [HUSK, "--root", str(probe.state / "containers")]
        state = subprocess.run(husk + ["state", cid], capture_output=True, text=True)
        assert state.returncode == 0 and json.loads(state.stdout)["status"] == "stopped", state
        task_dir = probe.state / "tasks" / cid
        assert (task_dir / "upper" / "note").read_text() == "kept\n"
        assert not any(str(task_dir) in m for m in mount_points())
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert "sleep 1000" not in ps, ps
        kept = (task_dir / "kept").read_text()
        assert f"delete {cid}" in kept, kept
        assert containers(probe) == [cid]
        # The operator's removal, as the kept file says.
        subprocess.run(husk + ["delete", cid], check=True)
        subprocess.run(["rm", "-r", str(task_dir)], check=True)
        assert containers(probe) == []
    finally:
        probe.close()
    assert mount_points() == before
