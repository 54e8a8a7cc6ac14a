"""The driver's nspawn flavor end to end on a pure cgroup v2 kernel: the
Nomad harness plays Nomad's client toward the plugin under the name
nomad-driver-nspawn with nspawn task configs (tests/vm/nomad/nspawn-*.hcl),
and a Debian bookworm image with systemd (tools/build-debian-rootfs, a raw
ext4 disk image the driver loop-mounts) boots with boot = true: systemd
reaches running or degraded, ExecTask reaches it, StopTask halts it with
SIGRTMIN+3 within the kill timeout, and nothing is left behind."""
import os
import re
import stat

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
# Waits (up to 7 s: ExecTask's timeout is 10 s) for systemd to finish
# booting, then reports its state and failed units for the test.
t0=$(date +%s)
while :; do
  s=$(timeout 3 systemctl is-system-running 2>&1)
  echo "$(( $(date +%s) - t0 ))s: $s" >>/report/progress.txt
  case "$s" in running|degraded) break ;; esac
  [ $(( $(date +%s) - t0 )) -ge 7 ] && break
  sleep 0.5
done
{ echo "state=$s"; echo "failed units:"; timeout 2 systemctl --failed --no-legend --plain 2>&1
  case "$s" in running|degraded) ;; *)
    echo "jobs:"; timeout 2 systemctl list-jobs --no-legend 2>&1
    echo "pid 1: $(tr '\\0' ' ' </proc/1/cmdline) $(grep State /proc/1/status)"; ls /run/systemd 2>&1 | tr '\\n' ' '; echo
    echo "journal:"; timeout 3 journalctl -b --no-pager -q 2>&1 | tail -40 ;;
  esac
} >/report/state.txt
echo exec-out
echo exec-err >&2
case "$s" in running|degraded) exit 7 ;; esac
exit 1
"""


@needs_harness
@pytest.mark.skipif(not os.path.exists(DEBIAN_RAW), reason="no Debian image (tools/build-debian-rootfs builds it)")
def test_boot_debian_systemd_exec_and_stop(tmp_path, capsys):
    # The VM's devtmpfs has no loop nodes until the module is in: opening
    # loop-control autoloads it (a host has it already).
    if not os.path.exists("/dev/loop-control"):
        os.mknod("/dev/loop-control", 0o600 | stat.S_IFCHR, os.makedev(10, 237))
    report = tmp_path / "report"
    report.mkdir()
    # The booted image runs in a picked user namespace range (private_users
    # = pick): its root is not the host's, and a plain bind is not idmapped.
    report.chmod(0o777)
    (report / "probe.sh").write_text(PROBE)
    task = tmp_path / "boot-task.hcl"
    task.write_text(f'image = "{DEBIAN_RAW}"\nboot = true\nbind = [{{ "{report}" = "/report" }}]\n')
    rc, out = run_harness(tmp_path, nspawn_plugin(tmp_path), DEBIAN_RAW, "-long-task", str(task),
                          "-schema-task", os.path.join(TASKS, "nspawn-schema-task.hcl"),
                          "-run", "^(plugin-info|config-schema|set-config|task-config-schema|exec)$",
                          "-exec-cmd", "/bin/sh,/report/probe.sh",
                          "-kill-timeout", "20s")
    state = (report / "state.txt").read_text() if (report / "state.txt").exists() else "(no report)"
    progress = (report / "progress.txt").read_text() if (report / "progress.txt").exists() else ""
    log = (tmp_path / "work" / "plugin.log").read_text()
    with capsys.disabled():
        print("\nsystemd in the booted Debian image:\n" + progress + state)
    assert re.search(r"^state=(running|degraded)$", state, re.M), state + "\n" + out[-4000:] + log[-6000:]
    assert rc == 0, failures(out) + "\n" + out[-4000:]
    stop = re.search(r"exited (\d+) ms after SIGRTMIN\+3 \(timeout 20000 ms\)", log)
    assert stop, "StopTask did not halt systemd with SIGRTMIN+3 within the timeout:\n" + log[-4000:]
    with capsys.disabled():
        print(f"systemd halted {stop.group(1)} ms after SIGRTMIN+3")
