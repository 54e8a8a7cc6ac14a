"""A root filesystem's ownership for a user namespace's id range, the two
ways the nspawn flavor's private_users_ownership offers: chown (the tree's
ids shifted on disk by common/idshift, driven here by build/tests/idshift-tool:
setuid bits, file capabilities, symlinks, device nodes, hardlinks and ACLs,
re-shifted from the recorded range, shifted back to 0) and map (husk's
run.husk.rootfs.idmap annotation: the rootfs as an idmapped mount, nothing
changed on disk; a filesystem without idmapped mounts is a clear error)."""
import os
import shutil
import stat
import struct
import subprocess

import pytest
from husktest import HUSK, ROOT, mount_points

TOOL = os.path.join(ROOT, "build", "tests", "idshift-tool")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

CAP_V2_NET_RAW = struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)  # effective, permitted cap_net_raw
BASE, OTHER = 0x80000, 0x2A0000


def acl(user, group):
    """A system.posix_acl_access value: owner, a named user, group, a named group, mask, other (the
    kernel's order)."""
    e = [(0x01, 6, 0xFFFFFFFF), (0x02, 6, user), (0x04, 4, 0xFFFFFFFF), (0x08, 4, group), (0x10, 6, 0xFFFFFFFF),
         (0x20, 4, 0xFFFFFFFF)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *x) for x in e)


def acl_ids(value):
    return [struct.unpack_from("<HHI", value, 4 + 8 * i)[2] for i in range((len(value) - 4) // 8)
            if struct.unpack_from("<HHI", value, 4 + 8 * i)[0] in (0x02, 0x08)]


def make_tree(d):
    d.mkdir()
    (d / "bin").mkdir()
    (d / "bin" / "su").write_bytes(b"su")
    os.chmod(d / "bin" / "su", 0o4755)
    (d / "bin" / "wall").write_bytes(b"wall")
    os.chown(d / "bin" / "wall", 0, 5)
    os.chmod(d / "bin" / "wall", 0o2755)
    (d / "bin" / "ping").write_bytes(b"ping")
    os.setxattr(d / "bin" / "ping", "security.capability", CAP_V2_NET_RAW)
    os.symlink("su", d / "bin" / "sudo")
    os.mknod(d / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.link(d / "bin" / "su", d / "su-again")
    (d / "home").mkdir()
    (d / "home" / "app").mkdir()
    os.chown(d / "home" / "app", 1000, 1000)
    (d / "shared").write_text("x")
    os.chown(d / "shared", 1000, 100)
    os.setxattr(d / "shared", "system.posix_acl_access", acl(1001, 50))
    os.chown(d, 0, 0)


# path -> (uid, gid) offsets in the range
OWNERS = {"": (0, 0), "bin": (0, 0), "bin/su": (0, 0), "bin/wall": (0, 5), "bin/ping": (0, 0), "bin/sudo": (0, 0),
          "null": (0, 0), "su-again": (0, 0), "home": (0, 0), "home/app": (1000, 1000), "shared": (1000, 100)}


def shift(d, base):
    r = subprocess.run([TOOL, str(d), str(base)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return dict(kv.split("=") for kv in r.stdout.split())


def check_tree(d, base):
    for path, (u, g) in OWNERS.items():
        st = os.lstat(d / path if path else d)
        assert (st.st_uid, st.st_gid) == (base + u, base + g), (path, st.st_uid, st.st_gid)
    assert stat.S_IMODE(os.lstat(d / "bin" / "su").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(d / "bin" / "wall").st_mode) == 0o2755
    assert os.getxattr(d / "bin" / "ping", "security.capability") == CAP_V2_NET_RAW
    assert stat.S_ISLNK(os.lstat(d / "bin" / "sudo").st_mode) and os.readlink(d / "bin" / "sudo") == "su"
    assert os.lstat(d / "null").st_rdev == os.makedev(1, 3) and stat.S_ISCHR(os.lstat(d / "null").st_mode)
    assert os.lstat(d / "su-again").st_ino == os.lstat(d / "bin" / "su").st_ino
    assert acl_ids(os.getxattr(d / "shared", "system.posix_acl_access")) == [base + 1001, base + 50]


@needs_root
@pytest.mark.skipif(not os.path.exists(TOOL), reason="idshift-tool not built")
def test_chown_shift_moves_every_inode_keeps_special_bits_and_reshifts_from_the_recorded_range(tmp_path):
    d = tmp_path / "image"
    make_tree(d)
    r = shift(d, BASE)
    assert r["from"] == "0" and r["changed"] == str(len(OWNERS) - 1)  # the hardlink is one inode
    check_tree(d, BASE)
    # Again to the same range: the root says it is there, nothing is touched.
    assert shift(d, BASE)["changed"] == "0"
    # To another range: from BASE (not 0 + OTHER + BASE), every offset kept.
    assert shift(d, OTHER)["from"] == str(BASE)
    check_tree(d, OTHER)
    # And back to the host's range 0.
    shift(d, 0)
    check_tree(d, 0)


@needs_root
@pytest.mark.skipif(not os.path.exists(TOOL), reason="idshift-tool not built")
def test_chown_shift_refuses_a_root_that_names_no_range(tmp_path):
    d = tmp_path / "image"
    make_tree(d)
    os.chown(d, 1000, 1000)
    r = subprocess.run([TOOL, str(d), str(BASE)], capture_output=True, text=True)
    assert r.returncode == 1
    assert str(d) in r.stderr and "1000:1000" in r.stderr
    assert os.lstat(d / "bin" / "su").st_uid == 0  # nothing changed


@pytest.fixture
def ramfs(tmp_path):
    """A ramfs: a filesystem without idmapped mount support on any kernel."""
    d = tmp_path / "ramfs"
    d.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "ramfs", str(d)], check=True)
    yield d
    subprocess.run(["umount", str(d)], check=True)


@needs_root
def test_check_idmap_says_yes_on_this_filesystem_and_no_on_ramfs(tmp_path, ramfs):
    before = mount_points()
    r = subprocess.run([HUSK, "check-idmap", str(tmp_path)], capture_output=True, text=True)
    assert (r.returncode, r.stdout.strip()) == (0, "yes"), r.stderr
    r = subprocess.run([HUSK, "check-idmap", str(ramfs)], capture_output=True, text=True)
    assert (r.returncode, r.stdout.strip()) == (1, "no"), r.stderr
    assert mount_points() == before


def mapped_bundle(bundle, idmap):
    d = os.path.dirname(bundle.rootfs)
    while d != "/":  # the mapped root traverses pytest's 0700 directories
        os.chmod(d, os.stat(d).st_mode | 0o111)
        d = os.path.dirname(d)
    bundle.config["linux"]["namespaces"].append({"type": "user"})
    bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": BASE, "size": 65536}]
    bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": BASE, "size": 65536}]
    if idmap:
        bundle.config["annotations"] = {"run.husk.rootfs.idmap": "true"}
    bundle.set_args("sh", "-c", "cat /proc/self/uid_map; stat -c %u:%g / /bin/busybox; echo hi >/made-inside; "
                    "stat -c %u:%g /made-inside")


def test_idmapped_rootfs_is_owned_by_the_containers_root_and_disk_is_unchanged(husk, bundle):
    mapped_bundle(bundle, idmap=True)
    r = husk.run()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0].split() == ["0", str(BASE), "65536"]
    assert lines[1:4] == ["0:0", "0:0", "0:0"]
    # On disk: the image's own ids, and what the container's root wrote is owned by 0.
    for p in ("", "bin/busybox", "made-inside"):
        st = os.lstat(os.path.join(bundle.rootfs, p))
        assert (st.st_uid, st.st_gid) == (0, 0), p


def test_without_the_idmap_the_same_rootfs_is_nobodys(husk, bundle):
    mapped_bundle(bundle, idmap=False)
    bundle.set_args("stat", "-c", "%u:%g", "/bin/busybox")
    r = husk.run()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "65534:65534"


def test_idmapped_rootfs_on_a_filesystem_without_idmap_is_a_clear_error(husk, bundle, ramfs):
    root = ramfs / "rootfs"
    shutil.copytree(bundle.rootfs, root, symlinks=True)
    mapped_bundle(bundle, idmap=True)
    bundle.config["root"]["path"] = str(root)
    r = husk.run()
    assert r.returncode != 0
    assert "run.husk.rootfs.idmap" in r.stderr and "does not support idmapped mounts" in r.stderr, r.stderr
    assert husk.cmd("list", "-q").stdout.split() == []


def test_idmapped_rootfs_needs_a_new_user_namespace(husk, bundle):
    bundle.config["annotations"] = {"run.husk.rootfs.idmap": "true"}
    r = husk.run()
    assert r.returncode != 0
    assert "annotations.run.husk.rootfs.idmap" in r.stderr and "user namespace" in r.stderr, r.stderr


def test_a_container_with_its_own_user_and_cgroup_namespace_owns_its_cgroup(husk, bundle):
    mapped_bundle(bundle, idmap=True)
    bundle.config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                    "options": ["nosuid", "noexec", "nodev"]})
    bundle.set_args("stat", "-c", "%u:%g", "/sys/fs/cgroup", "/sys/fs/cgroup/cgroup.procs",
                    "/sys/fs/cgroup/cgroup.subtree_control")
    r = husk.run()
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0:0", "0:0", "0:0"]


