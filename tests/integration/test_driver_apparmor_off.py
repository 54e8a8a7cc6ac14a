"""On a host without AppArmor (this one), the docker and podman flavors
apply no default profile and ask for no apparmor_parser: a task that names
no profile starts and runs unconfined, as under dockerd. (The VM tier,
tests/vm/test_driver_apparmor.py, checks husk-default where AppArmor runs.)
Also: the profile the driver prints parses with the host's apparmor_parser."""
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vm"))
from test_driver_fields import PLUGIN, PROBE, Probe, image  # noqa: E402,F401  (fixture)

ENABLED = "/sys/module/apparmor/parameters/enabled"
APPARMOR_ON = os.path.exists(ENABLED) and open(ENABLED).read().startswith("Y")
PARSER = shutil.which("apparmor_parser") or "/usr/sbin/apparmor_parser"


@pytest.mark.skipif(APPARMOR_ON, reason="this host runs AppArmor (the VM tier checks husk-default)")
@pytest.mark.skipif(not os.path.exists(PROBE), reason="driver-probe not built")
@pytest.mark.parametrize("flavor", ["nomad-driver-docker", "nomad-driver-podman"])
def test_default_task_runs_unconfined_without_apparmor(tmp_path, image, monkeypatch, flavor):  # noqa: F811
    # Not even looked for: a parser that does not exist changes nothing.
    monkeypatch.setenv("HUSK_APPARMOR_PARSER", str(tmp_path / "no-apparmor_parser"))
    probe = Probe(tmp_path, name=flavor, plugin_config={"volumes": {"enabled": True}})
    try:
        r = probe.start("t", {"image": image, "command": "/bin/sleep", "args": ["1000"], "network_mode": "none"},
                        name="web", cpu_shares=0, memory_mb=0)  # this host's cgroup v2 has no controllers
        assert r["ok"], r
        out = probe.sh("t", "cat /proc/1/attr/current 2>&1 || echo no-lsm-attr")["stdout"]
        # No LSM answers on a host without one; never husk-default.
        assert "husk-default" not in out, out
        assert probe.stop("t")["ok"]
    finally:
        probe.close()


@pytest.mark.skipif(not os.path.exists(PARSER), reason="needs apparmor_parser")
def test_printed_profile_parses_with_apparmor_parser(tmp_path):
    text = subprocess.run([PLUGIN, "--apparmor-profile"], capture_output=True, check=True).stdout
    assert b"profile husk-default " in text
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "contrib", "apparmor", "husk-default")
    assert open(src, "rb").read() == text
    # -Q: compile only, load nothing; -K: no cache.
    r = subprocess.run([PARSER, "-Q", "-K"], input=text, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
