"""Rootless cgroups through the user's systemd (husk --systemd-cgroup as an
unprivileged user), on a pure cgroup v2 kernel (the VM).

No real systemd runs here, so the test builds what a systemd host gives a
logged-in user, as root, and hands it over the way systemd does:
- a user with a passwd entry and a 65536-id range in /etc/subuid and
  /etc/subgid (the VM's /etc is the host's, read-only: copies of the four
  files are bound over them for the module, and unmounted afterwards);
- user.slice/user-UID.slice/user@UID.service, delegated to the user as
  systemd's user@.service does (Delegate=yes: the directory, cgroup.procs,
  cgroup.subtree_control and cgroup.threads chowned to the user; memory,
  pids and cpu enabled down to it, Debian 12's user@.service delegation);
- the user's session bus at $XDG_RUNTIME_DIR/bus (a dbus-daemon run as the
  user, which only that uid may connect to), served by the fake systemd
  (tests/fakesystemd/fake_systemd.py) run as the user as its user manager:
  both in user@UID.service/init.scope, where systemd --user runs.
husk runs as the user in user@UID.service/app.slice/husk-test.service (a
user unit such as contrib's husk@.service), with no DBUS_SESSION_BUS_ADDRESS:
it must find the bus through $XDG_RUNTIME_DIR as sd_bus_open_user does."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from husktest import BASE_CONFIG, HUSK, ROOT, reap_orphans, run_captured

CG = "/sys/fs/cgroup"
UID = 4322
NAME = "husk-sdtest"
START = 700000
RANGE = 65536
SLICE = os.path.join(CG, "user.slice")
USER_SLICE = os.path.join(SLICE, f"user-{UID}.slice")
MANAGER = os.path.join(USER_SLICE, f"user@{UID}.service")
MANAGER_REL = os.path.relpath(MANAGER, CG)
INIT_SCOPE = os.path.join(MANAGER, "init.scope")
RUNNER = os.path.join(MANAGER, "app.slice", "husk-test.service")
FAKE = os.path.join(ROOT, "tests", "fakesystemd", "fake_systemd.py")
USER_BUS_CONF = os.path.join(ROOT, "tests", "fakesystemd", "user-bus.conf.in")
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
SD = "--systemd-cgroup"

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(CG, "cgroup.subtree_control")),
                                reason="needs a pure cgroup v2 host (run it in the VM: tools/vm or run-in-vm)")


def as_user_in(cgroup, argv):
    """argv as the user, started in `cgroup` (moved there while still root)."""
    user = [SETPRIV, f"--reuid={UID}", f"--regid={UID}", "--init-groups", *argv]
    return ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh", *user]


def chown_tree(top):
    for d, dirs, files in os.walk(top):
        os.lchown(d, UID, UID)
        for n in dirs + files:
            os.lchown(os.path.join(d, n), UID, UID)


def remove_cgroup_tree(path):
    if not os.path.isdir(path):
        return
    if os.path.exists(os.path.join(path, "cgroup.kill")):
        with open(os.path.join(path, "cgroup.kill"), "w") as f:
            f.write("1")
    deadline = time.time() + 10
    for d, dirs, _ in os.walk(path, topdown=False):
        for sub in dirs:
            while True:
                try:
                    os.rmdir(os.path.join(d, sub))
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.05)
    os.rmdir(path)


def bind_user_files(workdir, mounted):
    """The user in copies of /etc/passwd, group, subuid and subgid."""
    entries = {"passwd": f"{NAME}:x:{UID}:{UID}::/nonexistent:/usr/sbin/nologin\n", "group": f"{NAME}:x:{UID}:\n",
               "subuid": f"{NAME}:{START}:{RANGE}\n", "subgid": f"{NAME}:{START}:{RANGE}\n"}
    for f, line in entries.items():
        copy = os.path.join(workdir, f)
        with open(f"/etc/{f}") as src, open(copy, "w") as dst:
            dst.write(src.read() + line)
        os.chmod(copy, 0o644)
        subprocess.run(["mount", "--bind", copy, f"/etc/{f}"], check=True)
        mounted.append(f"/etc/{f}")


def delegate_user_manager(made):
    """What systemd does for user@UID.service: controllers down to it, and the
    cgroup handed to the user."""
    for d in (SLICE, USER_SLICE, MANAGER):
        if not os.path.isdir(d):
            os.mkdir(d)
            made.insert(0, d)
    for d in (CG, SLICE, USER_SLICE):
        with open(os.path.join(d, "cgroup.subtree_control"), "w") as f:
            f.write("+memory +pids +cpu")
    for f in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
        os.chown(os.path.join(MANAGER, f) if f else MANAGER, UID, UID)
    for d in (INIT_SCOPE, os.path.dirname(RUNNER), RUNNER):
        os.mkdir(d)
    chown_tree(MANAGER)


class UserSession:
    """The user's runtime dir, session bus and user manager (the fake)."""

    def __init__(self, base):
        self.base = base
        self.xdg = os.path.join(base, "xdg")  # short: a socket path is at most 107 bytes
        os.mkdir(self.xdg, 0o700)
        os.chown(self.xdg, UID, UID)
        self.log = os.path.join(base, "fake", "calls.jsonl")
        os.mkdir(os.path.dirname(self.log), 0o755)
        os.chown(os.path.dirname(self.log), UID, UID)
        conf = os.path.join(base, "user-bus.conf")
        with open(USER_BUS_CONF) as f, open(conf, "w") as out:
            out.write(f.read().replace("@SOCKET@", os.path.join(self.xdg, "bus")))
        os.chmod(conf, 0o644)
        self.conf = conf
        self.daemon = self.fake = None

    def start(self):
        conf, base = self.conf, self.base
        self.daemon = subprocess.Popen(
            as_user_in(INIT_SCOPE, ["dbus-daemon", "--config-file=" + conf, "--nofork", "--nopidfile",
                                    "--print-address=1"]),
            stdout=subprocess.PIPE, text=True, stderr=open(os.path.join(base, "dbus-daemon.log"), "w"))
        self.address = self.daemon.stdout.readline().strip()
        assert self.address.startswith("unix:path=" + self.xdg), f"the user's dbus-daemon did not start: {self.logs()}"
        env = {"PATH": "/usr/bin:/bin", "FAKE_SYSTEMD_LOG": self.log, "FAKE_SYSTEMD_CGROUP_ROOT": MANAGER_REL,
               "HOME": base}
        self.fake = subprocess.Popen(as_user_in(INIT_SCOPE, ["/usr/bin/python3", FAKE, self.address]),
                                     stdout=subprocess.PIPE, text=True, env=env,
                                     stderr=open(os.path.join(base, "fake.log"), "w"))
        assert self.fake.stdout.readline().strip() == "READY", \
            f"the fake user manager did not start: {self.logs()}"

    def logs(self):
        return {f: open(os.path.join(self.base, f)).read() for f in ("dbus-daemon.log", "fake.log")
                if os.path.exists(os.path.join(self.base, f))}

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
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        slices = self.log + ".slices"
        return json.load(open(slices)) if os.path.exists(slices) else []


