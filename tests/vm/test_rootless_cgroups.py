"""Rootless cgroups through cgroupfs on a pure cgroup v2 kernel (the VM).

As root, the test delegates /sys/fs/cgroup/user-test to an unprivileged uid
the way systemd delegates user@UID.service: the directory, its cgroup.procs,
cgroup.subtree_control and cgroup.threads are chowned to the user, and the
user's processes run in a leaf below it (user-test/runner). husk, run as that
uid, must then put each container in user-test/husk/<id> with its limits;
without a delegation it runs the container without a cgroup and warns once,
and a limit is an error naming the field.

The VM's root filesystem is the host's, read-only: no user can be added, so
the uid has no passwd entry and maps only itself (the single-id map)."""
import json
import os
import shutil
import tempfile
import time

import pytest

from husktest import BASE_CONFIG, HUSK, reap_orphans, run_captured, wait_for

UID = 4321
CG = "/sys/fs/cgroup"
DELEGATED = os.path.join(CG, "user-test")
RUNNER = os.path.join(DELEGATED, "runner")
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(CG, "cgroup.subtree_control")),
                                reason="needs a pure cgroup v2 host (run it in the VM: tools/vm or run-in-vm)")


def _delegate(path):
    os.mkdir(path)
    for f in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
        os.chown(os.path.join(path, f) if f else path, UID, UID)


def _remove_tree(path):
    if not os.path.isdir(path):
        return
    for d, dirs, _ in os.walk(path, topdown=False):
        for sub in dirs:
            try:
                os.rmdir(os.path.join(d, sub))
            except OSError:
                pass
    os.rmdir(path)


class UserHusk:
    def __init__(self, base, template):
        self.base = base
        self.xdg = os.path.join(base, "xdg")
        os.mkdir(self.xdg, 0o700)
        os.chown(self.xdg, UID, UID)
        self.bundle = os.path.join(base, "bundle")
        os.mkdir(self.bundle, 0o755)
        shutil.copytree(template, os.path.join(self.bundle, "rootfs"), symlinks=True)
        for d, dirs, files in os.walk(self.bundle):
            os.lchown(d, UID, UID)
            for n in dirs + files:
                os.lchown(os.path.join(d, n), UID, UID)
        cfg = json.loads(json.dumps(BASE_CONFIG))
        cfg["linux"]["namespaces"].append({"type": "user"})
        cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": UID, "size": 1}]
        cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": UID, "size": 1}]
        self.config = cfg
        self.cgroup = None  # run husk in this cgroup (moved there as root, before dropping to the uid)
        self._n = 0

    def new_id(self):
        self._n += 1
        return f"vmrl{os.getpid()}-{self._n}"

    def write(self):
        p = os.path.join(self.bundle, "config.json")
        with open(p, "w") as f:
            json.dump(self.config, f)
        os.chown(p, UID, UID)

    def cmd(self, *args, timeout=120):
        husk = [SETPRIV, f"--reuid={UID}", f"--regid={UID}", "--clear-groups", HUSK, *args]
        if self.cgroup:
            husk = ["sh", "-c", f'echo $$ > {self.cgroup}/cgroup.procs && exec "$@"', "sh", *husk]
        env = {"XDG_RUNTIME_DIR": self.xdg, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.base}
        return run_captured(husk, timeout=timeout, env=env, cwd=self.base)

    def run(self, *args, cid=None):
        self.write()
        return self.cmd("run", "--bundle", self.bundle, *args, cid or self.new_id())

    def delete_all(self):
        for cid in self.cmd("list", "-q").stdout.split():
            self.cmd("delete", "--force", cid)


@pytest.fixture
def uh(rootfs_template):
    if os.geteuid() != 0:
        pytest.skip("needs root to delegate a cgroup")
    base = tempfile.mkdtemp(prefix="husk-vm-rootless-", dir="/tmp")
    os.chmod(base, 0o755)
    h = UserHusk(base, rootfs_template)
    yield h
    h.delete_all()
    reap_orphans()
    _remove_tree(DELEGATED)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def delegated(uh):
    _remove_tree(DELEGATED)
    _delegate(DELEGATED)
    _delegate(RUNNER)
    uh.cgroup = RUNNER
    return uh


def test_a_delegated_subtree_gets_the_containers_cgroup_and_limits(delegated):
    uh = delegated
    uh.config["process"]["args"] = ["sleep", "1000"]
    uh.config["linux"]["resources"] = {"memory": {"limit": 32 << 20}, "pids": {"limit": 20}}
    cid = uh.new_id()
    r = uh.run("--detach", cid=cid)
    assert r.returncode == 0, r.stderr
    assert "running without a cgroup" not in r.stderr
    cg = os.path.join(DELEGATED, "husk", cid)
    assert os.path.isdir(cg)
    assert open(os.path.join(cg, "memory.max")).read().strip() == str(32 << 20)
    assert open(os.path.join(cg, "pids.max")).read().strip() == "20"
    pid = json.loads(uh.cmd("state", cid).stdout)["pid"]
    assert open(os.path.join(cg, "cgroup.procs")).read().split() == [str(pid)]
    # The cgroup makes pause, ps and kill --all work rootless.
    assert uh.cmd("pause", cid).returncode == 0
    assert json.loads(uh.cmd("state", cid).stdout)["status"] == "paused"
    assert uh.cmd("resume", cid).returncode == 0
    assert str(pid) in uh.cmd("ps", cid).stdout
    assert uh.cmd("kill", "--all", cid, "KILL").returncode == 0
    assert wait_for(lambda: json.loads(uh.cmd("state", cid).stdout)["status"] == "stopped")
    assert uh.cmd("delete", cid).returncode == 0
    assert not os.path.exists(cg)


def test_the_limit_holds_in_the_delegated_cgroup(delegated):
    uh = delegated
    uh.config["linux"]["resources"] = {"pids": {"limit": 5}}
    uh.config["process"]["args"] = ["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do sleep 5 & done 2>&1; wait"]
    r = uh.run()
    assert "Resource temporarily unavailable" in r.stdout + r.stderr or "can't fork" in r.stdout + r.stderr, r


def test_a_cgroups_path_inside_the_delegation_is_used(delegated):
    uh = delegated
    uh.config["linux"]["cgroupsPath"] = "/user-test/mine"
    uh.config["process"]["args"] = ["cat", "/proc/self/cgroup"]
    r = uh.run()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0::/"  # its own cgroup namespace, rooted at /user-test/mine


def test_without_a_delegation_it_runs_without_a_cgroup_and_a_limit_is_an_error(uh):
    uh.config["process"]["args"] = ["true"]
    r = uh.run()
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("rootless: running without a cgroup") == 1, r.stderr
    assert "is delegated to uid 4321" in r.stderr
    uh.config["linux"]["resources"] = {"memory": {"limit": 32 << 20}}
    r = uh.run()
    assert r.returncode != 0
    assert "linux.resources.memory.limit: a rootless container has no cgroup to apply this limit to" in r.stderr
    assert uh.cmd("list", "-q").stdout.split() == []
