"""Namespaces: created, joined by path, user namespace maps, time offsets."""
import json
import os
import subprocess

import pytest
from husktest import wait_for


def test_new_network_namespace_has_only_loopback(husk, bundle):
    bundle.set_args("sh", "-c", "ls /sys/class/net")
    assert husk.run().stdout.split() == ["lo"]


def test_ipc_namespace_is_private(husk, bundle):
    bundle.set_args("readlink", "/proc/self/ns/ipc")
    assert husk.run().stdout.strip() != os.readlink("/proc/self/ns/ipc")


def test_join_network_namespace_by_path(husk, bundle):
    # A netns held by a process, not by `ip netns add`: that would leave
    # /run/netns mounted on a machine where it was not yet.
    holder = subprocess.Popen(["unshare", "--net", "sleep", "60"])
    try:
        path = f"/proc/{holder.pid}/ns/net"
        assert wait_for(lambda: os.readlink(path) != os.readlink("/proc/self/ns/net"))
        for ns in bundle.config["linux"]["namespaces"]:
            if ns["type"] == "network":
                ns["path"] = path
        bundle.set_args("readlink", "/proc/self/ns/net")
        r = husk.run()
        assert r.stdout.strip() == os.readlink(path), r.stderr
    finally:
        holder.kill()
        holder.wait()


def test_without_a_network_namespace_the_host_network_is_shared(husk, bundle):
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "network"]
    bundle.set_args("readlink", "/proc/self/ns/net")
    assert husk.run().stdout.strip() == os.readlink("/proc/self/ns/net")


def reachable_by_mapped_root(bundle):
    # pytest's temporary directories are 0700: the mapped root must traverse them.
    d = os.path.dirname(bundle.rootfs)
    while d != "/":
        os.chmod(d, os.stat(d).st_mode | 0o111)
        d = os.path.dirname(d)


def test_user_namespace_with_id_mappings(husk, bundle):
    reachable_by_mapped_root(bundle)
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    os.chown(bundle.rootfs, 100000, 100000)
    bundle.set_args("sh", "-c", "cat /proc/self/uid_map; id -u; touch /tmp/x && stat -c %u /tmp/x")
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    # sysfs cannot be mounted from a user namespace that does not own the netns: it still works here (new netns).
    r = husk.run()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0].split() == ["0", "100000", "65536"]
    assert lines[1] == "0"
    assert lines[2] == "0"


def test_user_namespace_oom_score_adj_for_the_init_and_exec(husk, bundle):
    """process.oomScoreAdj with a new user namespace: the container's
    /proc/self/oom_score_adj belongs to a root it does not map, so husk
    writes it from outside, for the init and for an exec."""
    reachable_by_mapped_root(bundle)
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    os.chown(bundle.rootfs, 100000, 100000)
    bundle.config["process"]["oomScoreAdj"] = 432
    bundle.set_args("sleep", "1000")
    cid = husk.create()
    try:
        pid = husk.state(cid)["pid"]
        assert open(f"/proc/{pid}/oom_score_adj").read().strip() == "432"
        husk.cmd("start", cid, check=True)
        proc = bundle.path + "/exec.json"
        with open(proc, "w") as fh:
            json.dump({**bundle.config["process"], "args": ["cat", "/proc/self/oom_score_adj"],
                       "oomScoreAdj": 321}, fh)
        r = husk.cmd("exec", "--process", proc, cid)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "321"
    finally:
        husk.cmd("delete", "--force", cid)


def _has_cap_sys_resource():
    for line in open("/proc/self/status"):
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) & (1 << 24))
    return False


@pytest.mark.skipif(not _has_cap_sys_resource(), reason="raising a hard limit needs CAP_SYS_RESOURCE, which this "
                    "machine's root lacks (tests/vm/test_driver_fields.py's userns auto task covers it)")
def test_user_namespace_rlimits_above_husks_own_hard_limit(husk, bundle):
    """A container in a new user namespace gets hard limits above husk's own
    (podman's nofile 1048576 default): the child may not raise them itself
    once in its user namespace, so husk sets them from outside, as runc does."""
    import resource
    reachable_by_mapped_root(bundle)
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    os.chown(bundle.rootfs, 100000, 100000)
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 6000, "hard": 8192}]
    bundle.set_args("sh", "-c", "ulimit -n; ulimit -Hn")
    # husk starts with a hard limit below the container's.
    r = husk.run(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 4096)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["6000", "8192"]


def test_user_namespace_process_runs_as_mapped_host_uid(husk, bundle):
    reachable_by_mapped_root(bundle)
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000}]
    bundle.config["process"]["user"] = {"uid": 10, "gid": 10}
    bundle.set_args("sleep", "1000")
    cid = husk.create()
    pid = husk.state(cid)["pid"]
    husk.cmd("start", cid, check=True)
    import time
    time.sleep(0.2)
    uids = [l for l in open(f"/proc/{pid}/status") if l.startswith("Uid:")][0].split()[1:]
    assert uids == ["200010"] * 4


def test_time_namespace_offsets(husk, bundle):
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = {"boottime": {"secs": 86400 * 365, "nanosecs": 0}}
    bundle.set_args("cat", "/proc/uptime")
    up = float(husk.run().stdout.split()[0])
    host = float(open("/proc/uptime").read().split()[0])
    assert up - host > 86400 * 364


def test_cgroup_namespace_makes_own_cgroup_the_root(husk, bundle):
    bundle.set_args("cat", "/proc/self/cgroup")
    assert husk.run().stdout.strip().splitlines()[-1] == "0::/"
