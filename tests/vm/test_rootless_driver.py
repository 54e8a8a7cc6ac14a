"""nomad-driver-husk run by an unprivileged uid on a pure cgroup v2 kernel
(the VM), in a cgroup subtree delegated to it the way systemd delegates
user@UID.service (tests/vm/test_rootless_cgroups.py does the same for husk
alone): the driver's tasks get their cgroups in the delegation, so a
rootless task has its memory limit, its stats come from its cgroup, a task
that outgrows the limit is reported OOM-killed, and StopTask leaves no
cgroup, task dir or process behind. The VM's root is read-only, so the uid
has no passwd entry and no sub-ids: the image is a directory it owns."""
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from driverprobe import PROBE, Probe
from husktest import mount_points, reap_orphans
from test_rootless_cgroups import CG, DELEGATED, RUNNER, SETPRIV, UID, _delegate, _remove_tree

pytestmark = [
    pytest.mark.skipif(not os.path.exists(os.path.join(CG, "cgroup.subtree_control")),
                       reason="needs a pure cgroup v2 host (run it in the VM: tools/vm or run-in-vm)"),
    pytest.mark.skipif(not os.path.exists(PROBE), reason="driver-probe not built"),
]

MB = 1 << 20


def uid_processes():
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/status") as fh:
                    if int(next(l for l in fh if l.startswith("Uid:")).split()[1]) == UID:
                        out.append(pid)
            except (OSError, StopIteration):
                pass
    return out


def task_cgroups():
    """The cgroups under the delegation that hold a process (the runner aside)."""
    out = []
    for d, _, files in os.walk(DELEGATED):
        if d != RUNNER and "cgroup.procs" in files and open(os.path.join(d, "cgroup.procs")).read().strip():
            out.append(d)
    return out


@pytest.fixture
def work(rootfs_template):
    if os.geteuid() != 0:
        pytest.skip("needs root to delegate a cgroup")
    _remove_tree(DELEGATED)
    _delegate(DELEGATED)
    _delegate(RUNNER)
    base = tempfile.mkdtemp(prefix="husk-vm-rootless-driver-", dir="/tmp")
    os.chmod(base, 0o755)
    os.chown(base, UID, UID)
    xdg = os.path.join(base, "xdg")
    os.mkdir(xdg, 0o700)
    os.chown(xdg, UID, UID)
    env = {"HOME": base, "XDG_RUNTIME_DIR": xdg, "XDG_CONFIG_HOME": base,
           "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
    # As root into the delegated leaf, then down to the uid: the driver and
    # every husk it spawns start there.
    run_as = ["sh", "-c", f'echo $$ > {RUNNER}/cgroup.procs && exec "$@"', "sh",
              SETPRIV, f"--reuid={UID}", f"--regid={UID}", "--clear-groups"]
    probe = Probe(base, plugin_config={"image_store": os.path.join(base, "store")}, run_as=run_as, env=env,
                  owner=(UID, UID))
    image = os.path.join(probe.alloc, "web", "local", "rootfs")
    shutil.copytree(str(rootfs_template), image, symlinks=True)
    subprocess.run(["chown", "-R", "-h", f"{UID}:{UID}", os.path.join(probe.alloc, "web")], check=True)
    probe.image = image
    before = mount_points()
    try:
        yield probe
    finally:
        probe.close()
        deadline = time.time() + 10
        while uid_processes() and time.time() < deadline:
            time.sleep(0.1)
        leftover = uid_processes()
        for pid in leftover:
            subprocess.run(["kill", "-9", pid], capture_output=True)
        reap_orphans()
        subprocess.run(["umount", "-R", "-l", base], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        _remove_tree(DELEGATED)
        assert leftover == [], "processes of the uid outlived the test"
        assert mount_points() == before


def config(image, *script):
    return dict(image=image, command="/bin/sh", args=["-c", *script], network_mode="none")


def test_rootless_task_gets_its_limit_stats_and_oom_in_the_delegated_cgroup(work):
    probe = work
    r = probe.start("rl/web/0001", config(probe.image, "sleep 300"), memory_mb=48)
    assert r["ok"], r
    cgroups = task_cgroups()
    assert len(cgroups) == 1, cgroups
    cg = cgroups[0]
    assert cg.startswith(DELEGATED + "/"), cg
    with open(os.path.join(cg, "memory.max")) as fh:
        assert int(fh.read()) == 48 * MB
    # The task sees its own cgroup (a cgroup namespace) and the limit.
    r = probe.sh("rl/web/0001", "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max; id -u")
    assert r["stdout"].splitlines() == ["0::/", str(48 * MB), "0"], r
    # Stats come from the cgroup.
    s = probe.call(op="stats", id="rl/web/0001")
    assert s["ok"], s
    assert s["memory"]["usage"] > 0 and s["memory"]["rss"] > 0, s
    assert probe.stop("rl/web/0001")["ok"]
    assert task_cgroups() == []
    assert not os.path.exists(cg)
    assert os.listdir(probe.state / "tasks") == []

    # Over the limit: the kernel kills it in its cgroup and WaitTask says so.
    hog = "a=0123456789abcdef; while :; do a=$a$a; done"
    r = probe.start("rl/hog/0002", config(probe.image, hog), memory_mb=16)
    assert r["ok"], r
    w = probe.call(op="wait", id="rl/hog/0002", timeout=60)
    assert w["ok"] and w["oom_killed"], w
    assert w["signal"] == 9 or w["exit_code"] == 137, w
    assert probe.stop("rl/hog/0002")["ok"]
    assert task_cgroups() == []
    assert os.listdir(probe.state / "tasks") == []
