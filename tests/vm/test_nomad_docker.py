"""nomad-driver-husk as Nomad's docker driver (nomad-driver-docker): the Nomad
harness plays Nomad's client with docker task configs (tests/vm/nomad/docker-*),
once for the module. Every scenario must pass (but the recoveries, which
test_nomad_driver.py covers), and the short task records
what its docker fields did inside the container (effects.txt in its
allocation), which the second test checks the way a user would."""
import glob
import os
import re
import shutil

import pytest

from test_nomad_driver import DEMO_ROOTFS, HARNESS, PLUGIN, run_harness

TASKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nomad")
# Every scenario but the two recoveries, which do not depend on the flavor
# (test_nomad_driver.py runs them) and take a third of the run under TCG.
SCENARIOS = ("^(handshake-line|plugin-info|controller-shutdown|config-schema|set-config|go-plugin-services|"
             "task-config-schema|capabilities|fingerprint|start-wait-short|logs-fifo|lifecycle-long|stats|exec|"
             "exec-streaming|task-events-stream)$")


@pytest.fixture(scope="module")
def docker_run(tmp_path_factory):
    if not os.path.exists(HARNESS):
        pytest.skip("nomad-harness not built (tools/run-tests builds it)")
    tmp = tmp_path_factory.mktemp("docker")
    # Overlay layers must be on the VM's own filesystem, not the 9p share.
    image = tmp / "image"
    shutil.copytree(DEMO_ROOTFS, image, symlinks=True)
    plugin = tmp / "nomad-driver-docker"
    os.symlink(PLUGIN, plugin)
    rc, out = run_harness(tmp, str(plugin), str(image),
                          "-plugin-config", os.path.join(TASKS, "docker-plugin.hcl"),
                          "-short-task", os.path.join(TASKS, "docker-short-task.hcl"),
                          "-long-task", os.path.join(TASKS, "docker-long-task.hcl"),
                          "-schema-task", os.path.join(TASKS, "docker-schema-task.hcl"),
                          "-run", SCENARIOS)
    return tmp, rc, out


def test_docker_harness_passes_every_scenario(docker_run):
    _, rc, out = docker_run
    summary = re.findall(r"^(\d+) passed, (\d+) failed", out, re.M)
    assert summary, out
    assert int(summary[-1][0]) == 16, out[-4000:]
    failed = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert rc == 0 and summary[-1][1] == "0", "\n".join(failed) + "\n" + out[-4000:]
    assert re.search(r"name[=: ]+\"?docker\b", out), out[:3000]
    # The docker driver's fingerprint keys, from the plugin options.
    assert "driver.docker.pids.limit" in out and "driver.docker.volumes.enabled" in out, out[:6000]


def test_docker_fields_take_effect_in_the_container(docker_run):
    tmp, _, out = docker_run
    found = glob.glob(str(tmp / "work" / "allocs" / "*" / "alloc" / "effects.txt"))
    assert found, "the short task wrote no effects.txt\n" + out[-3000:]
    text = open(found[0]).read()
    lines = text.splitlines()

    def value(key):
        for line in lines:
            if line.startswith(key):
                return line[len(key):].strip()
        raise AssertionError(f"no {key} in effects.txt:\n{text}")

    assert value("hostname=") == "docker-fields", text
    assert value("env_hostname=") == "docker-fields", text
    # cap_drop all + cap_add chown, kill, setgid, setuid: bits 0, 5, 6, 7.
    assert int(value("CapBnd:"), 16) == (1 << 0) | (1 << 5) | (1 << 6) | (1 << 7), text
    assert value("NoNewPrivs:") == "1", text
    assert value("Seccomp:") == "2", text  # docker's default filter
    assert "44" in value("Groups:").split(), text
    assert value("nofile=") == "2048", text
    assert value("somaxconn=") == "1234", text
    assert value("pids=") == "64", text
    assert value("oom=") == "123", text
    assert value("pwd=") == "/local", text
    assert value("rootfs=") == "ro", text
    assert value("data=") == "ro", text
    assert re.search(r"^tmpfs /scratch tmpfs \S*size=1024k", text, re.M), text
    assert re.search(r"^\S+ /dev/shm tmpfs \S*size=32768k", text, re.M), text
    assert re.search(r"^192\.0\.2\.7\s+db\.example$", text, re.M), text
    assert re.search(r"^nameserver 192\.0\.2\.53$", text, re.M), text