@pytest.fixture(scope="module")
def session(rootfs_template):
    if os.geteuid() != 0:
        pytest.skip("needs root to add the user and delegate its cgroup")
    if not shutil.which("dbus-daemon"):
        pytest.skip("needs dbus-daemon (package dbus-daemon)")
    base = tempfile.mkdtemp(prefix="rlsd-", dir="/tmp")
    os.chmod(base, 0o755)
    mounted, made, s = [], [], None
    try:
        bind_user_files(base, mounted)
        delegate_user_manager(made)
        s = UserSession(base)
        s.template = rootfs_template
        s.start()
        yield s
    finally:
        left = s.stop() if s else []
        remove_cgroup_tree(MANAGER)
        for d in made:
            if d != MANAGER and os.path.isdir(d):
                os.rmdir(d)
        for m in reversed(mounted):
            subprocess.run(["umount", m], check=True)
        reap_orphans()
        shutil.rmtree(base, ignore_errors=True)
    assert left == [], f"the fake user manager left slices behind: {left}"


class UserHusk:
    def __init__(self, session, base):
        self.s = session
        self.base = base
        self.bundle = os.path.join(base, "bundle")
        os.mkdir(self.bundle, 0o755)
        shutil.copytree(session.template, os.path.join(self.bundle, "rootfs"), symlinks=True)
        chown_tree(self.bundle)
        cfg = json.loads(json.dumps(BASE_CONFIG))
        # No cgroup namespace: the container's /proc/self/cgroup shows its
        # place in the host's tree.
        cfg["linux"]["namespaces"] = [n for n in cfg["linux"]["namespaces"] if n["type"] != "cgroup"]
        cfg["linux"]["namespaces"].append({"type": "user"})
        for k, own in (("uidMappings", UID), ("gidMappings", UID)):
            cfg["linux"][k] = [{"containerID": 0, "hostID": own, "size": 1},
                               {"containerID": 1, "hostID": START, "size": RANGE}]
        self.config = cfg
        self._n = 0

    def new_id(self):
        self._n += 1
        return f"rlsd{os.getpid()}-{self._n}"

    def scope(self, cid):
        return os.path.join(MANAGER, "user.slice", f"husk-{cid}.scope")

    def write(self):
        p = os.path.join(self.bundle, "config.json")
        with open(p, "w") as f:
            json.dump(self.config, f)
        os.chown(p, UID, UID)

    def cmd(self, *args, xdg=None, timeout=120, check=False):
        env = {"XDG_RUNTIME_DIR": xdg or self.s.xdg, "PATH": "/usr/bin:/bin", "HOME": self.base}
        return run_captured(as_user_in(RUNNER, [HUSK, *args]), timeout=timeout, check=check, env=env, cwd=self.base)

    def state(self, cid):
        return json.loads(self.cmd("state", cid, check=True).stdout)


