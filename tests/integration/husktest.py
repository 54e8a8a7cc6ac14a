"""Integration tests: run the husk binary on real containers and check what
the container's process saw. Every test gets its own state root and bundle;
teardown checks that no mount, cgroup, state directory or process is left."""
import copy
import itertools
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HUSK = os.environ.get("HUSK_BIN", os.path.join(ROOT, "build", "src", "cli", "husk"))
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
CGROUP2 = "/sys/fs/cgroup" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "/sys/fs/cgroup/unified"

# This machine's pid 1 does not reap orphans: detached containers become ours.
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

# Like conmon or containerd-shim, we reap orphans as they die: a pid
# namespace's init cannot finish exiting while processes of its namespace
# (detached exec'd processes, reparented to us) are unreaped. subprocess's own
# children are registered under a lock when spawned and never touched.
_spawn_lock = threading.Lock()
_spawned = set()
_orig_execute_child = subprocess.Popen._execute_child


def _execute_child(self, *args, **kwargs):
    with _spawn_lock:
        _orig_execute_child(self, *args, **kwargs)
        _spawned.add(self.pid)


subprocess.Popen._execute_child = _execute_child


def _children(zombies):
    """Our children that are (zombies=True) or are not (False) zombies."""
    me = str(os.getpid())
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if fields[1] == me and (fields[0] == "Z") == zombies:
            out.append(int(d))
    return out


def _zombie_children():
    return _children(True)


def _reaper():
    while True:
        time.sleep(0.05)
        with _spawn_lock:
            for pid in _zombie_children():
                if pid not in _spawned:
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass


threading.Thread(target=_reaper, daemon=True, name="orphan-reaper").start()

BASE_CONFIG = {
    "ociVersion": "1.2.0",
    "process": {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["true"],
        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
        "cwd": "/",
        "capabilities": {
            "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    },
    "root": {"path": "rootfs", "readonly": False},
    "hostname": "husk-test",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    ],
    "linux": {
        "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                       {"type": "mount"}, {"type": "cgroup"}],
        "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/proc/scsi"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
}


def mount_points():
    with open("/proc/self/mountinfo") as f:
        return sorted(line.split()[4] for line in f)


def reap_orphans():
    with _spawn_lock:
        for pid in _zombie_children():
            if pid not in _spawned:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass


def children_of_us():
    return _children(False)


def kill_stray_children():
    """A test's teardown: reap what ended, kill and reap whatever still runs
    below us, and return those (the test asserts there were none)."""
    time.sleep(0.01)
    reap_orphans()
    procs = children_of_us()
    for p in procs:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    reap_orphans()
    return procs


@pytest.fixture(scope="session")
def rootfs_template(tmp_path_factory):
    d = tmp_path_factory.mktemp("template")
    subprocess.run([os.path.join(ROOT, "tools", "make-demo-bundle"), BUSYBOX, str(d / "bundle")], check=True)
    return d / "bundle" / "rootfs"


class Bundle:
    def __init__(self, path, template):
        self.path = str(path)
        shutil.copytree(template, os.path.join(self.path, "rootfs"), symlinks=True)
        self.config = copy.deepcopy(BASE_CONFIG)

    @property
    def rootfs(self):
        return os.path.join(self.path, "rootfs")

    def write(self, config=None):
        with open(os.path.join(self.path, "config.json"), "w") as f:
            if isinstance(config, str):
                f.write(config)
            else:
                json.dump(config if config is not None else self.config, f, indent=1)

    def set_args(self, *args):
        self.config["process"]["args"] = list(args)
        return self


# Container ids are unique in a whole pytest run, not per test: kernel objects
# named after a container (its session keyring) can outlive it for a while.
_ids = itertools.count(1)


def run_captured(argv, input=None, timeout=60, check=False, **kw):
    """Run a command (husk, or husk through setpriv) to completion; its output
    goes to files, not pipes: a created container keeps the stdio it was
    given, so waiting for EOF on a pipe would hang. kw goes to Popen (env,
    cwd). A timeout kills it and raises."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdin = subprocess.PIPE if input is not None else subprocess.DEVNULL
        p = subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err, **kw)
        try:
            p.communicate(input.encode() if input is not None else None, timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise
        out.seek(0)
        err.seek(0)
        r = subprocess.CompletedProcess(argv, p.returncode, out.read().decode(errors="replace"),
                                        err.read().decode(errors="replace"))
    if check and r.returncode != 0:
        raise AssertionError(f"{argv} failed ({r.returncode}): {r.stderr}")
    return r


class Husk:
    def __init__(self, root, bundle):
        self.root = root
        self.bundle = bundle

    def new_id(self):
        return f"t{os.getpid()}-{next(_ids)}"

    def cmd(self, *args, input=None, timeout=60, check=False, global_args=(), **kw):
        return run_captured([HUSK, "--root", self.root, *global_args, *args], input=input, timeout=timeout,
                            check=check, **kw)

    def run(self, *extra, cid=None, write=True, **kw):
        """husk run of the bundle in the foreground; returns CompletedProcess."""
        if write:
            self.bundle.write()
        return self.cmd("run", "--bundle", self.bundle.path, *extra, cid or self.new_id(), **kw)

    def create(self, cid=None, *extra, write=True, check=True, **kw):
        if write:
            self.bundle.write()
        cid = cid or self.new_id()
        r = self.cmd("create", "--bundle", self.bundle.path, *extra, cid, check=check, **kw)
        return cid if check else r

    def state(self, cid):
        r = self.cmd("state", cid, check=True)
        return json.loads(r.stdout)

    def delete_all(self):
        r = self.cmd("list", "-q")
        for cid in r.stdout.split():
            self.cmd("delete", "--force", cid)


@pytest.fixture
def bundle(tmp_path, rootfs_template):
    return Bundle(tmp_path / "bundle", rootfs_template)


@pytest.fixture
def husk(tmp_path, bundle):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    before = mount_points()
    root = tempfile.mkdtemp(prefix="husk-test-root-", dir="/run")
    h = Husk(root, bundle)
    yield h
    h.delete_all()
    leftover = os.listdir(root)
    shutil.rmtree(root, ignore_errors=True)
    procs = kill_stray_children()
    cgroups = [c for c in os.listdir(os.path.join(CGROUP2, "husk"))] if os.path.isdir(os.path.join(CGROUP2, "husk")) else []
    cgroups = [c for c in cgroups if c.startswith(f"t{os.getpid()}-")]
    for c in cgroups:
        try:
            os.rmdir(os.path.join(CGROUP2, "husk", c))
        except OSError:
            pass
    assert leftover == [], f"state directories left behind: {leftover}"
    assert procs == [], f"processes left behind: {procs}"
    assert cgroups == [], f"cgroups left behind: {cgroups}"
    assert mount_points() == before, "mounts leaked into the host mount namespace"


def wait_for(pred, timeout=10.0, interval=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()
