"""StartTask pulling from a registry: the podman flavor's image fields
through the driver (auth, tls_verify, auth_soft_fail, force_pull,
image_pull_timeout) against Debian's docker-registry with htpasswd auth on
loopback, the image pushed there with skopeo, and the task events a pull
sends. driver-probe plays Nomad's client (tests/vm/test_driver_fields.py)."""
import json
import os
import subprocess
import time
import urllib.request

import pytest

import imagebuild as ib
from husktest import mount_points
from registryfix import Proxy, Registry
from test_driver_fields import PROBE, Probe
from test_nomad_driver import DEMO_ROOTFS

pytestmark = pytest.mark.skipif(not os.path.exists(PROBE), reason="driver-probe not built")


def push(tmp_path, reg, motd, tag):
    layout = tmp_path / ("layout-" + tag + "-" + str(abs(hash(motd))))
    ib.make_layout(str(layout), [ib.tree_entries(DEMO_ROOTFS), [ib.f("etc/motd", motd)]], ref="1")
    subprocess.run(["skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false", "--dest-creds=alice:s3cret",
                    f"oci:{layout}:1", f"docker://{reg.host}/test/app:{tag}"], check=True, timeout=300,
                   env=dict(os.environ, TMPDIR=str(tmp_path)))


def test_registry_image_fields_through_start_task(tmp_path, monkeypatch):
    work = tmp_path / "registry"
    work.mkdir()
    htpasswd = work / "htpasswd"
    subprocess.run(["htpasswd", "-Bbc", str(htpasswd), "alice", "s3cret"], check=True, capture_output=True)
    reg = Registry(str(work), auth=["htpasswd:", "  realm: husk-test", "  path: " + str(htpasswd)])
    monkeypatch.setenv("HUSK_IMAGE_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no auth files of the machine's
    before = mount_points()
    probe = None
    try:
        push(tmp_path, reg, b"one\n", "1")
        probe = Probe(tmp_path)
        creds = {"username": "alice", "password": "s3cret", "tls_verify": False}
        base = {"image": f"{reg.host}/test/app:1", "command": "/bin/sleep", "args": ["1000"], "network_mode": "none"}

        def motd(task_id, config):
            r = probe.start(task_id, config, name="web")
            assert r["ok"], r
            out = probe.sh(task_id, "cat /etc/motd", close=True, timeout=300)["stdout"]
            assert probe.stop(task_id)["ok"]
            return out.strip()

        # tls_verify (default true) against a plain-HTTP registry: refused, naming the field.
        r = probe.start("tls", {**base, "auth": {"username": "alice", "password": "s3cret"}}, name="web")
        assert not r["ok"] and "config.image" in r["error"], r
        # No credentials: the registry's refusal, naming the registry.
        r = probe.start("anon", {**base, "auth": {"tls_verify": False}}, name="web")
        assert not r["ok"] and "config.image" in r["error"] and reg.host in r["error"], r
        # Wrong password with auth_soft_fail: tried anonymously too, both refusals reported.
        r = probe.start("soft", {**base, "auth": {**creds, "password": "nope"}, "auth_soft_fail": True}, name="web")
        assert not r["ok"] and "without credentials" in r["error"], r
        # A pull that cannot finish within image_pull_timeout fails, naming the image.
        r = probe.start("slow", {**base, "auth": creds, "image_pull_timeout": "1ms"}, name="web")
        assert not r["ok"] and "config.image" in r["error"], r
        assert [c for c in os.listdir(probe.state / "tasks")] == []
        def events(task_id, last):
            # TaskEvents reach the probe on their own stream: wait for `last`.
            for _ in range(50):
                ev = probe.call(op="events", id=task_id)["events"]
                if any(e["message"].startswith(last) for e in ev):
                    return ev
                time.sleep(0.1)
            raise AssertionError("no event %r for %s: %r" % (last, task_id, ev))

        # The right credentials: pulled, and the task runs it.
        t0 = time.monotonic()
        assert motd("one", {**base, "auth": creds}) == "one"
        took = time.monotonic() - t0
        ev = events("one", "pulled " + base["image"])
        progress = [e for e in ev if e["message"].startswith("Image pull progress: ")]
        # While it pulled: the first once the manifest was known, then at most one per 10 s.
        assert 1 <= len(progress) <= 1 + took // 10, ev
        assert progress[0]["message"].startswith("Image pull progress: Pulled 0/2 (0 B/"), ev
        assert progress[0]["message"].endswith(" layers: 2 waiting/0 pulling"), ev
        assert all(e["annotations"] == {"image": base["image"]} for e in progress), ev
        # A new image under the same tag: the store's copy is used, unless force_pull.
        push(tmp_path, reg, b"two\n", "1")
        assert motd("two", {**base, "auth": creds}) == "one"
        ev = events("two", "image " + base["image"] + " is in the store")
        assert not [e for e in ev if "pull progress" in e["message"]], ev
        assert motd("three", {**base, "auth": creds, "force_pull": True}) == "two"
    finally:
        if probe:
            probe.close()
        reg.stop()
    assert mount_points() == before
    assert os.listdir(tmp_path / "store" / "leases") == []


def test_docker_pull_progress_events_while_a_layer_stalls(tmp_path, monkeypatch):
    """As Nomad's docker driver: "Docker image pull progress" events every
    10 s while the pull runs, also while no byte arrives (a stalled layer);
    a loopback registry is plain HTTP, as dockerd allows it by default."""
    work = tmp_path / "registry"
    work.mkdir()
    reg = Registry(str(work))
    monkeypatch.setenv("HUSK_IMAGE_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("HOME", str(tmp_path))
    before = mount_points()
    probe = proxy = None
    try:
        push(tmp_path, reg, b"stalled\n", "s")
        req = urllib.request.Request(f"http://{reg.host}/v2/test/app/manifests/s",
                                     headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        layers = json.load(urllib.request.urlopen(req, timeout=10))["layers"]
        proxy = Proxy(reg.port)
        proxy.stall.add(max(layers, key=lambda l: l["size"])["digest"])
        proxy.stall_seconds = 35
        probe = Probe(tmp_path, name="nomad-driver-docker")
        image = f"{proxy.host}/test/app:s"
        t0 = time.monotonic()
        r = probe.start("s", {"image": image, "command": "/bin/sleep", "args": ["1000"], "network_mode": "none"})
        took = time.monotonic() - t0
        assert r["ok"], r
        assert took >= 30, took  # it waited the stall out (pull_activity_timeout is 2m)
        for _ in range(50):  # TaskEvents reach the probe on their own stream
            ev = probe.call(op="events", id="s")["events"]
            progress = [e for e in ev if e["message"].startswith("Docker image pull progress: ")]
            if len(progress) >= 3:
                break
            time.sleep(0.1)
        # The first once the manifest was known, then one per 10 s through the stall.
        assert len(progress) >= 3, ev
        assert progress[0]["message"].startswith("Docker image pull progress: Pulled 0/2 (0 B/"), ev
        assert all(e["annotations"] == {"image": image} for e in progress), ev
        assert probe.stop("s")["ok"]
    finally:
        if probe:
            probe.close()
        if proxy:
            proxy.close()
        reg.stop()
    assert mount_points() == before
