"""husk-default, the AppArmor profile of the docker and podman flavors'
tasks that name none (dockerd's docker-default, podman's
containers-default), in the VM's AppArmor kernel through driver-probe: a
task with no security_opt runs under it, loaded by the driver when absent
or replaced; it denies mounts, the magic SysRq key and the host's sysctls
while the namespaced ones stay writable; privileged and unconfined tasks
run without it; without apparmor_parser the task fails with an error that
names the profile and the way out. husk-default stays loaded afterwards,
as docker-default does."""
import os
import shutil
import subprocess

import pytest

from test_driver_fields import Probe, image  # noqa: F401  (fixture)

PARSER = shutil.which("apparmor_parser") or "/usr/sbin/apparmor_parser"
ENABLED = "/sys/module/apparmor/parameters/enabled"
SECURITYFS = "/sys/kernel/security/apparmor"
STAMP = "/run/husk-driver/apparmor-husk-default"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(PARSER) and os.path.exists(ENABLED) and open(ENABLED).read().startswith("Y")),
    reason="needs a kernel with AppArmor and apparmor_parser")

DOCKER = {"volumes": {"enabled": True}, "allow_privileged": True, "allow_caps": ["all"]}
# /proc's masked and read-only paths off (systempaths=unconfined) and no
# seccomp filter, with CAP_SYS_ADMIN: AppArmor is the only wall left.
BARE = ["seccomp=unconfined", "systempaths=unconfined"]

CHECKS = r"""
exec 2>&1
cat /proc/1/attr/current /proc/self/attr/current
mkdir -p /mnt/t; mount -t tmpfs none /mnt/t 2>&1 && echo mount=ok
echo h 2>&1 > /proc/sysrq-trigger && echo sysrq=ok
echo 1 2>&1 > /proc/sys/vm/drop_caches && echo drop_caches=ok
cat /proc/sys/net/core/somaxconn > /proc/sys/net/core/somaxconn && echo netns_sysctl=ok
cat /proc/sys/kernel/shmmax > /proc/sys/kernel/shmmax && echo ipcns_sysctl=ok
true
"""


def loaded():
    with open(os.path.join(SECURITYFS, "profiles")) as f:
        return any(line.rsplit(" (", 1)[0] == "husk-default" for line in f)


def unload_default():
    if loaded():
        with open(os.path.join(SECURITYFS, ".remove"), "w") as f:
            f.write("husk-default")
    assert not loaded()


def docker_task(tmp_path, image, security_opt, **extra):  # noqa: F811
    cfg = {"image": image, "command": "/bin/sleep", "args": ["1000"], "network_mode": "none",
           "cap_add": ["sys_admin"], "security_opt": security_opt, **extra}
    return cfg


def run_checks(probe, task_id):
    out = probe.sh(task_id, CHECKS)["stdout"]
    lines = out.splitlines()
    return lines[:2], set(line for line in lines[2:] if "=ok" in line), out


def test_docker_task_without_a_profile_runs_under_husk_default_loaded_by_the_driver(tmp_path, image):  # noqa: F811
    unload_default()
    probe = Probe(tmp_path, name="nomad-driver-docker", plugin_config=DOCKER)
    try:
        r = probe.start("aa", docker_task(tmp_path, image, BARE), name="web")
        assert r["ok"], r
        assert loaded()
        attrs, ok, out = run_checks(probe, "aa")
        assert attrs == ["husk-default (enforce)"] * 2, out
        # Denied by the profile; the namespaced sysctls stay the task's.
        assert ok == {"netns_sysctl=ok", "ipcns_sysctl=ok"}, out
        assert "Permission denied" in out, out
        assert probe.stop("aa")["ok"]

        # The same task unconfined: everything the profile denied works,
        # so the denials above were the profile's.
        r = probe.start("open", docker_task(tmp_path, image, BARE + ["apparmor=unconfined"]), name="web")
        assert r["ok"], r
        attrs, ok, out = run_checks(probe, "open")
        assert attrs == ["unconfined"] * 2, out
        assert {"mount=ok", "sysrq=ok", "drop_caches=ok", "netns_sysctl=ok", "ipcns_sysctl=ok"} <= ok, out
        assert probe.stop("open")["ok"]

        # Privileged: unconfined, as in docker.
        r = probe.start("priv", {"image": image, "command": "/bin/sleep", "args": ["1000"],
                                 "network_mode": "none", "privileged": True}, name="web")
        assert r["ok"], r
        assert probe.sh("priv", "cat /proc/1/attr/current")["stdout"].splitlines() == ["unconfined"]
        assert probe.stop("priv")["ok"]
    finally:
        probe.close()


