"""linux.resources on a pure cgroup v2 kernel: every resource lands in its
cgroup file and has its effect, and `husk events` reports stats and OOM kills."""
import json
import os
import stat
import subprocess
import time

from husktest import CGROUP2, HUSK, wait_for


def cg(cid, f):
    return open(os.path.join(CGROUP2, "husk", cid, f)).read().strip()


def events_stats(husk, cid):
    r = husk.cmd("events", "--stats", cid, check=True)
    ev = json.loads(r.stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    return ev["data"]


def test_every_resource_is_written_to_its_file(husk, bundle):
    bundle.set_args("sleep", "1000")
    bundle.config["linux"]["resources"] = {
        "memory": {"limit": 96 << 20, "reservation": 16 << 20},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "idle": 0,
                "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
        "blockIO": {"weight": 500},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 21}],
        "unified": {"memory.high": str(80 << 20)},
    }
    cid = husk.create()
    assert cg(cid, "memory.max") == str(96 << 20)
    assert cg(cid, "memory.low") == str(16 << 20)
    assert cg(cid, "memory.high") == str(80 << 20)
    assert cg(cid, "cpu.weight") == "100"  # 1024 shares: the defaults meet
    assert cg(cid, "cpu.max") == "50000 100000"
    assert cg(cid, "cpu.max.burst") == "1000"
    assert cg(cid, "cpu.idle") == "0"
    assert cg(cid, "cpuset.cpus") == "0"
    assert cg(cid, "cpuset.mems") == "0"
    assert cg(cid, "pids.max") == "42"
    assert cg(cid, "io.weight").split()[:2] == ["default", "4950"]
    assert cg(cid, "hugetlb.2MB.max") == str(4 << 21)
    if os.path.exists(os.path.join(CGROUP2, "husk", cid, "hugetlb.2MB.rsvd.max")):
        assert cg(cid, "hugetlb.2MB.rsvd.max") == str(4 << 21)


def test_unified_key_that_is_no_file_is_an_error_and_leaves_nothing(husk, bundle):
    bundle.config["linux"]["resources"] = {"unified": {"memory.nonexistent": "1"}}
    r = husk.create(check=False)
    assert r.returncode != 0
    assert "linux.resources.unified.memory.nonexistent" in r.stderr, r.stderr
    assert husk.cmd("list", "-q").stdout.strip() == ""
    top = os.path.join(CGROUP2, "husk")
    assert not os.path.isdir(top) or [d for d in os.listdir(top) if os.path.isdir(os.path.join(top, d))] == []


def test_cpuset_pins_the_container(husk, bundle):
    cpus = os.sched_getaffinity(0)
    last = max(cpus)
    bundle.config["linux"]["resources"] = {"cpu": {"cpus": str(last)}}
    bundle.set_args("sh", "-c", "grep Cpus_allowed_list /proc/self/status")
    r = husk.run()
    assert r.stdout.split() == ["Cpus_allowed_list:", str(last)], r.stderr


def test_cpu_max_throttles_a_busy_loop(husk, bundle):
    bundle.config["linux"]["resources"] = {"cpu": {"quota": 10000, "period": 100000}}
    bundle.set_args("sh", "-c", "while :; do :; done")
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    # A 10% quota: a spinning shell is throttled in every period it runs.
    assert wait_for(lambda: events_stats(husk, cid)["cpu"]["throttling"]["throttled_periods"] >= 3, timeout=30)
    stat = dict(line.split() for line in cg(cid, "cpu.stat").splitlines())
    assert int(stat["nr_throttled"]) >= 3
    husk.cmd("kill", cid, "KILL", check=True)


