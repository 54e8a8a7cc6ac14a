"""nomad-driver-husk run by an unprivileged user (rootlessfix.py)
with images of its rootless store: driver-probe (tests/driver) plays Nomad's
client toward the plugin as that user. A registry image (a real
docker-registry on loopback) and an oci-archive are pulled/imported through
a husk-image child into the user's store (layers owned by its sub-ids); the
task's root is an overlay that husk's init mounts in the container's user
namespace, mapped as the store is, so the image's owners are seen as the
image gives them and what the task writes lands in the task dir's upper
directory owned by the mapped ids. DestroyTask and a failed StartTask leave
no task dir (its sub-id files removed in the store's user namespace), no
mount and no process; the task's lease keeps the image from removal and GC
until then. Directory images run rootless on the same kind of overlay.
Rootless tasks run without cgroups on this host (no delegation), so the
tasks have no memory limit."""
import json
import os
import shutil
import subprocess
import time

import pytest

from driverprobe import Probe
from husktest import ROOT, mount_points
import imagebuild as ib
from imagebuild import d, dev, f
from registryfix import HUSK_IMAGE, Registry
from rootlessfix import RANGE, SETPRIV

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to add the test user and run the registry")

TASK_ID = "rootless-alloc/web/0000aaaa"
CID = "rootless-alloc-web-0000aaaa"

APP = [
    d("home", mode=0o755),
    d("home/app", mode=0o750, uid=1000, gid=1000),
    f("home/app/owned", b"app's\n", mode=0o640, uid=1000, gid=1001),
    f("home/app/top", b"top", mode=0o644, uid=RANGE, gid=RANGE),  # the store map's last id
    d("opt", mode=0o755),
    dev("opt/null", 1, 3),  # a rootless store cannot make it: a warning event
]

# What a user checks inside: the image's owners, who they are, and a write
# as root and as the image's uid 1000 (into its 0750 home: the copy-up
# leaves a directory of a sub-id in the upper dir the user cannot enter).
SCRIPT = ("stat -c '%u %g %a %n' /home/app /home/app/owned /home/app/top; id -u; cat /home/app/owned; "
          "echo by-root > /written; mkdir /home/app/sub; echo by-app > /home/app/sub/file; "
          "chown -R 1000:1000 /home/app/sub; chmod 700 /home/app/sub; echo done")


@pytest.fixture(scope="module")
def images(tmp_path_factory, rootfs_template):
    work = str(tmp_path_factory.mktemp("rootless-driver-registry"))
    reg = Registry(work)
    try:
        layout = os.path.join(work, "layout")
        reg.image = ib.make_layout(layout, [ib.tree_entries(str(rootfs_template)), APP], ref="v1",
                                   config={"Cmd": ["sh"], "Env": ["PATH=/bin"]})
        reg.layout = layout
        reg.push(type("L", (), {"path": layout})(), "v1", "test/rootless-driver")
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def base(rootless_base):
    return rootless_base


def user_env(base):
    xdg = os.path.join(base, "xdg")
    return {"HOME": base, "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "XDG_RUNTIME_DIR": xdg,
            "XDG_CONFIG_HOME": base}


def user_dir(user, path, mode=0o755):
    os.makedirs(path, exist_ok=True)
    os.chmod(path, mode)
    os.chown(path, user.uid, user.gid)