@pytest.fixture
def uh(session):
    base = tempfile.mkdtemp(prefix="rlsdh-", dir="/tmp")
    os.chmod(base, 0o755)
    h = UserHusk(session, base)
    calls_before = len(session.calls())
    h.calls = lambda method=None: [c for c in session.calls()[calls_before:]
                                   if method is None or c.get("method") == method]
    try:
        yield h
        for cid in h.cmd("list", "-q").stdout.split():
            h.cmd(SD, "delete", "--force", cid)
        assert h.cmd("list", "-q").stdout.split() == []
        assert session.units() == {}, "units left in the user manager"
        left = [d for d in os.listdir(os.path.join(MANAGER, "user.slice")) if d.endswith(".scope")] \
            if os.path.isdir(os.path.join(MANAGER, "user.slice")) else []
        assert left == [], f"scopes left behind: {left}"
    finally:
        reap_orphans()
        shutil.rmtree(base, ignore_errors=True)


def read(path):
    return open(path).read().strip()


def test_run_gets_a_delegated_scope_in_the_user_managers_user_slice(uh):
    uh.config["process"]["args"] = ["sh", "-c", "cat /proc/self/cgroup; id -u; cat /proc/self/uid_map"]
    cid = uh.new_id()
    uh.write()
    r = uh.cmd(SD, "run", "--bundle", uh.bundle, cid)
    assert r.returncode == 0, r.stderr
    assert "running without a cgroup" not in r.stderr, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"0::/{MANAGER_REL}/user.slice/husk-{cid}.scope", r.stdout
    assert lines[1] == "0" and lines[3].split() == ["1", str(START), str(RANGE)], r.stdout  # the subuid range
    # What husk asked the user manager for: what runc and crun ask for.
    (start,) = uh.calls("StartTransientUnit")
    assert start["name"] == f"husk-{cid}.scope" and start["mode"] == "fail" and start["aux"] == []
    p = start["props"]
    assert p["Slice"] == "user.slice" and p["Delegate"] is True and p["DefaultDependencies"] is False
    assert p["CollectMode"] == "inactive-or-failed" and len(p["PIDs"]) == 1
    assert all(p[k] is True for k in ("MemoryAccounting", "CPUAccounting", "IOAccounting", "TasksAccounting"))
    # run deletes: the unit is stopped and the scope gone.
    assert [c["name"] for c in uh.calls("StopUnit")] == [f"husk-{cid}.scope"]
    assert uh.s.units() == {}
    assert not os.path.exists(uh.scope(cid))


