"""nomad-driver-husk running tasks from an image of the store, end to end:
the Nomad harness's short and long tasks (start, wait, logs, signals, stop,
recover after a restart) with `image = "oci-archive:..."`, a two-layer image
built from the demo rootfs. The plugin imports it into the store
(HUSK_IMAGE_STORE), mounts the multi-layer overlay, leases the image per
task and releases it on destroy."""
import os
import re
import subprocess

import pytest

import imagebuild as ib
from husktest import ROOT, mount_points
from test_nomad_driver import DEMO_ROOTFS, HARNESS, PLUGIN, run_harness


@pytest.mark.skipif(not os.path.exists(HARNESS), reason="nomad-harness not built (tools/run-tests builds it)")
def test_harness_tasks_run_from_an_oci_archive_through_the_store(tmp_path, monkeypatch):
    layout = tmp_path / "layout"
    ib.make_layout(str(layout), [ib.tree_entries(DEMO_ROOTFS), [ib.f("etc/motd", b"top layer\n")]], ref="1")
    archive = tmp_path / "busybox.tar"
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", f"oci:{layout}:1", f"oci-archive:{archive}:1"],
                   check=True, timeout=300)
    store = tmp_path / "store"
    monkeypatch.setenv("HUSK_IMAGE_STORE", str(store))
    plugin = tmp_path / "nomad-driver-husk"
    os.symlink(PLUGIN, plugin)
    tasks = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nomad")
    before = mount_points()
    # The scenarios that start tasks, and the ones they need before them.
    scenarios = "handshake|plugin-info|config-schema|set-config|start-wait-short|logs-fifo|lifecycle-long|recover-after-restart"
    rc, out = run_harness(tmp_path, str(plugin), f"oci-archive:{archive}",
                          "-short-task", os.path.join(tasks, "short-task.hcl"),
                          "-long-task", os.path.join(tasks, "long-task.hcl"), "-run", scenarios)
    summary = re.findall(r"^(\d+) passed, (\d+) failed", out, re.M)
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert rc == 0 and summary and summary[-1][1] == "0", "\n".join(failed) + "\n" + out[-4000:]
    assert mount_points() == before
    # One image, both layers unpacked once, every task's lease released.
    assert len(os.listdir(store / "images")) == 1
    assert len([n for n in os.listdir(store / "layers") if not n.startswith(".")]) == 2
    assert os.listdir(store / "leases") == []


@pytest.mark.skipif(not os.path.exists(HARNESS), reason="nomad-harness not built (tools/run-tests builds it)")
def test_harness_tasks_run_from_a_registry_image(tmp_path, monkeypatch):
    """A registry on loopback (docker-registry, plain HTTP), the image pushed
    there with skopeo; the plugin pulls it into the store at the first
    StartTask (the task's auth block says tls_verify = false), and later
    tasks use the stored image."""
    from registryfix import Registry
    layout = tmp_path / "layout"
    ib.make_layout(str(layout), [ib.tree_entries(DEMO_ROOTFS), [ib.f("etc/motd", b"from the registry\n")]], ref="1")
    reg = Registry(str(tmp_path / "registry"))
    try:
        subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:1",
                        f"docker://{reg.host}/test/busybox:1"], check=True, timeout=300,
                       env=dict(os.environ, TMPDIR=str(tmp_path)))
        store = tmp_path / "store"
        monkeypatch.setenv("HUSK_IMAGE_STORE", str(store))
        plugin = tmp_path / "nomad-driver-husk"
        os.symlink(PLUGIN, plugin)
        tasks = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nomad")
        configs = {}
        for name in ("short-task", "long-task"):
            text = open(os.path.join(tasks, name + ".hcl")).read()
            configs[name] = tmp_path / (name + ".hcl")
            configs[name].write_text(text + "\nauth {\n  tls_verify = false\n}\n")
        scenarios = "handshake|plugin-info|config-schema|set-config|start-wait-short|logs-fifo|lifecycle-long"
        before = mount_points()
        rc, out = run_harness(tmp_path, str(plugin), f"{reg.host}/test/busybox:1",
                              "-short-task", str(configs["short-task"]), "-long-task", str(configs["long-task"]),
                              "-run", scenarios)
        summary = re.findall(r"^(\d+) passed, (\d+) failed", out, re.M)
        failed = [line for line in out.splitlines() if line.startswith("FAIL")]
        assert rc == 0 and summary and summary[-1][1] == "0", "\n".join(failed) + "\n" + out[-4000:]
        assert mount_points() == before
        # Pulled once into the store, under its fully qualified name.
        records = os.listdir(store / "images")
        assert len(records) == 1
        assert f"{reg.host}/test/busybox:1" in (store / "images" / records[0]).read_text()
        assert os.listdir(store / "leases") == []
    finally:
        reg.stop()
