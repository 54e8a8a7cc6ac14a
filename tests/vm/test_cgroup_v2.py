"""On a pure cgroup v2 kernel (run through ../shared/vmtest/run-in-vm): the
container's cgroup with controllers, as a systemd host would have it."""
import json
import os
import time

from husktest import CGROUP2, wait_for


def cg(cid, f):
    return open(os.path.join(CGROUP2, "husk", cid, f)).read().strip()


def test_host_is_pure_cgroup_v2():
    assert CGROUP2 == "/sys/fs/cgroup"
    assert "memory" in open("/sys/fs/cgroup/cgroup.controllers").read().split()


def test_lifecycle_on_pure_v2(husk, bundle):
    bundle.set_args("sh", "-c", "sleep 1000 & wait")
    bundle.config["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 20}}
    cid = husk.create()
    assert cg(cid, "memory.max") == str(64 << 20)
    assert cg(cid, "pids.max") == "20"
    husk.cmd("start", cid, check=True)
    assert wait_for(lambda: len(json.loads(husk.cmd("ps", "--format", "json", cid).stdout)) == 2)
    husk.cmd("pause", cid, check=True)
    assert "frozen 1" in cg(cid, "cgroup.events")
    assert husk.state(cid)["status"] == "paused"
    husk.cmd("resume", cid, check=True)
    assert "frozen 0" in cg(cid, "cgroup.events")
    husk.cmd("kill", "--all", cid, "KILL", check=True)
    assert wait_for(lambda: husk.state(cid)["status"] == "stopped")
    husk.cmd("delete", cid, check=True)
    assert not os.path.exists(os.path.join(CGROUP2, "husk", cid))


def test_memory_limit_oom_kills(husk, bundle):
    bundle.config["linux"]["resources"] = {"memory": {"limit": 32 << 20}}
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    bundle.set_args("sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>/dev/null; echo dd=$?")
    cid = husk.new_id()
    r = husk.run("--keep", cid=cid)
    assert r.stdout.strip() == "dd=137"  # SIGKILLed by the OOM killer
    assert "oom_kill 1" in cg(cid, "memory.events")
    husk.cmd("delete", cid, check=True)


def test_pids_limit_stops_a_fork_bomb(husk, bundle):
    bundle.config["linux"]["resources"] = {"pids": {"limit": 8}}
    bundle.set_args("sh", "-c", "for i in $(seq 20); do sleep 5 & done 2>&1 | head -1; echo done")
    r = husk.run(timeout=120)
    assert "can't fork" in r.stdout or "Resource temporarily unavailable" in r.stdout + r.stderr


def test_update_changes_a_live_limit(husk, bundle):
    bundle.set_args("sleep", "1000")
    bundle.config["linux"]["resources"] = {"pids": {"limit": 50}}
    cid = husk.create()
    husk.cmd("update", "--pids-limit", "30", "--memory", "100m", cid, check=True)
    assert cg(cid, "pids.max") == "30"
    assert cg(cid, "memory.max") == str(100 << 20)
