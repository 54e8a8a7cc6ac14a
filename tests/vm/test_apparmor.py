"""AppArmor (the VM's Debian kernel runs it): process.apparmorProfile and
`husk exec --apparmor` put the process under a loaded profile at its exec,
seen in /proc/self/attr/current and in what the profile denies; a profile
that is not loaded is an error naming it, with nothing left behind. The
docker flavor's security_opt apparmor=PROFILE reaches the task."""
import os
import shutil
import subprocess

import pytest

from husktest import mount_points

PARSER = shutil.which("apparmor_parser") or "/usr/sbin/apparmor_parser"
ENABLED = "/sys/module/apparmor/parameters/enabled"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(PARSER) and os.path.exists(ENABLED) and open(ENABLED).read().startswith("Y")),
    reason="needs a kernel with AppArmor and apparmor_parser")

NAME = "husk-test-deny"
# Everything allowed but reading or writing a file named "forbidden".
PROFILE = """
profile %s flags=(attach_disconnected,mediate_deleted) {
  file,
  capability,
  network,
  mount,
  umount,
  pivot_root,
  signal,
  ptrace,
  unix,
  dbus,
  deny /**/forbidden rw,
  deny /forbidden rw,
}
""" % NAME


@pytest.fixture
def profile(tmp_path):
    path = tmp_path / "profile"
    path.write_text(PROFILE)
    subprocess.run([PARSER, "-r", str(path)], check=True, capture_output=True, timeout=120)
    try:
        yield NAME
    finally:
        subprocess.run([PARSER, "-R", str(path)], check=True, capture_output=True, timeout=120)


def test_profile_applies_to_the_container_and_to_an_exec(husk, bundle, profile):
    with open(os.path.join(bundle.rootfs, "forbidden"), "w") as fh:
        fh.write("secret\n")
    bundle.config["process"]["apparmorProfile"] = profile
    bundle.set_args("sh", "-c", "cat /proc/self/attr/current; cat /forbidden || echo denied")
    r = husk.run()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"{profile} (enforce)", r.stdout
    assert "secret" not in r.stdout and lines[-1] == "denied", r.stdout

    # An unconfined container; exec --apparmor confines the exec'd process only.
    del bundle.config["process"]["apparmorProfile"]
    bundle.set_args("sleep", "1000")
    cid = husk.create()
    try:
        husk.cmd("start", cid, check=True)
        r = husk.cmd("exec", "--apparmor", profile, cid, "sh", "-c",
                     "cat /proc/self/attr/current; cat /proc/1/attr/current; cat /forbidden || echo denied")
        assert r.returncode == 0, r.stderr
        out = r.stdout.splitlines()
        assert out[0] == f"{profile} (enforce)" and out[1] == "unconfined" and out[-1] == "denied", r.stdout
        r = husk.cmd("exec", cid, "cat", "/forbidden")
        assert r.returncode == 0 and r.stdout == "secret\n", r.stderr
    finally:
        husk.cmd("delete", "--force", cid)


def test_a_profile_that_is_not_loaded_is_an_error_and_leaves_nothing(husk, bundle):
    before = mount_points()
    bundle.config["process"]["apparmorProfile"] = "husk-test-no-such-profile"
    r = husk.run()
    assert r.returncode != 0, r.stdout
    assert 'process.apparmorProfile "husk-test-no-such-profile": no such AppArmor profile is loaded' in r.stderr, \
        r.stderr
    assert husk.cmd("list", "-q").stdout.strip() == ""
    assert mount_points() == before


def test_docker_flavor_security_opt_apparmor(tmp_path, profile):
    from test_driver_fields import DEMO_ROOTFS, Probe
    image = tmp_path / "image"
    shutil.copytree(DEMO_ROOTFS, image, symlinks=True)
    (image / "forbidden").write_text("secret\n")
    before = mount_points()
    probe = Probe(tmp_path, name="nomad-driver-docker", plugin_config={"volumes": {"enabled": True}})
    try:
        cfg = {"image": str(image), "command": "/bin/sleep", "args": ["1000"], "network_mode": "none"}
        r = probe.start("aa", {**cfg, "security_opt": [f"apparmor={profile}"]}, name="web")
        assert r["ok"], r
        e = probe.sh("aa", "cat /proc/1/attr/current /proc/self/attr/current; cat /forbidden || echo denied")
        out = e["stdout"].splitlines()
        assert out[:2] == [f"{profile} (enforce)"] * 2 and out[-1] == "denied", e
        assert probe.stop("aa")["ok"]
        bad = probe.start("bad", {**cfg, "security_opt": ["apparmor=husk-test-no-such-profile"]}, name="web")
        assert not bad["ok"] and "config.security_opt" in bad["error"] and "no such AppArmor profile is loaded" in bad["error"], bad
        assert os.listdir(probe.state / "tasks") == []
    finally:
        probe.close()
    assert mount_points() == before
