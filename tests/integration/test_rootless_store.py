"""The image store of an unprivileged user: `husk-image pull` as the test
user of rootlessfix.py from a real docker-registry on loopback,
into a store under a test directory. The layers are unpacked in a user
namespace mapped 0 -> the user, 1..65536 -> its /etc/subuid range, so an
image's uid 1000 is subuid_start+999 on disk; whiteouts and opaque
directories are the rootless overlay's (0:0 devices, user.overlay.opaque);
device nodes are skipped with a warning naming them. The store records its
map and is refused to a caller with another; without a range or without
newuidmap the pull fails with the reason and leaves no store. A rootless
container runs on an overlay of the store's layers that husk mounts inside
its user namespace (annotation run.husk.rootfs.overlay): it sees the
image's owners, its writes go to the upper directory, and no mount is
left behind."""
import json
import os
import shutil
import stat
import subprocess

import pytest

from husktest import BASE_CONFIG, HUSK, mount_points
import imagebuild as ib
from imagebuild import d, dev, f, hard, sym
from registryfix import HUSK_IMAGE, Registry
from rootlessfix import RANGE, SETPRIV

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to add the test user and run the registry")


class _Layout:
    def __init__(self, path):
        self.path = path


LOWER = [
    d("home", mode=0o755),
    d("home/app", mode=0o750, uid=1000, gid=1000),
    f("home/app/owned", b"app's", mode=0o640, uid=1000, gid=1001),
    f("home/app/top", b"top", mode=0o644, uid=RANGE, gid=RANGE),  # the map's last id
    f("suid", b"#!/bin/sh\n", mode=0o4755),
    f("xattrs", b"", mode=0o644, pax_headers={"SCHILY.xattr.user.husk": "kept",
                                              "SCHILY.xattr.trusted.husk": "dropped"}),
    d("devs"),
    dev("devs/null", 1, 3),
    dev("devs/loop", 7, 0, char=False),
    hard("devs/null-link", "devs/null"),
    (dict(name="devs/fifo", type=ib.tarfile.FIFOTYPE, mode=0o640), None),
    f("lower-only", b"gone above"),
    d("opaque"),
    f("opaque/old", b"hidden above"),
    sym("link", "home/app/owned", uid=1000, gid=1000),
]
UPPER = [
    f(".wh.lower-only"),
    d("opaque"),
    f("opaque/.wh..wh..opq"),
    f("opaque/new", b"new", uid=1000, gid=1000),
]


@pytest.fixture(scope="module")
def registry(tmp_path_factory, rootfs_template):
    work = str(tmp_path_factory.mktemp("rootless-registry"))
    reg = Registry(work)
    try:
        layout = os.path.join(work, "layout")
        reg.image = ib.make_layout(layout, [ib.tree_entries(str(rootfs_template)) + LOWER, UPPER], ref="v1")
        reg.push(_Layout(layout), "v1", "test/rootless")
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def base(rootless_base):
    return rootless_base


def as_user(uid, gid, argv, env, groups=True):
    ids = [f"--reuid={uid}", f"--regid={gid}", "--init-groups" if groups else "--clear-groups"]
    return subprocess.run([SETPRIV, *ids, *argv], capture_output=True, text=True, timeout=120, env=env)


def user_env(base, path="/usr/local/bin:/usr/bin:/bin"):
    return {"HOME": base, "PATH": path, "XDG_RUNTIME_DIR": base, "XDG_CONFIG_HOME": base}


def image_cmd(user, base, *args, path="/usr/local/bin:/usr/bin:/bin"):
    return as_user(user.uid, user.gid, [HUSK_IMAGE, *args], user_env(base, path))


def pull(user, base, registry, store, **kw):
    return image_cmd(user, base, "pull", "--root", store, "--tls-verify=false", "--quiet",
                     f"{registry.host}/test/rootless:v1", **kw)


