"""The image store through its test driver (build/tests/image-store-tool):
hostile layers refused with nothing written outside, metadata and whiteouts
kept (seen through a real overlay mount), corrupt blobs and wrong diff_ids
refused, concurrent commits unpacking each layer once, GC and leases, OCI
layout / oci-archive / docker-archive imports (skopeo makes the archives),
and a container run by husk on an overlay of an imported image."""
import json
import os
import shutil
import stat
import subprocess
import threading

import pytest

from husktest import ROOT, mount_points
import imagebuild as ib
from imagebuild import d, dev, f, hard, sym

TOOL = os.path.join(ROOT, "build", "tests", "image-store-tool")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (ownership, device nodes, overlay)")


def tool(*args, check=True):
    r = subprocess.run([TOOL, *map(str, args)], capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, f"{args}: {r.stderr}"
    return r


def kv(out):
    res = {}
    for line in out.splitlines():
        k, _, v = line.partition("=")
        res.setdefault(k, []).append(v)
    return {k: v[0] if len(v) == 1 else v for k, v in res.items()}


def tree(path):
    out = []
    for dp, dn, fn in os.walk(path):
        out += [os.path.relpath(os.path.join(dp, n), path) for n in dn + fn]
    return sorted(out)


@pytest.fixture
def mounts_clean():
    before = mount_points()
    yield
    assert mount_points() == before, "overlay mounts left behind"


def unpack_layer(tmp_path, entries, *extra):
    raw = ib.tar_bytes([(dict(e[0]), e[1]) for e in entries])
    blob = tmp_path / "layer.tar"
    blob.write_bytes(raw)
    dest = tmp_path / "jail" / "dest"
    dest.mkdir(parents=True)
    return tool("unpack", blob, dest, ib.sha(raw), *extra, check=False), dest


HOSTILE = {
    "dotdot": [f("../escaped", b"x")],
    "dotdot_inside": [d("a"), f("a/../../escaped", b"x")],
    "absolute": [f("/escaped", b"x")],
    "symlink_dir_escape": [sym("link", "../"), f("link/escaped", b"x")],
    "symlink_abs_escape": [sym("link", "/JAIL"), f("link/escaped", b"x")],
    "symlink_then_dir": [sym("etc", "../"), d("etc/sub")],
    "hardlink_dotdot": [hard("h", "../outside-file")],
    "hardlink_abs": [hard("h", "/JAIL/outside-file")],
    "hardlink_through_symlink": [sym("l", ".."), hard("h", "l/outside-file")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layer_is_refused_and_writes_nothing_outside(tmp_path, case):
    jail = tmp_path / "jail"
    jail.mkdir()
    (jail / "outside-file").write_text("host")
    entries = [(dict(e[0], **({"linkname": e[0]["linkname"].replace("/JAIL", str(jail))}
                                if "linkname" in e[0] else {})), e[1]) for e in HOSTILE[case]]
    r, dest = unpack_layer(tmp_path, entries)
    assert r.returncode != 0
    assert "entry" in r.stderr, r.stderr
    assert sorted(os.listdir(jail)) == ["dest", "outside-file"]
    assert (jail / "outside-file").read_text() == "host"
    assert os.stat(jail / "outside-file").st_nlink == 1
    assert not os.path.exists(tmp_path / "escaped")


def test_layer_metadata_devices_and_hardlinks_are_kept(tmp_path):
    r, dest = unpack_layer(tmp_path, [
        d("bin", mode=0o711, uid=7, gid=8),
        f("bin/suid", b"#!/bin/sh\n", mode=0o4755, uid=1234, gid=5678),
        hard("bin/suid-link", "bin/suid"),
        sym("bin/sh-link", "/bin/busybox", uid=3, gid=4),
        dev("null", 1, 3),
        dev("blk", 7, 0, char=False, mode=0o600),
        (dict(name="fifo", type=ib.tarfile.FIFOTYPE, mode=0o640), None),
        (dict(name="xattr-file", mode=0o600, pax_headers={"SCHILY.xattr.user.husk": "kept"}), b"data"),
        (dict(name="overlay-steer", mode=0o600, pax_headers={"SCHILY.xattr.trusted.overlay.redirect": "/x"}), b""),
    ])
    assert r.returncode == 0, r.stderr
    st = os.lstat(dest / "bin/suid")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o4755)
    assert st.st_mtime == 1_600_000_000
    assert st.st_nlink == 2 and os.lstat(dest / "bin/suid-link").st_ino == st.st_ino
    bst = os.lstat(dest / "bin")
    assert (bst.st_uid, bst.st_gid, stat.S_IMODE(bst.st_mode), bst.st_mtime) == (7, 8, 0o711, 1_600_000_000)
    lst = os.lstat(dest / "bin/sh-link")
    assert os.readlink(dest / "bin/sh-link") == "/bin/busybox" and (lst.st_uid, lst.st_gid) == (3, 4)
    nst = os.lstat(dest / "null")
    assert stat.S_ISCHR(nst.st_mode) and (os.major(nst.st_rdev), os.minor(nst.st_rdev)) == (1, 3)
    assert stat.S_IMODE(nst.st_mode) == 0o666
    assert stat.S_ISBLK(os.lstat(dest / "blk").st_mode)
    assert stat.S_ISFIFO(os.lstat(dest / "fifo").st_mode)
    assert os.getxattr(dest / "xattr-file", "user.husk") == b"kept"
    assert "trusted.overlay.redirect" not in os.listxattr(dest / "overlay-steer")


def test_rootless_id_mapping_shifts_ownership(tmp_path):
    r, dest = unpack_layer(tmp_path, [f("a", b"x", uid=0, gid=0), f("b", b"y", uid=1000, gid=100)],
                           "--shift", "100000")
    assert r.returncode == 0, r.stderr
    assert (os.lstat(dest / "a").st_uid, os.lstat(dest / "a").st_gid) == (100000, 100000)
    assert (os.lstat(dest / "b").st_uid, os.lstat(dest / "b").st_gid) == (101000, 100100)


def test_wrong_diff_id_is_refused(tmp_path):
    raw = ib.tar_bytes([f("a", b"x")])
    (tmp_path / "l.tar").write_bytes(raw)
    (tmp_path / "dest").mkdir()
    r = tool("unpack", tmp_path / "l.tar", tmp_path / "dest", ib.sha(b"other"), check=False)
    assert r.returncode != 0 and "diff_id" in r.stderr and ib.sha(raw) in r.stderr


def test_whiteouts_and_opaque_dirs_through_the_overlay(tmp_path, mounts_clean):
    layout = tmp_path / "layout"
    ib.make_layout(str(layout), [
        [d("a"), f("a/keep", b"k"), f("a/gone", b"g"), d("o"), f("o/old", b"old")],
        [d("a"), f("a/.wh.gone"), d("o"), f("o/.wh..wh..opq"), f("o/new", b"new")],
    ], compress="none")
    store = tmp_path / "store"
    out = kv(tool("import", store, f"oci:{layout}:latest", "img").stdout)
    assert out["layers"] == "2" and out["unpacked"] == "2"
    top = kv(tool("inspect", store, "img").stdout)["layer_dir"][0]
    assert stat.S_ISCHR(os.lstat(os.path.join(top, "a/gone")).st_mode)
    assert os.getxattr(os.path.join(top, "o"), "trusted.overlay.opaque") == b"y"
    mnt, upper, work = tmp_path / "mnt", tmp_path / "upper", tmp_path / "work"
    for p in (mnt, upper, work):
        p.mkdir()
    tool("mount", store, "img", mnt, upper, work)
    try:
        assert sorted(os.listdir(mnt / "a")) == ["keep"]
        assert sorted(os.listdir(mnt / "o")) == ["new"]
        (mnt / "a/written").write_text("task")
    finally:
        tool("umount", mnt)
    assert (upper / "a/written").read_text() == "task"


def test_corrupt_blob_is_refused_and_leaves_nothing_trusted(tmp_path):
    layout = tmp_path / "layout"
    img = ib.make_layout(str(layout), [[f("a", b"x" * 1000)]])
    p = layout / "blobs/sha256" / img["blobs"][0][7:]
    data = bytearray(p.read_bytes())
    data[-20] ^= 0xFF
    p.write_bytes(bytes(data))
    store = tmp_path / "store"
    r = tool("import", store, f"oci:{layout}", check=False)
    assert r.returncode != 0 and img["blobs"][0] in r.stderr
    assert os.listdir(store / "layers") == [] and os.listdir(store / "images") == []
    assert not (store / "blobs/sha256" / img["blobs"][0][7:]).exists()


def test_wrong_diff_id_in_config_is_refused_at_commit(tmp_path):
    layout = tmp_path / "layout"
    ib.make_layout(str(layout), [[f("a", b"x")]], diff_ids=[ib.sha(b"not the layer")])
    store = tmp_path / "store"
    r = tool("import", store, f"oci:{layout}", check=False)
    assert r.returncode != 0 and "diff_id" in r.stderr
    assert os.listdir(store / "layers") == [] and os.listdir(store / "images") == []


def copy_blobs(layout, store):
    dst = store / "blobs/sha256"
    dst.mkdir(parents=True, exist_ok=True)
    for n in os.listdir(layout / "blobs/sha256"):
        shutil.copy(layout / "blobs/sha256" / n, dst / n)


def test_concurrent_commits_unpack_each_layer_once(tmp_path):
    layout = tmp_path / "layout"
    many = [d("many")] + [f(f"many/{i}", b"z" * 64) for i in range(3000)]
    img = ib.make_layout(str(layout), [many, [f("top", b"t")]])
    store = tmp_path / "store"
    tool("gc", store, 0)  # creates the store
    copy_blobs(layout, store)
    procs = [subprocess.Popen([TOOL, "commit", store, f"img{i}", img["manifest"]], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    stats = [kv(o[0]) for o in outs]
    assert sum(int(s["unpacked"]) for s in stats) == 2
    assert sum(int(s["reused"]) for s in stats) == 2
    assert sorted(os.listdir(store / "layers")) == sorted(x[7:] for x in img["diff_ids"])
    assert len(os.listdir(store / "layers" / img["diff_ids"][0][7:] / "many")) == 3000


def test_gc_keeps_leased_images_and_removes_unused_ones(tmp_path):
    store = tmp_path / "store"
    shared = [f("shared", b"s")]
    imgs = {}
    for name in ("kept", "dropped"):
        layout = tmp_path / name
        imgs[name] = ib.make_layout(str(layout), [shared, [f(name, name.encode())]])
        tool("import", store, f"oci:{layout}", name)
    tool("lease", store, "task-1", "kept")
    r = tool("remove", store, "kept", check=False)
    assert r.returncode != 0 and "task-1" in r.stderr
    assert kv(tool("gc", store, 3600).stdout)["images"] == "0"  # both used just now
    out = kv(tool("gc", store, 0).stdout)
    assert out["images"] == "1" and out["layers"] == "1"
    assert tool("inspect", store, "kept").returncode == 0
    assert tool("inspect", store, "dropped", check=False).returncode != 0
    layers = set(os.listdir(store / "layers"))
    assert layers == {x[7:] for x in imgs["kept"]["diff_ids"]}
    blobs = set(os.listdir(store / "blobs/sha256"))
    assert imgs["dropped"]["manifest"][7:] not in blobs and imgs["kept"]["manifest"][7:] in blobs
    assert imgs["dropped"]["blobs"][1][7:] not in blobs
    tool("release", store, "task-1")
    assert kv(tool("gc", store, 0).stdout)["images"] == "1"
    assert os.listdir(store / "layers") == [] and os.listdir(store / "blobs/sha256") == []


def skopeo(*args):
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", *args], check=True, capture_output=True, timeout=120)


def test_oci_archive_and_docker_archive_import_the_same_image(tmp_path):
    layout = tmp_path / "layout"
    img = ib.make_layout(str(layout), [[f("etc/hello", b"hi\n")], [f("bin/x", b"x", mode=0o755)]], ref="v1",
                         config={"Entrypoint": ["/bin/x"], "Cmd": ["--flag"], "Env": ["A=1"]})
    skopeo(f"oci:{layout}:v1", f"oci-archive:{tmp_path}/img.tar:v1")
    skopeo(f"oci:{layout}:v1", f"docker-archive:{tmp_path}/docker.tar:example/app:v1")
    store = tmp_path / "store"
    oci = kv(tool("import", store, f"oci-archive:{tmp_path}/img.tar:v1").stdout)
    dock = kv(tool("import", store, f"docker-archive:{tmp_path}/docker.tar").stdout)
    again = kv(tool("import", store, f"docker-archive:{tmp_path}/docker.tar:example/app:v1", "tagged").stdout)
    assert oci["unpacked"] == "2" and dock["unpacked"] == "0" and dock["reused"] == "2"
    assert again["id"] == dock["id"]
    for name in (f"oci-archive:{tmp_path}/img.tar:v1", "tagged"):
        info = kv(tool("inspect", store, name).stdout)
        assert info["entrypoint"] == "/bin/x" and info["cmd"] == "--flag" and info["env"] == "A=1"
        top = info["layer_dir"][0]
        assert os.path.basename(top) == img["diff_ids"][1][7:]
    r = tool("import", store, f"oci-archive:{tmp_path}/img.tar:nope", check=False)
    assert r.returncode != 0 and '"nope"' in r.stderr and "v1" in r.stderr


def test_docker_archive_with_corrupt_layer_is_refused(tmp_path):
    layout = tmp_path / "layout"
    ib.make_layout(str(layout), [[f("a", b"a" * 4096)]])
    skopeo(f"oci:{layout}:latest", f"docker-archive:{tmp_path}/d.tar:x/y:z")
    data = bytearray((tmp_path / "d.tar").read_bytes())
    i = data.find(b"a" * 4096)
    data[i] = ord("b")
    (tmp_path / "d.tar").write_bytes(bytes(data))
    store = tmp_path / "store"
    r = tool("import", store, f"docker-archive:{tmp_path}/d.tar", check=False)
    assert r.returncode != 0 and ("diff_id" in r.stderr or "digest" in r.stderr), r.stderr
    assert os.listdir(store / "images") == [] and os.listdir(store / "layers") == []


def test_husk_runs_a_container_on_an_overlay_of_an_imported_image(husk, bundle, rootfs_template, tmp_path):
    layout = tmp_path / "layout"
    ib.make_layout(str(layout), [ib.tree_entries(str(rootfs_template)), [f("etc/motd", b"from the top layer\n")]])
    skopeo(f"oci:{layout}:latest", f"docker-archive:{tmp_path}/busybox.tar:husk/busybox:1")
    store = tmp_path / "store"
    tool("import", store, f"docker-archive:{tmp_path}/busybox.tar", "busybox")
    shutil.rmtree(bundle.rootfs)
    os.mkdir(bundle.rootfs)
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    tool("mount", store, "busybox", bundle.rootfs, upper, work)
    try:
        bundle.set_args("sh", "-c", "cat /etc/motd; echo task > /written; ls /bin/busybox")
        r = husk.run()
    finally:
        tool("umount", bundle.rootfs)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["from the top layer", "/bin/busybox"]
    assert (upper / "written").read_text() == "task\n"


def test_rootless_store_marks_opaque_dirs_with_user_xattrs(tmp_path):
    r, dest = unpack_layer(tmp_path, [d("o"), f("o/.wh..wh..opq")], "--userxattr")
    assert r.returncode == 0, r.stderr
    assert os.getxattr(dest / "o", "user.overlay.opaque") == b"y"
    assert "trusted.overlay.opaque" not in os.listxattr(dest / "o")


def test_overlay_of_more_layers_than_one_page_of_mount_data_holds(tmp_path, mounts_clean):
    # 48 lower directories of ~120 bytes each: past the 4 KiB a mount(2)
    # lowerdir= string may have; lowerdir+ takes them one at a time.
    layout = tmp_path / "layout"
    n = 48
    ib.make_layout(str(layout), [[f(f"layer{i}", str(i).encode()), f("top", str(i).encode())] for i in range(n)],
                   compress="none")
    store = tmp_path / "store"
    tool("import", store, f"oci:{layout}", "tall")
    dirs = kv(tool("inspect", store, "tall").stdout)["layer_dir"]
    assert len(dirs) == n and len(":".join(dirs)) > 4096
    mnt, upper, work = tmp_path / "mnt", tmp_path / "upper", tmp_path / "work"
    for p in (mnt, upper, work):
        p.mkdir()
    tool("mount", store, "tall", mnt, upper, work)
    try:
        assert (mnt / "layer0").read_text() == "0" and (mnt / f"layer{n - 1}").read_text() == str(n - 1)
        assert (mnt / "top").read_text() == str(n - 1)  # the topmost layer wins
    finally:
        tool("umount", mnt)
