"""husk as the OCI runtime of real callers on a pure cgroup v2 kernel:
podman (with conmon) and containerd (ctr, through containerd-shim-runc-v2),
both from Debian's packages, with an image made here from the busybox rootfs."""
import json
import os
import shutil
import subprocess
import time

import pytest

from husktest import BUSYBOX, HUSK, ROOT

pytestmark = pytest.mark.skipif(not shutil.which("podman") or not shutil.which("containerd"),
                                reason="podman and containerd are installed by tools/install-deps")


def sh(*args, check=True, timeout=300, **kw):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} failed ({r.returncode}): {r.stdout}{r.stderr}")
    return r


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    d = tmp_path_factory.mktemp("callers")
    sh(os.path.join(ROOT, "tools", "make-demo-bundle"), BUSYBOX, d / "bundle")
    sh("tar", "-C", d / "bundle" / "rootfs", "-cf", d / "rootfs.tar", ".")
    return d


@pytest.fixture(scope="module")
def podman(work):
    base = ["podman", "--root", work / "storage", "--runroot", work / "run", "--tmpdir", work / "tmp",
            "--network-config-dir", work / "networks",
            "--runtime", HUSK, "--cgroup-manager", "cgroupfs", "--events-backend", "file",
            "--storage-driver", "vfs"]
    sh(*base, "import", work / "rootfs.tar", "localhost/husk-busybox:latest")
    yield base
    sh(*base, "rm", "--all", "--force", check=False)
    sh(*base, "rmi", "--all", "--force", check=False)


def test_podman_run_rm(podman):
    r = sh(*podman, "run", "--rm", "--network", "none", "localhost/husk-busybox", "sh", "-c", "echo hello; echo $$")
    assert r.stdout.split() == ["hello", "1"]
    assert sh(*podman, "ps", "-a", "-q").stdout.strip() == ""
    assert not os.listdir("/run/husk") if os.path.isdir("/run/husk") else True


def test_podman_limits_reach_the_cgroup(podman):
    r = sh(*podman, "run", "--rm", "--network", "none", "--memory", "64m", "--pids-limit", "50",
           "localhost/husk-busybox", "sh", "-c", "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max")
    assert r.stdout.split() == [str(64 << 20), "50"]


def test_podman_detach_exec_stop_rm(podman):
    cid = sh(*podman, "run", "-d", "--network", "none", "localhost/husk-busybox", "sleep", "1000").stdout.strip()
    info = json.loads(sh(*podman, "inspect", cid).stdout)[0]
    assert info["State"]["Status"] == "running"
    assert info["OCIRuntime"] == HUSK
    r = sh(*podman, "exec", cid, "sh", "-c", "echo in-$(hostname); exit 3", check=False)
    assert r.returncode == 3 and r.stdout.strip() == f"in-{cid[:12]}"
    r = sh(*podman, "exec", "-t", cid, "tty")
    assert "/dev/pts/" in r.stdout
    sh(*podman, "stop", "-t", "1", cid)
    info = json.loads(sh(*podman, "inspect", cid).stdout)[0]
    assert info["State"]["Status"] == "exited"
    sh(*podman, "rm", cid)
    assert cid not in sh(*podman, "ps", "-a", "-q", "--no-trunc").stdout


@pytest.fixture(scope="module")
def ctr(work, podman):
    sh(*podman, "save", "--format", "oci-archive", "-o", work / "image.tar", "localhost/husk-busybox:latest")
    sock = work / "ctrd.sock"
    (work / "containerd.toml").write_text(
        f'version = 2\nroot = "{work}/ctrd-root"\nstate = "{work}/ctrd-state"\n'
        f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "{sock}"\n')
    daemon = subprocess.Popen(["containerd", "--config", str(work / "containerd.toml")],
                              stdout=subprocess.DEVNULL, stderr=open(work / "containerd.log", "w"))
    base = ["ctr", "-a", str(sock)]
    for _ in range(300):
        if sock.exists() and sh(*base, "version", check=False).returncode == 0:
            break
        time.sleep(0.1)
    sh(*base, "images", "import", "--base-name", "localhost/husk-busybox", work / "image.tar")
    yield base
    sh(*base, "tasks", "kill", "-s", "KILL", "c2", check=False)
    sh(*base, "containers", "rm", "c2", check=False)
    daemon.terminate()
    daemon.wait(30)
    subprocess.run(["pkill", "-f", "containerd-shim-runc-v2"])


def test_ctr_run_rm(ctr):
    r = sh(*ctr, "run", "--runc-binary", HUSK, "--rm", "localhost/husk-busybox:latest", "c1",
           "sh", "-c", "echo hello-from-containerd; echo $$")
    assert r.stdout.split() == ["hello-from-containerd", "1"]


def test_ctr_detach_exec_kill(ctr):
    sh(*ctr, "run", "--runc-binary", HUSK, "-d", "localhost/husk-busybox:latest", "c2", "sleep", "1000")
    r = sh(*ctr, "tasks", "exec", "--exec-id", "e1", "c2", "sh", "-c", "echo exec-ok; exit 4", check=False)
    assert r.returncode == 4 and "exec-ok" in r.stdout
    sh(*ctr, "tasks", "kill", "-s", "KILL", "c2")
    for _ in range(100):
        if "STOPPED" in sh(*ctr, "tasks", "ls").stdout:
            break
        time.sleep(0.1)
    assert "STOPPED" in sh(*ctr, "tasks", "ls").stdout
    sh(*ctr, "tasks", "rm", "c2")
    sh(*ctr, "containers", "rm", "c2")