def test_a_husk_default_someone_replaced_is_loaded_again(tmp_path, image):  # noqa: F811
    permissive = tmp_path / "permissive"
    permissive.write_text("profile husk-default flags=(attach_disconnected,mediate_deleted) {\n"
                          "  file, capability, network, mount, umount, signal, ptrace,\n}\n")
    subprocess.run([PARSER, "-r", "-K", str(permissive)], check=True, capture_output=True, timeout=120)
    probe = Probe(tmp_path, name="nomad-driver-docker", plugin_config=DOCKER)
    try:
        r = probe.start("aa", docker_task(tmp_path, image, BARE), name="web")
        assert r["ok"], r
        attrs, ok, out = run_checks(probe, "aa")
        assert attrs == ["husk-default (enforce)"] * 2 and "mount=ok" not in ok, out
        assert probe.stop("aa")["ok"]
    finally:
        probe.close()


def test_podman_task_without_a_profile_runs_under_husk_default(tmp_path, image):  # noqa: F811
    probe = Probe(tmp_path, name="nomad-driver-podman")
    try:
        base = {"image": image, "command": "/bin/sleep", "args": ["1000"], "network_mode": "none",
                "cap_add": ["sys_admin"], "security_opt": ["seccomp=unconfined"]}
        r = probe.start("aa", base, name="web")
        assert r["ok"], r
        out = probe.sh("aa", "cat /proc/1/attr/current; mkdir -p /mnt/t; mount -t tmpfs none /mnt/t 2>&1 "
                             "&& echo mount=ok")["stdout"]
        assert out.splitlines()[0] == "husk-default (enforce)" and "mount=ok" not in out, out
        assert probe.stop("aa")["ok"]
        r = probe.start("open", {**base, "apparmor_profile": "unconfined"}, name="web")
        assert r["ok"], r
        assert probe.sh("open", "cat /proc/1/attr/current")["stdout"].splitlines() == ["unconfined"]
        assert probe.stop("open")["ok"]
    finally:
        probe.close()


def test_without_apparmor_parser_a_default_task_fails_naming_the_profile(tmp_path, image, monkeypatch):  # noqa: F811
    unload_default()
    monkeypatch.setenv("HUSK_APPARMOR_PARSER", str(tmp_path / "no-apparmor_parser"))
    probe = Probe(tmp_path, name="nomad-driver-docker", plugin_config=DOCKER)
    try:
        cfg = {"image": image, "command": "/bin/sleep", "args": ["1000"], "network_mode": "none"}
        bad = probe.start("bad", cfg, name="web")
        assert not bad["ok"], bad
        for part in ("config.security_opt", '"husk-default"', "no-apparmor_parser",
                     'security_opt = ["apparmor=unconfined"]'):
            assert part in bad["error"], bad
        assert os.listdir(probe.state / "tasks") == []
        r = probe.start("open", {**cfg, "security_opt": ["apparmor=unconfined"]}, name="web")
        assert r["ok"], r
        assert probe.stop("open")["ok"]
    finally:
        probe.close()
        monkeypatch.delenv("HUSK_APPARMOR_PARSER")
        # Loaded again for whoever comes next, as a driver would.
        subprocess.run([PARSER, "-r", "-K"], input=subprocess.run(
            [os.path.join(os.path.dirname(__file__), "..", "..", "build", "src", "driver", "nomad-driver-husk"),
             "--apparmor-profile"], capture_output=True, check=True).stdout, check=True, capture_output=True,
            timeout=120)