def test_limits_update_exec_pause_resume_and_delete(uh):
    uh.config["process"]["args"] = ["sleep", "1000"]
    uh.config["linux"]["resources"] = {"memory": {"limit": 48 << 20}, "pids": {"limit": 20}}
    cid = uh.new_id()
    uh.write()
    uh.cmd(SD, "create", "--bundle", uh.bundle, cid, check=True)
    scope = uh.scope(cid)
    assert os.stat(scope).st_uid == UID  # the user manager made it, as the user
    pid = uh.state(cid)["pid"]
    assert read(os.path.join(scope, "cgroup.procs")).split() == [str(pid)]
    assert read(os.path.join(scope, "memory.max")) == str(48 << 20)
    assert read(os.path.join(scope, "pids.max")) == "20"
    (props,) = [c["props"] for c in uh.calls("SetUnitProperties")]
    assert props == {"MemoryMax": 48 << 20, "TasksMax": 20}
    # Later commands take the manager from the record: no --systemd-cgroup.
    uh.cmd("update", "--pids-limit", "30", "--memory", "64m", cid, check=True)
    assert read(os.path.join(scope, "pids.max")) == "30"
    assert read(os.path.join(scope, "memory.max")) == str(64 << 20)
    assert uh.calls("SetUnitProperties")[-1]["props"] == {"MemoryMax": 64 << 20, "TasksMax": 30}
    uh.cmd("start", cid, check=True)
    r = uh.cmd("exec", cid, "cat", "/proc/self/cgroup", check=True)
    assert r.stdout.strip() == f"0::/{MANAGER_REL}/user.slice/husk-{cid}.scope"
    uh.cmd("pause", cid, check=True)
    assert "frozen 1" in open(os.path.join(scope, "cgroup.events")).read()
    assert uh.state(cid)["status"] == "paused"
    uh.cmd("resume", cid, check=True)
    assert "frozen 0" in open(os.path.join(scope, "cgroup.events")).read()
    assert uh.state(cid)["status"] == "running"
    # ps, stats and kill --all read and signal the scope.
    assert json.loads(uh.cmd("ps", "--format", "json", cid, check=True).stdout) == [pid]
    ev = json.loads(uh.cmd("events", "--stats", cid, check=True).stdout)
    assert ev["type"] == "stats" and ev["data"]["pids"]["current"] == 1 and ev["data"]["pids"]["limit"] == 30
    assert 0 < ev["data"]["memory"]["usage"]["usage"] <= 64 << 20
    uh.cmd("kill", "--all", cid, "KILL", check=True)
    deadline = time.time() + 30
    while uh.state(cid)["status"] != "stopped" and time.time() < deadline:
        time.sleep(0.1)
    assert uh.state(cid)["status"] == "stopped"
    assert uh.calls("StopUnit") == []  # only delete stops the unit
    uh.cmd("delete", cid, check=True)
    assert [c["name"] for c in uh.calls("StopUnit")] == [f"husk-{cid}.scope"]
    assert uh.s.units() == {}
    assert not os.path.exists(scope)


def test_a_fork_bomb_is_capped_by_pids_max(uh):
    uh.config["linux"]["resources"] = {"pids": {"limit": 8}}
    uh.config["process"]["args"] = ["sleep", "1000"]
    cid = uh.new_id()
    uh.write()
    uh.cmd(SD, "run", "--detach", "--bundle", uh.bundle, cid, check=True)
    scope = uh.scope(cid)
    # Forks until the kernel refuses one; busybox sh then gives up.
    r = uh.cmd("exec", cid, "sh", "-c", "while :; do sleep 1000 & done", timeout=300)
    assert r.returncode != 0 and "can't fork" in r.stdout + r.stderr, r
    assert int(read(os.path.join(scope, "pids.events")).split()[1]) >= 1
    assert 1 < int(read(os.path.join(scope, "pids.current"))) <= 8
    uh.cmd("delete", "--force", cid, check=True)
    assert not os.path.exists(scope)


def test_without_a_user_bus_it_is_one_clear_error(uh):
    xdg = os.path.join(uh.base, "nobus")  # a runtime dir with no bus socket in it
    os.mkdir(xdg, 0o700)
    os.chown(xdg, UID, UID)
    uh.config["process"]["args"] = ["true"]
    uh.write()
    r = uh.cmd(SD, "run", "--bundle", uh.bundle, uh.new_id(), xdg=xdg)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "systemd cgroup manager" in lines[0] and f"user bus at unix:path={xdg}/bus" in lines[0], lines[0]
    assert "--cgroup-manager cgroupfs" in lines[0], lines[0]
    assert uh.cmd("list", "-q", xdg=xdg).stdout.split() == []
    assert uh.calls("StartTransientUnit") == []
