"""The driver's nspawn flavor end to end on a pure cgroup v2 kernel: the
Nomad harness plays Nomad's client toward the plugin under the name
nomad-driver-nspawn with nspawn task configs (tests/vm/nomad/nspawn-*.hcl),
and a Debian bookworm image with systemd (tools/build-debian-rootfs, a raw
ext4 disk image the driver loop-mounts) boots with boot = true: systemd
reaches running or degraded, ExecTask reaches it, StopTask halts it with
SIGRTMIN+3 within the kill timeout, and nothing is left behind."""
import os
import re

import pytest

from husktest import ROOT
from test_nomad_driver import HARNESS, PLUGIN, image, run_harness  # noqa: F401 (image is a fixture)

TASKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nomad")
DEBIAN_RAW = os.path.join(ROOT, "build", "debian-bookworm-systemd.raw")

needs_harness = pytest.mark.skipif(not os.path.exists(HARNESS), reason="nomad-harness not built (tools/run-tests builds it)")


def nspawn_plugin(tmp_path):
    plugin = tmp_path / "nomad-driver-nspawn"
    os.symlink(PLUGIN, plugin)
    return str(plugin)


def failures(out):
    return "\n".join(line for line in out.splitlines() if line.startswith("FAIL"))


@needs_harness
def test_harness_passes_every_scenario_as_nspawn(tmp_path, image):  # noqa: F811
    rc, out = run_harness(tmp_path, nspawn_plugin(tmp_path), image,
                          "-short-task", os.path.join(TASKS, "nspawn-short-task.hcl"),
                          "-long-task", os.path.join(TASKS, "nspawn-long-task.hcl"),
                          "-schema-task", os.path.join(TASKS, "nspawn-schema-task.hcl"))
    summary = re.findall(r"^(\d+) passed, (\d+) failed", out, re.M)
    assert summary, out
    assert rc == 0 and summary[-1][1] == "0", failures(out) + "\n" + out[-4000:]
    assert re.search(r"name[=: ]+\"?nspawn\b", out), out[:3000]


PROBE = """\
# Waits (up to ~9 s: ExecTask's timeout is 10 s) for systemd to finish
# booting, then reports its state and failed units for the test.
for i in 1 2 3 4 5 6 7 8 9; do
  s=$(systemctl is-system-running 2>/dev/null)
  case "$s" in running|degraded) break ;; esac
  sleep 1
done
{ echo "state=$s"; echo "failed units:"; systemctl --failed --no-legend --plain 2>&1; } >/report/state.txt
echo exec-out
echo exec-err >&2
case "$s" in running|degraded) exit 7 ;; esac
exit 1
"""


@needs_harness
@pytest.mark.skipif(not os.path.exists(DEBIAN_RAW), reason="no Debian image (tools/build-debian-rootfs builds it)")
def test_boot_debian_systemd_exec_and_stop(tmp_path, capsys):
    report = tmp_path / "report"
    report.mkdir()
    (report / "probe.sh").write_text(PROBE)
    task = tmp_path / "boot-task.hcl"
    task.write_text(f'image = "{DEBIAN_RAW}"\nboot = true\nbind = [{{ "{report}" = "/report" }}]\n')
    rc, out = run_harness(tmp_path, nspawn_plugin(tmp_path), DEBIAN_RAW, "-long-task", str(task),
                          "-run", "^(plugin-info|config-schema|set-config|exec)$", "-exec-cmd", "/bin/sh,/report/probe.sh",
                          "-kill-timeout", "20s")
    state = (report / "state.txt").read_text() if (report / "state.txt").exists() else "(no report)"
    with capsys.disabled():
        print("\nsystemd in the booted Debian image:\n" + state)
    assert re.search(r"^state=(running|degraded)$", state, re.M), state + "\n" + out[-4000:]
    assert rc == 0, failures(out) + "\n" + out[-4000:]
    log = (tmp_path / "work" / "plugin.log").read_text()
    stop = re.search(r"exited (\d+) ms after SIGRTMIN\+3 \(timeout 20000 ms\)", log)
    assert stop, "StopTask did not halt systemd with SIGRTMIN+3 within the timeout:\n" + log[-4000:]
    with capsys.disabled():
        print(f"systemd halted {stop.group(1)} ms after SIGRTMIN+3")
