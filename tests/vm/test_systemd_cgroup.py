"""The systemd cgroup manager (--systemd-cgroup) against a fake systemd
(tests/fakesystemd/fake_systemd.py) on a private D-Bus: husk asks for a
transient scope around the container init, the fake makes the real cgroup,
and husk then works in that cgroup. Runs in the VM (pure cgroup v2, where
limits can be checked) and on a hybrid host (limits skipped there)."""
import json
import os
import shutil
import signal
import subprocess
import tempfile

import pytest

from husktest import CGROUP2, ROOT, wait_for

FAKE = os.path.join(ROOT, "tests", "fakesystemd", "fake_systemd.py")
BUS_CONF = os.path.join(ROOT, "tests", "fakesystemd", "bus.conf.in")
SD = ("--systemd-cgroup",)


def controllers():
    return open(os.path.join(CGROUP2, "cgroup.controllers")).read().split()


class FakeSystemd:
    def __init__(self, workdir, serve=True):
        self.dir = workdir
        self.log = os.path.join(workdir, "calls.jsonl")
        sock = os.path.join(workdir, "bus")
        conf = os.path.join(workdir, "bus.conf")
        with open(BUS_CONF) as f, open(conf, "w") as out:
            out.write(f.read().replace("@SOCKET@", sock))
        self.daemon = subprocess.Popen(["dbus-daemon", "--config-file=" + conf, "--nofork", "--nopidfile",
                                        "--print-address=1"], stdout=subprocess.PIPE, text=True,
                                       stderr=open(os.path.join(workdir, "dbus-daemon.log"), "w"))
        self.address = self.daemon.stdout.readline().strip()
        assert self.address.startswith("unix:"), "dbus-daemon did not start"
        self.fake = None
        if serve:  # else a bus on which nobody owns org.freedesktop.systemd1
            self.start_fake()

    def start_fake(self):
        env = dict(os.environ, FAKE_SYSTEMD_LOG=self.log)
        self.fake = subprocess.Popen(["/usr/bin/python3", FAKE, self.address], stdout=subprocess.PIPE, text=True,
                                     env=env)
        assert self.fake.stdout.readline().strip() == "READY", "the fake systemd did not start"

    def restart_fake(self):
        """A systemd that forgot its units (restarted, or collected them)."""
        self.fake.send_signal(signal.SIGTERM)
        self.fake.wait(timeout=10)
        self.start_fake()

    def calls(self, method=None):
        if not os.path.exists(self.log):
            return []
        out = [json.loads(line) for line in open(self.log)]
        return [c for c in out if method is None or c.get("method") == method]

    def units(self):
        return json.load(open(self.log + ".units"))

    def stop(self):
        for p in (self.fake, self.daemon):
            if p is None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture
def fake_systemd(husk):
    """Depends on husk so that it is torn down first: no bus process is left
    when husk's fixture checks for leftover children."""
    if not shutil.which("dbus-daemon"):
        pytest.skip("needs dbus-daemon (package dbus-daemon)")
    workdir = tempfile.mkdtemp(prefix="fakesd-", dir="/tmp")  # short: a socket path is at most 107 bytes
    fake = FakeSystemd(workdir)
    saved = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = fake.address
    yield fake
    husk.delete_all()  # while the bus is up
    fake.stop()
    slices = fake.log + ".slices"
    left = json.load(open(slices)) if os.path.exists(slices) else []
    if saved is None:
        os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
    else:
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = saved
    shutil.rmtree(workdir, ignore_errors=True)
    assert left == [], f"slice cgroups left behind: {left}"


def scope_dir(cid, slice_dir="system.slice", prefix="husk"):
    return os.path.join(CGROUP2, slice_dir, f"{prefix}-{cid}.scope")


def without_cgroupns(bundle):
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "cgroup"]


def record(husk, cid):
    out = {}
    for line in open(os.path.join(husk.root, cid, "state")):
        k, _, v = line.rstrip("\n").partition("=")
        out[k] = v
    return out


def test_container_runs_in_its_scope(fake_systemd, husk, bundle):
    without_cgroupns(bundle)
    bundle.set_args("cat", "/proc/self/cgroup")
    cid = husk.new_id()
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:husk:{cid}"
    r = husk.run(cid=cid, global_args=SD)
    assert r.returncode == 0, r.stderr
    assert f"0::/system.slice/husk-{cid}.scope" in r.stdout.splitlines()
    # What husk asked systemd for, as crun and runc do.
    (start,) = fake_systemd.calls("StartTransientUnit")
    assert start["name"] == f"husk-{cid}.scope" and start["mode"] == "fail" and start["aux"] == []
    p = start["props"]
    assert p["Slice"] == "system.slice" and p["Delegate"] is True and p["DefaultDependencies"] is False
    assert len(p["PIDs"]) == 1 and p["CollectMode"] == "inactive-or-failed"
    # run deleted the container: the unit is stopped and its cgroup gone.
    assert [c["name"] for c in fake_systemd.calls("StopUnit")] == [f"husk-{cid}.scope"]
    assert fake_systemd.units() == {}
    assert not os.path.exists(scope_dir(cid))