def owner(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def test_rootless_pull_keeps_owners_as_the_users_subids(rootless_user, base, registry):
    u = rootless_user
    store = os.path.join(base, "store")
    r = pull(u, base, registry, store)
    assert r.returncode == 0, r.stderr
    lower = os.path.join(store, "layers", registry.image["diff_ids"][0][7:])
    upper = os.path.join(store, "layers", registry.image["diff_ids"][1][7:])
    # uid 0 is the user, uid N > 0 is subuid_start + N - 1.
    sub = u.start - 1
    assert owner(lower) == (u.uid, u.gid)
    assert owner(os.path.join(lower, "home/app")) == (sub + 1000, sub + 1000)
    assert stat.S_IMODE(os.lstat(os.path.join(lower, "home/app")).st_mode) == 0o750
    assert owner(os.path.join(lower, "home/app/owned")) == (sub + 1000, sub + 1001)
    assert stat.S_IMODE(os.lstat(os.path.join(lower, "home/app/owned")).st_mode) == 0o640
    assert owner(os.path.join(lower, "home/app/top")) == (sub + RANGE, sub + RANGE)
    assert owner(os.path.join(lower, "link")) == (sub + 1000, sub + 1000)
    st = os.lstat(os.path.join(lower, "suid"))
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (u.uid, 0o4755)
    assert owner(os.path.join(lower, "bin/busybox")) == (u.uid, u.gid)
    # xattrs: user.* kept, trusted.* dropped (a user namespace cannot set it).
    assert os.getxattr(os.path.join(lower, "xattrs"), "user.husk") == b"kept"
    assert "trusted.husk" not in os.listxattr(os.path.join(lower, "xattrs"))
    # Device nodes are not made, and the warning names them; a fifo is made.
    assert sorted(os.listdir(os.path.join(lower, "devs"))) == ["fifo"]
    assert stat.S_ISFIFO(os.lstat(os.path.join(lower, "devs/fifo")).st_mode)
    assert "warning" in r.stderr and "3 device nodes not made" in r.stderr, r.stderr
    for name in ("devs/null", "devs/loop", "devs/null-link"):
        assert name in r.stderr, r.stderr
    # The rootless overlay's whiteouts: a 0:0 character device, user.overlay.opaque.
    wst = os.lstat(os.path.join(upper, "lower-only"))
    assert stat.S_ISCHR(wst.st_mode) and wst.st_rdev == 0
    assert os.getxattr(os.path.join(upper, "opaque"), "user.overlay.opaque") == b"y"
    assert "trusted.overlay.opaque" not in os.listxattr(os.path.join(upper, "opaque"))
    assert owner(os.path.join(upper, "opaque/new")) == (sub + 1000, sub + 1000)
    # The store says which map its layers have.
    with open(os.path.join(store, "idmap")) as fh:
        assert fh.read() == (f"uid 0 {u.uid} 1\nuid 1 {u.start} {RANGE}\n"
                             f"gid 0 {u.gid} 1\ngid 1 {u.start} {RANGE}\n")
    # Listed and pulled again (the layers are reused) as the same user.
    r = image_cmd(u, base, "list", "--root", store)
    assert r.returncode == 0 and "test/rootless" in r.stdout, r.stderr
    r = pull(u, base, registry, store)
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr


def test_rootless_store_removes_its_layers_in_its_namespace(rootless_user, base, registry):
    u = rootless_user
    store = os.path.join(base, "store")
    assert pull(u, base, registry, store).returncode == 0
    r = image_cmd(u, base, "remove", "--root", store, f"{registry.host}/test/rootless:v1")
    assert r.returncode == 0, r.stderr
    # home/app is 0750 and owned by a sub-id: only the namespace's root may empty it.
    r = image_cmd(u, base, "prune", "--root", store, "--unused-for", "0")
    assert r.returncode == 0, r.stderr
    assert "2 layers" in r.stdout, r.stdout
    assert os.listdir(os.path.join(store, "layers")) == []


def test_rootless_store_is_not_used_with_another_map(rootless_user, base, registry):
    u = rootless_user
    store = os.path.join(base, "store")
    assert pull(u, base, registry, store).returncode == 0
    # root would write the host's ids into a store of mapped ones.
    r = subprocess.run([HUSK_IMAGE, "list", "--root", store], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "holds layers unpacked with the id map" in r.stderr and "not this user's none" in r.stderr, r.stderr
    # And a rootless user does not take a root store's layers, even handed over.
    root_store = os.path.join(base, "root-store")
    r = subprocess.run([HUSK_IMAGE, "pull", "--root", root_store, "--tls-verify=false", "--quiet",
                        f"{registry.host}/test/rootless:v1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    subprocess.run(["chown", "-R", f"{u.uid}:{u.gid}", root_store], check=True)
    r = image_cmd(u, base, "list", "--root", root_store)
    assert r.returncode != 0
    assert "id map none (the host's ids)" in r.stderr and f"uid 1 {u.start} {RANGE}" in r.stderr, r.stderr


def test_rootless_pull_without_a_subuid_range_fails_and_leaves_no_store(rootless_user, base, registry):
    # nobody has no range in /etc/subuid.
    store = os.path.join(base, "nobody", "store")
    os.mkdir(os.path.dirname(store))
    os.chown(os.path.dirname(store), 65534, 65534)
    r = as_user(65534, 65534, [HUSK_IMAGE, "pull", "--root", store, "--tls-verify=false",
                               f"{registry.host}/test/rootless:v1"], user_env(base), groups=False)
    assert r.returncode != 0
    assert "/etc/subuid" in r.stderr and "has no range there" in r.stderr, r.stderr
    assert not os.path.exists(store)


def test_rootless_pull_without_newuidmap_fails_and_leaves_no_store(rootless_user, base, registry):
    store = os.path.join(base, "store")
    r = pull(rootless_user, base, registry, store, path="/usr/sbin")
    assert r.returncode != 0
    assert "newuidmap, which is not in PATH" in r.stderr and "uidmap" in r.stderr, r.stderr
    assert not os.path.exists(store)


def test_rootless_layer_with_an_id_outside_the_map_is_refused(rootless_user, base, registry, tmp_path):
    layout = str(tmp_path / "layout")
    ib.make_layout(layout, [[f("far", b"x", uid=RANGE + 1)]], ref="far")
    registry.push(_Layout(layout), "far", "test/far")
    store = os.path.join(base, "store")
    r = image_cmd(rootless_user, base, "pull", "--root", store, "--tls-verify=false",
                  f"{registry.host}/test/far:far")
    assert r.returncode != 0
    assert f'entry "far": uid {RANGE + 1} is outside the store\'s id mapping' in r.stderr, r.stderr
    layers = os.path.join(store, "layers")
    assert os.listdir(layers) == [], "a partial layer was left"



def test_rootless_layer_with_a_wrong_diff_id_is_refused_and_nothing_is_kept(rootless_user, base, registry, tmp_path):
    layout = str(tmp_path / "layout")
    wrong = "sha256:" + "0" * 64
    ib.make_layout(layout, [[d("dir", uid=5), f("dir/file", b"x", uid=5)]], ref="wrong", diff_ids=[wrong])
    registry.push(_Layout(layout), "wrong", "test/wrong")
    store = os.path.join(base, "store")
    r = image_cmd(rootless_user, base, "pull", "--root", store, "--tls-verify=false",
                  f"{registry.host}/test/wrong:wrong")
    assert r.returncode != 0
    assert "the image config's diff_id is " + wrong in r.stderr, r.stderr
    assert os.listdir(os.path.join(store, "layers")) == [], "the unverified layer was kept"


def test_rootless_prune_removes_a_dead_unpackers_mapped_files(rootless_user, base, registry):
    u = rootless_user
    store = os.path.join(base, "store")
    assert pull(u, base, registry, store).returncode == 0
    # What an unpacker killed mid-layer leaves: a temp dir with files of sub-ids.
    tmp = os.path.join(store, "layers", ".tmp-" + "a" * 64 + "-99999")
    os.makedirs(os.path.join(tmp, "sub"))
    with open(os.path.join(tmp, "sub", "file"), "w") as fh:
        fh.write("partial")
    for p in (os.path.join(tmp, "sub", "file"), os.path.join(tmp, "sub")):
        os.lchown(p, u.start + 4, u.start + 4)
    os.chmod(os.path.join(tmp, "sub"), 0o755)
    os.lchown(tmp, u.uid, u.gid)
    r = image_cmd(u, base, "prune", "--root", store, "--unused-for", "1h")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(tmp)
    assert len(os.listdir(os.path.join(store, "layers"))) == 2, "the image's layers stay"


def test_remove_dir_removes_sub_id_files_in_the_store_namespace(rootless_user, base):
    """husk-image remove-dir: what a rootless task leaves in its upper dir
    (files and 0700 dirs of the user's sub-ids) goes, which plain rm -rf as
    the user cannot do; a relative path is refused."""
    u = rootless_user
    task = os.path.join(base, "task")
    os.makedirs(os.path.join(task, "upper", "home", "app", "deep"))
    with open(os.path.join(task, "upper", "home", "app", "deep", "file"), "w") as fh:
        fh.write("written by uid 1000\n")
    for p in (os.path.join(task, "upper", "home", "app", "deep", "file"), os.path.join(task, "upper", "home", "app", "deep"),
              os.path.join(task, "upper", "home", "app")):
        os.lchown(p, u.start + 999, u.start + 999)
    os.chmod(os.path.join(task, "upper", "home", "app"), 0o700)
    for p in (task, os.path.join(task, "upper"), os.path.join(task, "upper", "home")):
        os.lchown(p, u.uid, u.gid)
    r = as_user(u.uid, u.gid, ["rm", "-rf", task], user_env(base))
    assert r.returncode != 0 and os.path.exists(task)
    r = image_cmd(u, base, "remove-dir", "relative/dir")
    assert r.returncode != 0 and '"relative/dir" is not an absolute path' in r.stderr, r.stderr
    r = image_cmd(u, base, "remove-dir", task)
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(task)
    # Missing is fine (a task dir removed already).
    assert image_cmd(u, base, "remove-dir", task).returncode == 0


def rootless_bundle(user, bundle, root, annotations, args, process_user=None):
    cfg = json.loads(json.dumps(BASE_CONFIG))
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": user.uid, "size": 1},
                                   {"containerID": 1, "hostID": user.start, "size": RANGE}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": user.gid, "size": 1},
                                   {"containerID": 1, "hostID": user.start, "size": RANGE}]
    cfg["root"] = {"path": root, "readonly": False}
    cfg["annotations"] = annotations
    cfg["process"]["args"] = args
    if process_user:
        cfg["process"]["user"] = process_user
    os.makedirs(bundle, exist_ok=True)
    with open(os.path.join(bundle, "config.json"), "w") as fh:
        json.dump(cfg, fh)
    for p in (bundle, os.path.join(bundle, "config.json")):
        os.chown(p, user.uid, user.gid)


def user_dirs(user, *paths):
    for p in paths:
        os.makedirs(p)
        os.chown(p, user.uid, user.gid)


# /dev/fuse is root's alone on this host (0600; Debian's udev makes it
# 0666): the fuse-overlayfs runs get a 0666 node of the same device bound
# over it, in a mount namespace of their own that goes with them.
FUSE_DEV = ('mount -t tmpfs -o mode=0755 husk-test-dev "$0" && mknod -m 0666 "$0/fuse" c 10 229 '
            '&& mount --bind "$0/fuse" /dev/fuse && exec "$@"')


def run_rootless(user, base, bundle, cid, fuse_dev=False):
    xdg = os.path.join(base, "xdg")
    if not os.path.isdir(xdg):
        user_dirs(user, xdg)
        os.chmod(xdg, 0o700)
    env = dict(user_env(base), XDG_RUNTIME_DIR=xdg)
    argv = [HUSK, "run", "--bundle", bundle, cid]
    if fuse_dev:
        ids = [f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups"]
        dev = os.path.join(base, "fuse-dev")  # a mount point in the private namespace only
        os.makedirs(dev, exist_ok=True)
        r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", FUSE_DEV, dev, SETPRIV, *ids,
                            *argv], capture_output=True, text=True, timeout=120, env=env)
    else:
        r = as_user(user.uid, user.gid, argv, env)
    return r, os.path.join(xdg, "husk")


def fuse_overlayfs_processes():
    return subprocess.run(["pgrep", "-a", "fuse-overlayfs"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("mount", ["native", "fuse-overlayfs"])
def test_rootless_container_runs_on_an_overlay_of_the_store_layers(rootless_user, base, registry, mount):
    """The same root through the kernel's overlayfs and through
    fuse-overlayfs (what husk runs where the kernel will not mount
    overlayfs in a user namespace, before Linux 5.11)."""
    if mount == "fuse-overlayfs" and not shutil.which("fuse-overlayfs"):
        pytest.skip("fuse-overlayfs is not installed")
    u = rootless_user
    store = os.path.join(base, "store")
    assert pull(u, base, registry, store).returncode == 0
    layers = [os.path.join(store, "layers", x[7:]) for x in reversed(registry.image["diff_ids"])]
    task = os.path.join(base, "task")
    upper, work, root = (os.path.join(task, n) for n in ("upper", "work", "rootfs"))
    user_dirs(u, task, upper, work, root)
    bundle = os.path.join(base, "bundle")
    script = ("stat -c '%u %g %a %n' /home/app /home/app/owned /home/app/top /suid /opaque/new; ls /opaque; "
              "test -e /lower-only || echo whiteout-applied; echo written > /home/app/written; "
              "rm /home/app/owned; id -u; sed -n 's|^[^ ]* [^ ]* [^ ]* [^ ]* / .* - \\([^ ]*\\) .*|\\1|p' /proc/self/mountinfo")
    rootless_bundle(u, bundle, root, {"run.husk.rootfs.overlay": f"lowerdir={':'.join(layers)},upperdir={upper},"
                                      f"workdir={work}", "run.husk.rootfs.overlay.mount": mount},
                    ["sh", "-c", script], {"uid": 1000, "gid": 1000})
    before = mount_points()
    r, state = run_rootless(u, base, bundle, "rootless-overlay", fuse_dev=mount == "fuse-overlayfs")
    assert r.returncode == 0, r.stderr
    # The root the container got: the kernel's overlayfs or a FUSE mount.
    assert r.stdout.splitlines()[-1] == ("overlay" if mount == "native" else "fuse.fuse-overlayfs"), r.stdout
    # The image's own owners inside, through the container's map.
    assert r.stdout.splitlines()[:-1] == [
        "1000 1000 750 /home/app", "1000 1001 640 /home/app/owned", f"{RANGE} {RANGE} 644 /home/app/top",
        "0 0 4755 /suid", "1000 1000 644 /opaque/new", "new", "whiteout-applied", "1000"], r.stdout
    assert fuse_overlayfs_processes() == "", "the server went with the container"
    # Writes went to the upper directory (as the mapped ids), the layers are as pulled.
    sub = u.start - 1
    with open(os.path.join(upper, "home/app/written")) as fh:
        assert fh.read() == "written\n"
    assert owner(os.path.join(upper, "home/app/written")) == (sub + 1000, sub + 1000)
    wst = os.lstat(os.path.join(upper, "home/app/owned"))
    assert stat.S_ISCHR(wst.st_mode) and wst.st_rdev == 0, "the removal is a whiteout in the upper dir"
    assert not os.path.exists(os.path.join(layers[-1], "home/app/written"))
    assert os.path.isfile(os.path.join(layers[-1], "home/app/owned"))
    # The overlay was the container's alone, and nothing of it is left.
    assert mount_points() == before
    assert not os.path.isdir(state) or os.listdir(state) == []
    assert os.listdir(root) == []


def test_rootless_overlay_annotation_is_checked_before_anything_runs(rootless_user, base):
    u = rootless_user
    root = os.path.join(base, "rootfs")
    user_dirs(u, root)
    bundle = os.path.join(base, "bundle")
    for value, why in [("lowerdir=relative", 'lowerdir "relative" is not an absolute path'),
                       (f"lowerdir={root},upperdir={base}", "upperdir and workdir go together"),
                       (f"upperdir={base},workdir={base}", "no lowerdir"),
                       (f"lowerdir={root},index=on", 'unknown option "index"')]:
        rootless_bundle(u, bundle, root, {"run.husk.rootfs.overlay": value}, ["true"])
        r, state = run_rootless(u, base, bundle, "rootless-bad-overlay")
        assert r.returncode != 0
        assert "annotations.run.husk.rootfs.overlay: " + why in r.stderr, (value, r.stderr)
        assert not os.path.isdir(state) or os.listdir(state) == []
    for annotations, why in [
            ({"run.husk.rootfs.overlay": f"lowerdir={root}", "run.husk.rootfs.overlay.mount": "fuse"},
             'annotations.run.husk.rootfs.overlay.mount: "fuse" is not auto, native or fuse-overlayfs'),
            ({"run.husk.rootfs.overlay.mount": "native"},
             "annotations.run.husk.rootfs.overlay.mount: says how to mount run.husk.rootfs.overlay, which the bundle "
             "does not set")]:
        rootless_bundle(u, bundle, root, annotations, ["true"])
        r, state = run_rootless(u, base, bundle, "rootless-bad-overlay")
        assert r.returncode != 0 and why in r.stderr, r.stderr
        assert not os.path.isdir(state) or os.listdir(state) == []


def test_rootless_overlay_the_kernel_refuses_falls_back_to_fuse_overlayfs(rootless_user, base, rootfs_template):
    """overlayfs stacks at most 500 lower directories: the kernel refuses
    more with EINVAL, as kernels before 5.11 refuse any overlay in a user
    namespace. By default husk then mounts the root with fuse-overlayfs and
    says why; asked for "native", the refusal is the error, naming the way
    out."""
    if not shutil.which("fuse-overlayfs"):
        pytest.skip("fuse-overlayfs is not installed")
    u = rootless_user
    layers = []
    for i in range(501):
        layer = os.path.join(base, "layers", str(i))
        os.makedirs(layer)
        layers.append(layer)
    shutil.copytree(str(rootfs_template), layers[-1], symlinks=True, dirs_exist_ok=True)
    with open(os.path.join(layers[0], "top"), "w") as fh:
        fh.write("from the top layer\n")
    subprocess.run(["chown", "-R", f"{u.uid}:{u.gid}", os.path.join(base, "layers")], check=True)
    task = os.path.join(base, "task")
    upper, work, root = (os.path.join(task, n) for n in ("upper", "work", "rootfs"))
    user_dirs(u, task, upper, work, root)
    bundle = os.path.join(base, "bundle")
    overlay = f"lowerdir={':'.join(layers)},upperdir={upper},workdir={work}"
    script = "cat /top; echo new > /new; sed -n 's|^[^ ]* [^ ]* [^ ]* [^ ]* / .* - \\([^ ]*\\) .*|\\1|p' /proc/self/mountinfo"
    before = mount_points()
    rootless_bundle(u, bundle, root, {"run.husk.rootfs.overlay": overlay}, ["sh", "-c", script])
    r, state = run_rootless(u, base, bundle, "rootless-fallback", fuse_dev=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["from the top layer", "fuse.fuse-overlayfs"], r.stdout
    assert "husk: warning: this kernel refused overlayfs in the container's user namespace (" in r.stderr, r.stderr
    assert "its root is mounted with fuse-overlayfs" in r.stderr
    with open(os.path.join(upper, "new")) as fh:
        assert fh.read() == "new\n"
    assert fuse_overlayfs_processes() == ""
    assert mount_points() == before
    assert not os.path.isdir(state) or os.listdir(state) == []

    rootless_bundle(u, bundle, root, {"run.husk.rootfs.overlay": overlay, "run.husk.rootfs.overlay.mount": "native"},
                    ["true"])
    r, state = run_rootless(u, base, bundle, "rootless-native", fuse_dev=True)
    assert r.returncode != 0
    assert "annotations.run.husk.rootfs.overlay: mount the container's root on " + root in r.stderr, r.stderr
    assert 'annotation run.husk.rootfs.overlay.mount = "fuse-overlayfs" mounts it with fuse-overlayfs' in r.stderr
    assert not os.path.isdir(state) or os.listdir(state) == []