def as_user(user, argv, base, **kw):
    return subprocess.run([SETPRIV, f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups", *argv],
                          capture_output=True, text=True, timeout=120, env=user_env(base), **kw)


class RootlessProbe(Probe):
    """driver-probe run as the rootless user, the plugin as nomad-driver-podman."""

    def __init__(self, user, base, plugin_config, name="nomad-driver-podman"):
        self.user, self.base = user, base
        user_dir(user, os.path.join(base, "xdg"), 0o700)
        super().__init__(base, name=name, plugin_config=plugin_config, env=user_env(base), owner=(user.uid, user.gid),
                         run_as=[SETPRIV, f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups"])

    def start(self, task_id, config):
        # No memory limit: rootless tasks here have no cgroup to put it in.
        return super().start(task_id, config, memory_mb=0)

    def task_dir(self, cid=CID):
        return str(super().task_dir(cid))


def owner(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid


def user_processes(user):
    """pids whose real uid is the user's or one of its sub-ids."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as fh:
                uid = int(next(l for l in fh if l.startswith("Uid:")).split()[1])
        except (OSError, StopIteration):
            continue
        if uid == user.uid or user.start <= uid < user.start + RANGE:
            out.append(pid)
    return out


def wait_no_processes(user, timeout=10):
    deadline = time.time() + timeout
    while user_processes(user) and time.time() < deadline:
        time.sleep(0.1)
    return user_processes(user)


def check_task_inside(probe, user):
    r = probe.sh(TASK_ID, SCRIPT)
    assert r["exit_code"] == 0, r
    assert r["stdout"].splitlines() == [
        "1000 1000 750 /home/app", "1000 1001 640 /home/app/owned", f"{RANGE} {RANGE} 644 /home/app/top", "0",
        "app's", "done"], r
    # The writes are in the task dir's upper directory, owned by the mapped ids.
    upper = os.path.join(probe.task_dir(), "upper")
    sub = user.start - 1
    with open(os.path.join(upper, "written")) as fh:
        assert fh.read() == "by-root\n"
    assert owner(os.path.join(upper, "written")) == (user.uid, user.gid)
    assert owner(os.path.join(upper, "home/app")) == (sub + 1000, sub + 1000)
    assert owner(os.path.join(upper, "home/app/sub/file")) == (sub + 1000, sub + 1000)
    # The driver's user cannot remove that itself.
    r = as_user(user, ["rm", "-rf", os.path.join(upper, "home")], probe.base)
    assert r.returncode != 0 and os.path.exists(os.path.join(upper, "home/app/sub/file")), r.stderr


def check_nothing_left(probe, user, before, cid=CID):
    assert not os.path.exists(probe.task_dir(cid)), os.listdir(probe.task_dir(cid))
    assert os.listdir(os.path.join(probe.state, "tasks")) == []
    assert mount_points() == before
    containers = os.path.join(probe.state, "containers")
    assert [c for c in os.listdir(containers) if not c.startswith(".")] == []


def task_config(image, **extra):
    cfg = dict(image=image, auth={"tls_verify": False}, command="/bin/sh", args=["-c", "sleep 300"],
               network_mode="none")
    cfg.update(extra)
    return cfg


def test_rootless_driver_runs_a_registry_image_of_its_store(rootless_user, base, images):
    u = rootless_user
    store = os.path.join(base, "store")
    before = mount_points()
    ref = f"{images.host}/test/rootless-driver:v1"
    probe = RootlessProbe(u, base, {"image_store": store})
    try:
        r = probe.start(TASK_ID, task_config(ref))
        assert r["ok"], r
        # Pulled into the user's store: its map, the layers' owners its sub-ids.
        with open(os.path.join(store, "idmap")) as fh:
            assert fh.read() == (f"uid 0 {u.uid} 1\nuid 1 {u.start} {RANGE}\n"
                                 f"gid 0 {u.gid} 1\ngid 1 {u.start} {RANGE}\n")
        app = os.path.join(store, "layers", images.image["diff_ids"][1][7:])
        assert owner(os.path.join(app, "home/app")) == (u.start + 999, u.start + 999)
        events = probe.call(op="events", id=TASK_ID)["events"]
        assert any(e["message"].startswith(f"pulled {ref} (2 layers, 2 unpacked") for e in events), events
        # The child's warnings become task events.
        layer = images.image["diff_ids"][1]
        assert f"image: layer {layer}: 1 device node not made (a rootless store cannot make device nodes; " \
            "containers/storage skips them too): opt/null" in [e["message"] for e in events], events
        # The child's progress, as the root driver reports it.
        progress = [e for e in events if e["message"].startswith("Image pull progress: Pulled ")]
        assert progress and progress[0]["annotations"] == {"image": ref}, events
        # The driver mounted nothing on the host: husk's init did, in the container.
        assert mount_points() == before
        state = json.loads(as_user(u, [os.path.join(ROOT, "build", "src", "cli", "husk"), "--root",
                                       os.path.join(probe.state, "containers"), "state", CID], base).stdout)
        overlay = state["annotations"]["run.husk.rootfs.overlay"]
        assert overlay.startswith("lowerdir=" + os.path.join(store, "layers") + "/"), overlay
        assert f"upperdir={probe.task_dir()}/upper,workdir={probe.task_dir()}/work" in overlay, overlay
        check_task_inside(probe, u)
        # The task's lease: the image cannot be removed while it runs.
        with open(os.path.join(store, "leases", CID)) as fh:
            assert fh.read().strip() == images.image["config"][7:]
        r = as_user(u, [HUSK_IMAGE, "remove", "--root", store, ref], base)
        assert r.returncode != 0 and f"is in use by task {CID}" in r.stderr, r.stderr
        r = as_user(u, [HUSK_IMAGE, "prune", "--root", store, "--unused-for", "0"], base)
        assert r.returncode == 0 and "removed 0 images, 0 layers" in r.stdout, r.stdout + r.stderr

        r = probe.stop(TASK_ID)
        assert r["ok"], r
        check_nothing_left(probe, u, before)
        assert not os.path.exists(os.path.join(store, "leases", CID))
        # A second task takes the image from the store without pulling.
        r = probe.start(TASK_ID, task_config(ref))
        assert r["ok"], r
        events = probe.call(op="events", id=TASK_ID)["events"]
        assert any(e["message"] == f"image {ref} is in the store" for e in events), events
        assert probe.stop(TASK_ID)["ok"]
        check_nothing_left(probe, u, before)
    finally:
        probe.close()
    assert wait_no_processes(u) == []
    # Unleased now: removed, and GC takes its layers (in the store's namespace).
    r = as_user(u, [HUSK_IMAGE, "remove", "--root", store, ref], base)
    assert r.returncode == 0, r.stderr
    r = as_user(u, [HUSK_IMAGE, "prune", "--root", store, "--unused-for", "0"], base)
    assert r.returncode == 0 and "2 layers" in r.stdout, r.stdout + r.stderr
    assert os.listdir(os.path.join(store, "layers")) == []


def test_rootless_driver_imports_an_archive_and_cleans_up_a_failed_start(rootless_user, base, images):
    u = rootless_user
    store = os.path.join(base, "store")
    before = mount_points()
    probe = RootlessProbe(u, base, {"image_store": store})
    try:
        archive = os.path.join(probe.alloc, "web", "local", "image.tar")
        os.makedirs(os.path.dirname(archive))
        subprocess.run(["skopeo", "copy", "--quiet", f"oci:{images.layout}:v1", f"oci-archive:{archive}"], check=True,
                       capture_output=True, timeout=120)
        for dirpath, _, files in os.walk(os.path.join(probe.alloc, "web")):
            for n in [dirpath] + [os.path.join(dirpath, x) for x in files]:
                os.chown(n, u.uid, u.gid)
        image = f"oci-archive:{archive}"
        r = probe.start(TASK_ID, task_config(image))
        assert r["ok"], r
        events = [e["message"] for e in probe.call(op="events", id=TASK_ID)["events"]]
        assert any(m.startswith("image: layer ") and m.endswith(": opt/null") for m in events), events
        check_task_inside(probe, u)
        assert probe.stop(TASK_ID)["ok"]
        check_nothing_left(probe, u, before)

        # A StartTask that fails after the task dir has files of sub-ids
        # (an init that writes as uid 1000, then fails its command)
        # leaves nothing either.
        r = probe.start(TASK_ID, task_config(
            image, args=["-c", "mkdir -p /home/app/x && chown 1000 /home/app/x && chmod 700 /home/app/x; exit 3"]))
        # Quick exits count as started; either way the dir goes at destroy.
        if r["ok"]:
            assert probe.stop(TASK_ID)["ok"]
        check_nothing_left(probe, u, before)

        r = probe.start(TASK_ID, task_config(image, command="/nonexistent", args=[]))
        assert not r["ok"] and "/nonexistent" in r["error"], r
        check_nothing_left(probe, u, before)

        # A user namespace mode that needs maps of its own: the field is named.
        r = probe.start(TASK_ID, task_config(image, userns="keep-id"))
        assert not r["ok"], r
        assert 'config.userns: "keep-id": a rootless driver runs an image of its store in a user namespace' in \
            r["error"], r
        check_nothing_left(probe, u, before)

        # A pull error names the field, as the root driver's does.
        r = probe.start(TASK_ID, task_config(f"{images.host}/test/no-such-image:v1"))
        assert not r["ok"], r
        assert r["error"].startswith(f'config.image: "{images.host}/test/no-such-image:v1": pull '), r
        check_nothing_left(probe, u, before)
    finally:
        probe.close()
    assert wait_no_processes(u) == []


def test_rootless_driver_runs_a_directory_image(rootless_user, base, rootfs_template):
    u = rootless_user
    before = mount_points()
    probe = RootlessProbe(u, base, {"image_store": os.path.join(base, "store")})
    try:
        image = os.path.join(probe.alloc, "web", "local", "rootfs")
        shutil.copytree(str(rootfs_template), image, symlinks=True)
        subprocess.run(["chown", "-R", "-h", f"{u.uid}:{u.gid}", os.path.join(probe.alloc, "web")], check=True)
        r = probe.start(TASK_ID, task_config(image))
        assert r["ok"], r
        r = probe.sh(TASK_ID, "stat -c '%u' /bin/busybox; id -u; echo hi > /written; cat /written")
        assert r["stdout"].splitlines() == ["0", "0", "hi"], r
        # The write is the task's: in its upper dir, not in the image.
        assert os.path.isfile(os.path.join(probe.task_dir(), "upper", "written"))
        assert not os.path.exists(os.path.join(image, "written"))
        assert mount_points() == before
        assert probe.stop(TASK_ID)["ok"]
        check_nothing_left(probe, u, before)
        assert os.path.isfile(os.path.join(image, "bin", "busybox")), "the image is kept"
    finally:
        probe.close()
    assert wait_no_processes(u) == []


def test_rootless_docker_flavor_runs_a_registry_image_of_its_store(rootless_user, base, images):
    """The docker flavor's tasks too: its pull progress events, the image's owners, the cleanup."""
    u = rootless_user
    store = os.path.join(base, "store")
    before = mount_points()
    ref = f"{images.host}/test/rootless-driver:v1"
    probe = RootlessProbe(u, base, {"image_store": store}, name="nomad-driver-docker")
    try:
        cfg = dict(image=ref, command="/bin/sh", args=["-c", "sleep 300"], network_mode="none")
        r = probe.start(TASK_ID, cfg)
        assert r["ok"], r
        events = probe.call(op="events", id=TASK_ID)["events"]
        assert any(e["message"].startswith("Docker image pull progress: Pulled ") for e in events), events
        check_task_inside(probe, u)
        assert probe.stop(TASK_ID)["ok"]
        check_nothing_left(probe, u, before)
    finally:
        probe.close()
    assert wait_no_processes(u) == []


def test_rootless_driver_image_gc_removes_unused_images_in_the_stores_namespace(rootless_user, base, images):
    """The docker flavor's gc.image (once a minute) as husk-image prune: an
    image no task holds goes, with its layers of sub-id files, which the
    plugin's user could not remove itself."""
    u = rootless_user
    store = os.path.join(base, "store")
    before = mount_points()
    ref = f"{images.host}/test/rootless-driver:v1"
    started = time.time()
    probe = RootlessProbe(u, base, {"image_store": store, "gc": {"image": True, "image_delay": "1s"}},
                          name="nomad-driver-docker")
    try:
        r = probe.start(TASK_ID, dict(image=ref, command="/bin/sh", args=["-c", "sleep 300"], network_mode="none"))
        assert r["ok"], r
        assert probe.stop(TASK_ID)["ok"]
        check_nothing_left(probe, u, before)
        layers = os.path.join(store, "layers")
        assert len(os.listdir(layers)) == 2
        deadline = started + 100
        while (os.listdir(os.path.join(store, "images")) or os.listdir(layers)) and time.time() < deadline:
            time.sleep(1)
        assert os.listdir(os.path.join(store, "images")) == [] and os.listdir(layers) == [], \
            "gc.image did not remove the unused image within its first rounds"
    finally:
        probe.close()
    assert wait_no_processes(u) == []


def test_rootless_nspawn_image_download_is_a_clear_error(rootless_user, base, images):
    """A machine image holds files of many owners: downloading one (here a
    docker image of the registry) needs a driver run as root, as
    nomad-driver-nspawn does; StartTask says so and leaves nothing."""
    u = rootless_user
    before = mount_points()
    store = os.path.join(base, "store")
    probe = RootlessProbe(u, base, {"image_store": store}, name="nomad-driver-nspawn")
    try:
        ref = f"{images.host}/test/rootless-driver:v1"
        r = probe.start(TASK_ID, {"image": "web", "image_download": {"url": ref, "type": "docker"},
                                  "command": ["/bin/sh", "-c", "sleep 300"]})
        assert not r["ok"], r
        assert "config.image_download: a driver that does not run as root cannot download a machine image " \
            '(type "docker")' in r["error"], r
        assert os.listdir(os.path.join(probe.state, "tasks")) == []
        assert not os.path.exists(store) or os.listdir(os.path.join(store, "layers")) == []
        assert mount_points() == before
    finally:
        probe.close()
    assert wait_no_processes(u) == []