def test_default_cgroups_path_is_husk_id_in_system_slice(fake_systemd, husk, bundle):
    without_cgroupns(bundle)
    bundle.set_args("cat", "/proc/self/cgroup")
    cid = husk.new_id()
    r = husk.run(cid=cid, global_args=("--cgroup-manager", "systemd"))
    assert r.returncode == 0, r.stderr
    assert f"0::/system.slice/husk-{cid}.scope" in r.stdout.splitlines()


def test_cgroup_namespace_is_rooted_at_the_scope(fake_systemd, husk, bundle):
    bundle.set_args("cat", "/proc/self/cgroup")
    r = husk.run(global_args=SD)
    assert r.returncode == 0, r.stderr
    assert "0::/" in r.stdout.splitlines()  # (a hybrid host adds v1 lines)


def test_cgroup_namespace_in_a_user_namespace_is_rooted_at_the_scope(fake_systemd, husk, bundle):
    d = os.path.dirname(bundle.rootfs)
    while d != "/":  # pytest's temporary directories are 0700: the mapped root must traverse them
        os.chmod(d, os.stat(d).st_mode | 0o111)
        d = os.path.dirname(d)
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    os.chown(bundle.rootfs, 100000, 100000)
    bundle.set_args("sh", "-c", "cat /proc/self/cgroup; id -u")
    r = husk.run(global_args=SD)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "0::/" in lines and lines[-1] == "0"


def test_lifecycle_limits_ps_pause_kill_delete(fake_systemd, husk, bundle):
    without_cgroupns(bundle)
    limits = "memory" in controllers() and "pids" in controllers()
    bundle.set_args("sh", "-c", "sleep 1000 & wait")
    cid = husk.new_id()
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:husk:{cid}"
    if limits:
        bundle.config["linux"]["resources"] = {"memory": {"limit": 64 << 20}, "pids": {"limit": 20}}
    husk.create(cid, global_args=SD)
    scope = scope_dir(cid)
    assert os.path.isdir(scope)
    rec = record(husk, cid)
    assert rec["cgroup_manager"] == "systemd" and rec["systemd_scope"] == f"husk-{cid}.scope"
    assert rec["cgroup_path"] == scope
    assert open(os.path.join(scope, "cgroup.procs")).read().split() == [rec["pid"]]
    if limits:
        assert open(os.path.join(scope, "memory.max")).read().strip() == str(64 << 20)
        assert open(os.path.join(scope, "pids.max")).read().strip() == "20"
        # systemd is told too, so that it keeps them
        (props,) = [c["props"] for c in fake_systemd.calls("SetUnitProperties")]
        assert props == {"MemoryMax": 64 << 20, "TasksMax": 20}
        # update reaches the same files and the unit
        husk.cmd("update", "--pids-limit", "30", cid, check=True)
        assert open(os.path.join(scope, "pids.max")).read().strip() == "30"
        assert fake_systemd.calls("SetUnitProperties")[-1]["props"]["TasksMax"] == 30
    husk.cmd("start", cid, check=True)
    assert wait_for(lambda: len(json.loads(husk.cmd("ps", "--format", "json", cid).stdout)) == 2)
    # exec'd processes join the scope too
    r = husk.cmd("exec", cid, "cat", "/proc/self/cgroup", check=True)
    assert f"0::/system.slice/husk-{cid}.scope" in r.stdout.splitlines()
    husk.cmd("pause", cid, check=True)
    assert "frozen 1" in open(os.path.join(scope, "cgroup.events")).read()
    assert husk.state(cid)["status"] == "paused"
    husk.cmd("resume", cid, check=True)
    assert "frozen 0" in open(os.path.join(scope, "cgroup.events")).read()
    husk.cmd("kill", "--all", cid, "KILL", check=True)
    assert wait_for(lambda: husk.state(cid)["status"] == "stopped")
    assert fake_systemd.calls("StopUnit") == []  # only delete stops the unit
    husk.cmd("delete", cid, check=True)
    assert [c["name"] for c in fake_systemd.calls("StopUnit")] == [f"husk-{cid}.scope"]
    assert fake_systemd.units() == {}
    assert not os.path.exists(scope)
    assert husk.cmd("list", "-q").stdout.split() == []


def test_unit_properties_for_limits(fake_systemd, husk, bundle):
    bundle.set_args("true")
    # Limits without a controller behind them, so this runs on a hybrid host too.
    bundle.config["linux"]["resources"] = {"pids": {"limit": 0}, "memory": {"limit": -1}}
    if "cpu" in controllers():
        bundle.config["linux"]["resources"]["cpu"] = {"quota": 15000, "period": 100000, "shares": 1024}
    cid = husk.create(global_args=SD)
    (call,) = fake_systemd.calls("SetUnitProperties")
    assert call["name"] == f"husk-{cid}.scope" and call["runtime"] is True
    p = call["props"]
    assert p["TasksMax"] == 2**64 - 1 and p["MemoryMax"] == 2**64 - 1
    if "cpu" in controllers():
        assert p["CPUQuotaPerSecUSec"] == 150000 and p["CPUQuotaPeriodUSec"] == 100000 and p["CPUWeight"] == 100
        assert open(os.path.join(scope_dir(cid), "cpu.max")).read().split() == ["15000", "100000"]
    husk.cmd("delete", cid, check=True)
    assert fake_systemd.units() == {}