@needs_root
def test_mount_idmapped_makes_an_overlay_lower_layer_in_the_range(tmp_path):
    # overlayfs itself cannot be idmapped (check-idmap says no), but it takes an
    # idmapped lower layer: what the nspawn flavor's overlay roots use.
    lower, idm, upper, work, merged = (tmp_path / n for n in ("lower", "idmapped", "upper", "work", "merged"))
    for d in (lower, idm, upper, work, merged):
        d.mkdir()
    (lower / "f").write_text("x")
    os.chown(lower / "f", 1000, 1000)
    before = mount_points()
    opts = f"lowerdir={idm},upperdir={upper},workdir={work}"
    try:
        r = subprocess.run([HUSK, "mount-idmapped", str(lower), str(idm), str(BASE), "65536"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert os.lstat(idm / "f").st_uid == BASE + 1000
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], check=True)
        assert os.lstat(merged / "f").st_uid == BASE + 1000
        r = subprocess.run([HUSK, "check-idmap", str(merged)], capture_output=True, text=True)
        assert (r.returncode, r.stdout.strip()) == (1, "no"), r.stderr
    finally:
        subprocess.run(["umount", str(merged)])
        subprocess.run(["umount", str(idm)])
    assert mount_points() == before
    assert os.lstat(lower / "f").st_uid == 1000  # nothing changed on disk
    r = subprocess.run([HUSK, "mount-idmapped", str(lower), str(idm), "x", "65536"], capture_output=True, text=True)
    assert r.returncode != 0 and "is not a base and a count" in r.stderr
