"""The nspawn flavor's private_users and private_users_ownership, checked
inside running tasks through driver-probe (plugin name nomad-driver-nspawn)
and on the host's disk, as a systemd-nspawn user would check them: the
task's /proc/self/uid_map, who owns files inside, whether the image changed
on disk, and Nomad's task dirs writable by the task's root."""
import os
import shutil
import subprocess

import pytest

from husktest import HUSK, mount_points
from test_driver_fields import DEMO_ROOTFS, Probe

# Inside: the map, owners of the root and a file, a directory made in /.
def inside(made="made-here"):
    return ("cat /proc/self/uid_map; stat -c 'root=%u:%g' /; stat -c 'busybox=%u:%g' /bin/busybox;"
            f" mkdir /{made} && stat -c 'made=%u' /{made}")


def task(image, **extra):
    config = {"image": image, "boot": False, "network_veth": False,
              "command": ["/bin/sh", "-c", "exec sleep 1000"]}
    config.update(extra)
    return config


def idmap_ok(path):
    return subprocess.run([HUSK, "check-idmap", path], capture_output=True).returncode == 0


def start(probe, task_id, config, **extra):
    r = probe.start(task_id, config, **extra)
    assert r["ok"], r


def uid_map(out):
    first = out.splitlines()[0].split()
    return int(first[0]), int(first[1]), int(first[2])


@pytest.fixture
def images(tmp_path):
    # On the VM's own tmpfs, which takes idmapped mounts.
    out = []
    for name in ("image-a", "image-b"):
        d = tmp_path / name
        shutil.copytree(DEMO_ROOTFS, d, symlinks=True)
        out.append(str(d))
    return out


def test_pick_maps_the_image_into_a_free_range_without_changing_it(tmp_path, images):
    before = mount_points()
    probe = Probe(tmp_path, name="nomad-driver-nspawn")
    try:
        a, _ = images
        start(probe, "one", task(a), name="web")
        out = probe.sh("one", inside())["stdout"]
        inner, base, count = uid_map(out)
        assert inner == 0 and count == 65536 and base >= 0x80000 and base % 0x10000 == 0, out
        # The image's root-owned files are the task's root's; / is writable by it.
        assert "root=0:0" in out and "busybox=0:0" in out and "made=0" in out, out
        if idmap_ok(a):
            # map (auto where the file system takes idmapped mounts): nothing on disk
            # changed, and what the task wrote is owned by the ids it wrote them as (0).
            assert os.stat(a).st_uid == 0 and os.stat(os.path.join(a, "bin", "busybox")).st_uid == 0
            assert os.stat(os.path.join(a, "made-here")).st_uid == 0
        else:
            # auto falls back to chown: the image is in the range on disk.
            assert os.stat(a).st_uid == base and os.stat(os.path.join(a, "made-here")).st_uid == base
        # The same machine name again while the first runs: its range is taken, the next free one is used.
        start(probe, "two", task(a), name="web")
        other = uid_map(probe.sh("two", "cat /proc/self/uid_map")["stdout"])[1]
        assert other != base and other % 0x10000 == 0, (base, other)
        assert probe.stop("two")["ok"] and probe.stop("one")["ok"]
    finally:
        probe.close()
    assert mount_points() == before


def test_chown_shifts_the_image_once_and_pick_reuses_its_range(tmp_path, images):
    before = mount_points()
    probe = Probe(tmp_path, name="nomad-driver-nspawn")
    try:
        _, b = images
        os.chmod(os.path.join(b, "bin", "busybox"), 0o4755)  # setuid survives the shift
        start(probe, "c", task(b, private_users_ownership="chown"), name="db")
        out = probe.sh("c", inside())["stdout"]
        base = uid_map(out)[1]
        assert "root=0:0" in out and "busybox=0:0" in out and "made=0" in out, out
        st = os.stat(os.path.join(b, "bin", "busybox"))
        assert os.stat(b).st_uid == base and st.st_uid == base and st.st_gid == base, (base, st)
        assert st.st_mode & 0o4000, oct(st.st_mode)
        assert probe.stop("c")["ok"]
        # Another machine name, pick: the image's own range is free again, so it is used as it is.
        start(probe, "d", task(b), name="other")
        assert uid_map(probe.sh("d", "cat /proc/self/uid_map")["stdout"])[1] == base
        assert probe.stop("d")["ok"]
        # chown would change the image every ephemeral task shares: an error naming the field, nothing left.
        # (on the image not shifted yet: b is in its range, so it needs no chown)
        a = images[0]
        bad = probe.start("e", task(a, ephemeral=True, private_users_ownership="chown"), name="db")
        assert not bad["ok"] and "config.private_users_ownership" in bad["error"], bad
        # ephemeral with auto on an image in another range: an idmapped lower layer (an error
        # naming the field where the file system takes none); writes go to the task's layer.
        if not idmap_ok(a):
            bad = probe.start("f", task(a, ephemeral=True), name="db")
            assert not bad["ok"] and "config.private_users_ownership" in bad["error"], bad
        else:
            start(probe, "f", task(a, ephemeral=True), name="db")
            out = probe.sh("f", inside("made-here-too"))["stdout"]
            assert "busybox=0:0" in out and "made=0" in out, out
            assert not os.path.exists(os.path.join(a, "made-here-too"))
            assert probe.stop("f")["ok"]
        assert [c for c in os.listdir(probe.state / "containers") if not c.startswith(".")] == []
        assert os.listdir(probe.state / "tasks") == []
    finally:
        probe.close()
    assert mount_points() == before