def test_delete_force_of_a_running_container_stops_the_scope(fake_systemd, husk, bundle):
    bundle.set_args("sleep", "1000")
    cid = husk.create(global_args=SD)
    husk.cmd("start", cid, check=True)
    husk.cmd("delete", "--force", cid, check=True)
    assert fake_systemd.units() == {}
    assert not os.path.exists(scope_dir(cid))


def test_delete_after_the_init_died_and_systemd_forgot_the_unit(fake_systemd, husk, bundle):
    bundle.set_args("sleep", "1000")
    cid = husk.create(global_args=SD)
    os.kill(int(record(husk, cid)["pid"]), signal.SIGKILL)
    fake_systemd.restart_fake()
    assert fake_systemd.units() == {}
    # No --systemd-cgroup: the record says which manager and unit.
    husk.cmd("delete", "--force", cid, check=True)
    assert [c["name"] for c in fake_systemd.calls("StopUnit")] == [f"husk-{cid}.scope"]
    assert not os.path.exists(scope_dir(cid))
    assert husk.cmd("list", "-q").stdout.split() == []


def test_sub_slice_path(fake_systemd, husk, bundle):
    without_cgroupns(bundle)
    bundle.set_args("cat", "/proc/self/cgroup")
    cid = husk.new_id()
    bundle.config["linux"]["cgroupsPath"] = f"husktest-a.slice:pfx:{cid}"
    r = husk.run(cid=cid, global_args=SD)
    assert r.returncode == 0, r.stderr
    assert f"0::/husktest.slice/husktest-a.slice/pfx-{cid}.scope" in r.stdout.splitlines()


@pytest.mark.parametrize("path", ["husk:only-two", "system.slice:husk:x:y", "system/x.slice:husk:x",
                                  "system:husk:x", "system.slice:husk:pod.slice", "system.slice:husk:"])
def test_bad_cgroups_path_is_one_clear_error(fake_systemd, husk, bundle, path):
    bundle.config["linux"]["cgroupsPath"] = path
    r = husk.create(check=False, global_args=SD)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "linux.cgroupsPath" in lines[0], lines[0]
    assert fake_systemd.calls("StartTransientUnit") == []
    assert husk.cmd("list", "-q").stdout.split() == []


def test_unreachable_bus_is_one_clear_error(husk, bundle, monkeypatch, tmp_path):
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", f"unix:path={tmp_path}/nobody-listens")
    bundle.set_args("true")
    r = husk.create(check=False, global_args=SD)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "system bus" in lines[0] and "nobody-listens" in lines[0], lines[0]
    assert "--cgroup-manager cgroupfs" in lines[0], lines[0]
    assert husk.cmd("list", "-q").stdout.split() == []


def test_bus_without_systemd_is_one_clear_error(husk, bundle, monkeypatch):
    workdir = tempfile.mkdtemp(prefix="fakesd-", dir="/tmp")
    bus = FakeSystemd(workdir, serve=False)
    try:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.address)
        r = husk.create(check=False, global_args=SD)
    finally:
        bus.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "system bus" in lines[0] and "org.freedesktop.DBus.Error.ServiceUnknown" in lines[0], lines[0]
    assert "--cgroup-manager cgroupfs" in lines[0], lines[0]
    assert husk.cmd("list", "-q").stdout.split() == []


def test_failed_start_job_unwinds(fake_systemd, husk, bundle):
    bundle.set_args("true")
    cid = husk.new_id()
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:fakefail:{cid}"
    r = husk.create(cid, check=False, global_args=SD)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"StartTransientUnit fakefail-{cid}.scope" in lines[0] and '"failed"' in lines[0], lines[0]
    # the failed unit was reset; no state, process (husk's fixture) or cgroup is left
    assert [c["name"] for c in fake_systemd.calls("ResetFailedUnit")] == [f"fakefail-{cid}.scope"]
    assert fake_systemd.units() == {}
    assert husk.cmd("list", "-q").stdout.split() == []
    assert not os.path.exists(scope_dir(cid, prefix="fakefail"))


def test_start_job_that_never_finishes_times_out_and_unwinds(fake_systemd, husk, bundle):
    bundle.set_args("true")
    cid = husk.new_id()
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:fakehang:{cid}"
    r = husk.create(cid, check=False, global_args=SD, timeout=90)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"StartTransientUnit fakehang-{cid}.scope" in lines[0] and "did not finish within 30 s" in lines[0], lines[0]
    # the unit systemd accepted is stopped: no cgroup, unit, state or process is left
    assert [c["name"] for c in fake_systemd.calls("StopUnit")] == [f"fakehang-{cid}.scope"]
    assert fake_systemd.units() == {}
    assert not os.path.exists(scope_dir(cid, prefix="fakehang"))
    assert husk.cmd("list", "-q").stdout.split() == []