def test_events_stats_reports_memory_and_pids(husk, bundle):
    bundle.config["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 30}}
    bundle.set_args("sh", "-c", "sleep 1000 & sleep 1000 & wait")
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    assert wait_for(lambda: events_stats(husk, cid)["pids"]["current"] == 3)
    d = events_stats(husk, cid)
    assert d["pids"]["limit"] == 30
    assert d["memory"]["usage"]["limit"] == 64 << 20
    assert 0 < d["memory"]["usage"]["usage"] <= 64 << 20
    assert "anon" in d["memory"]["raw"]
    assert d["cpu"]["usage"]["total"] > 0
    husk.cmd("kill", "--all", cid, "KILL", check=True)


def test_events_reports_an_oom_kill_as_it_happens(husk, bundle):
    bundle.config["linux"]["resources"] = {"memory": {"limit": 32 << 20}}
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    bundle.set_args("sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1M count=100 2>/dev/null; echo dd=$?")
    cid = husk.create()
    ev = subprocess.Popen([HUSK, "--root", husk.root, "events", "--interval", "1h", cid],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(ev.stdout.readline())  # the watch is set up
        assert first["type"] == "stats"
        husk.cmd("start", cid, check=True)
        # It ends by itself once the container's last process has exited.
        out, err = ev.communicate(timeout=120)
    finally:
        if ev.poll() is None:
            ev.kill()
            ev.wait()
    assert ev.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert {"type": "oom", "id": cid} in events, out
    assert "oom_kill 1" in cg(cid, "memory.events")


def test_events_of_a_stopped_container_is_an_error(husk, bundle):
    bundle.set_args("true")
    cid = husk.new_id()
    husk.run("--keep", cid=cid)
    r = husk.cmd("events", "--stats", cid)
    assert r.returncode == 1 and "is stopped" in r.stderr, r.stderr
    r = husk.cmd("events", "--interval", "5x", cid)
    assert r.returncode == 1 and "--interval" in r.stderr


def test_update_from_a_resources_file(husk, bundle, tmp_path):
    bundle.set_args("sleep", "1000")
    bundle.config["linux"]["resources"] = {"pids": {"limit": 50}}
    cid = husk.create()
    f = tmp_path / "resources.json"
    f.write_text(json.dumps({"pids": {"limit": 12}, "cpu": {"quota": 20000, "period": 50000},
                             "memory": {"limit": 48 << 20}}))
    husk.cmd("update", "-r", str(f), cid, check=True)
    assert cg(cid, "pids.max") == "12"
    assert cg(cid, "cpu.max") == "20000 50000"
    assert cg(cid, "memory.max") == str(48 << 20)
    husk.cmd("update", "--cpu-quota", "-1", cid, check=True)
    assert cg(cid, "cpu.max") == "max 50000"  # the period stays


def test_cgroup_namespace_shows_the_container_its_own_subtree(husk, bundle):
    bundle.config["linux"]["resources"] = {"pids": {"limit": 17}}
    bundle.config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup",
                                    "options": ["nosuid", "noexec", "nodev", "ro"]})
    bundle.set_args("sh", "-c", "cat /proc/self/cgroup /sys/fs/cgroup/pids.max")
    r = husk.run()
    assert r.stdout.split() == ["0::/", "17"], r.stderr


def test_block_io_throttle_of_a_real_device(husk, bundle, tmp_path):
    # A loop device over a file on the VM's tmpfs: a block device io.max accepts.
    img = tmp_path / "disk.img"
    img.write_bytes(b"\0" * (8 << 20))
    # The VM's devtmpfs has no loop nodes until the module is in: opening
    # loop-control autoloads it.
    if not os.path.exists("/dev/loop-control"):
        os.mknod("/dev/loop-control", 0o600 | stat.S_IFCHR, os.makedev(10, 237))
    dev = subprocess.run(["losetup", "--find", "--show", str(img)], capture_output=True, text=True, check=True).stdout.strip()
    try:
        st = os.stat(dev)
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        bundle.set_args("sleep", "1000")
        bundle.config["linux"]["resources"] = {"blockIO": {
            "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1048576}],
            "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}],
        }}
        cid = husk.create()
        line = [l for l in cg(cid, "io.max").splitlines() if l.startswith(f"{major}:{minor} ")]
        assert line, cg(cid, "io.max")
        fields = dict(kv.split("=") for kv in line[0].split()[1:])
        assert fields["rbps"] == "1048576" and fields["wiops"] == "100", line
        husk.cmd("update", "-r", "-", cid, check=True,
                 input=json.dumps({"blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 0}]}}))
        line = [l for l in cg(cid, "io.max").splitlines() if l.startswith(f"{major}:{minor} ")]
        assert not line or "rbps=max" in line[0], line
        husk.cmd("delete", "--force", cid, check=True)
    finally:
        subprocess.run(["losetup", "-d", dev], check=False)
