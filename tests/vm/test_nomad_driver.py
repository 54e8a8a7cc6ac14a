"""nomad-driver-husk end to end on a pure cgroup v2 kernel: the Nomad harness
(../shared/nomad-harness, built by tools/run-tests into build/nomadh-cache)
plays Nomad's client toward the plugin binary, under both names it serves."""
import os
import re
import shutil
import subprocess

import pytest

from husktest import CGROUP2, ROOT, mount_points

HARNESS = os.environ.get("NOMAD_HARNESS", os.path.join(ROOT, "build", "nomadh-cache", "bin", "nomad-harness"))
PLUGIN = os.path.join(ROOT, "build", "src", "driver", "nomad-driver-husk")
DEMO_ROOTFS = os.path.join(ROOT, "build", "contrib", "demo-bundle", "rootfs")


@pytest.fixture
def image(tmp_path):
    # Overlay upper and lower directories must be on a local filesystem, not
    # the VM's 9p share of the host: the image is copied to the VM's tmpfs.
    d = tmp_path / "image"
    shutil.copytree(DEMO_ROOTFS, d, symlinks=True)
    return str(d)


def run_harness(tmp_path, plugin, image, *extra):
    state = tmp_path / "driver-state"
    before = mount_points()
    r = subprocess.run([HARNESS, "-plugin", plugin, "-plugin-arg", f"--state-dir={state}", "-image", image,
                        "-workdir", str(tmp_path / "work"), "-no-cpuset-cgroup",
                        # Software emulation on a loaded 2-core machine is slow: RPCs and the
                        # handshake get Nomad's own patience, not the harness's quick defaults.
                        "-rpc-timeout", "45s", "-handshake-timeout", "60s", *extra],
                       capture_output=True, text=True, timeout=900)
    out = r.stdout + r.stderr
    # Nothing of the tasks is left: containers, task dirs, mounts, cgroups.
    # (.networks holds the bridge network's definition and its IPAM leases.)
    assert (state / "containers").is_dir(), out  # the tasks ran (and the harness output shows when not)
    assert [c for c in os.listdir(state / "containers") if c != ".networks"] == [], out
    leases = state / "containers" / ".networks" / "husk0" / "leases"
    assert not leases.exists() or leases.read_text().strip() == "", leases.read_text()
    assert os.listdir(state / "tasks") == [], out
    assert mount_points() == before, out
    # Tasks' cgroups are husk-<container>.scope under nomad.slice.
    nomad_cg = os.path.join(CGROUP2, "nomad.slice")
    if os.path.isdir(nomad_cg):
        assert [c for c in os.listdir(nomad_cg) if c.startswith("husk-")] == [], out
    return r.returncode, out


@pytest.mark.skipif(not os.path.exists(HARNESS), reason="nomad-harness not built (tools/run-tests builds it)")
@pytest.mark.parametrize("name,network", [("nomad-driver-podman", "default"), ("nomad-driver-husk", "host")])
def test_harness_passes_every_scenario(tmp_path, image, name, network):
    # The harness's own task configs leave network_mode unset: podman's
    # default, a bridge (made by husk). The husk-named run uses the host's.
    plugin = tmp_path / name
    os.symlink(PLUGIN, plugin)
    extra = []
    if network == "host":
        tasks = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nomad")
        extra = ["-short-task", os.path.join(tasks, "short-task.hcl"), "-long-task", os.path.join(tasks, "long-task.hcl")]
        # The same podman flavor under another name and network: the
        # scenarios that the name or the host network can change, not the
        # whole list again (recover, stats, exec streaming, schemas are the
        # flavor's, run above; the VM tier's time is the suite's budget).
        extra += ["-run", "^(handshake-line|plugin-info|config-schema|set-config|task-config-schema|fingerprint|start-wait-short|"
                          "logs-fifo|lifecycle-long|exec|task-events-stream)$"]
    rc, out = run_harness(tmp_path, str(plugin), image, *extra)
    summary = re.findall(r"^(\d+) passed, (\d+) failed", out, re.M)
    assert summary, out
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert rc == 0 and summary[-1][1] == "0", "\n".join(failed) + "\n" + out[-4000:]
    expected_name = "husk" if name == "nomad-driver-husk" else "podman"
    assert re.search(rf"name[=: ]+\"?{expected_name}\b", out), out[:3000]
