"""Bad input: one clear line naming what is wrong, non-zero exit, nothing left behind."""
import json
import os

from husktest import CGROUP2


def one_line(r):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode != 0
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_unknown_capability_names_the_json_path(husk, bundle):
    bundle.config["process"]["capabilities"]["bounding"].append("CAP_FOO")
    line = one_line(husk.create(check=False))
    assert 'process.capabilities.bounding[3]' in line and '"CAP_FOO"' in line
    assert os.listdir(husk.root) == []


def test_unknown_namespace_type(husk, bundle):
    bundle.config["linux"]["namespaces"].append({"type": "bogus"})
    line = one_line(husk.create(check=False))
    assert "linux.namespaces[6].type" in line and '"bogus"' in line


def test_malformed_json(husk, bundle):
    bundle.write('{"ociVersion": "1.2.0", "process": ')
    r = husk.create(write=False, check=False)
    line = one_line(r)
    assert "config.json" in line


def test_missing_bundle(husk, tmp_path):
    r = husk.cmd("create", "--bundle", str(tmp_path / "nope"), "x")
    assert "nope" in one_line(r)
    assert os.listdir(husk.root) == []


def test_missing_rootfs(husk, bundle):
    bundle.config["root"]["path"] = "no-rootfs-here"
    line = one_line(husk.create(check=False))
    assert "root.path" in line and "no-rootfs-here" in line


def test_duplicate_id(husk, bundle):
    bundle.set_args("sleep", "100")
    cid = husk.create()
    line = one_line(husk.create(cid, check=False))
    assert "already exists" in line
    assert husk.state(cid)["status"] == "created"


def test_invalid_id(husk, bundle):
    line = one_line(husk.create("../evil", check=False))
    assert "invalid container id" in line


def test_unknown_command_and_option(husk):
    assert "unknown command" in one_line(husk.cmd("frobnicate"))
    assert '"--bogus"' in one_line(husk.cmd("create", "--bogus", "x"))
    assert "needs a value" in one_line(husk.cmd("create", "x", "--bundle"))


def test_failed_mount_leaves_nothing_behind(husk, bundle):
    bundle.config["mounts"].append({"destination": "/data", "type": "bind", "source": "/does/not/exist",
                                    "options": ["rbind"]})
    line = one_line(husk.create(check=False))
    assert "/data" in line
    assert os.listdir(husk.root) == []
    assert not os.path.exists(os.path.join(CGROUP2, "husk", f"t{os.getpid()}-1"))


def test_resource_needing_a_missing_controller_is_a_clear_error(husk, bundle):
    controllers = open(os.path.join(CGROUP2, "cgroup.controllers")).read().split()
    if "memory" in controllers:
        import pytest
        pytest.skip("this host has the memory controller")
    bundle.config["linux"]["resources"] = {"memory": {"limit": 64 << 20}}
    line = one_line(husk.create(check=False))
    assert "memory" in line
    assert os.listdir(husk.root) == []


def test_state_of_unknown_container(husk):
    assert "does not exist" in one_line(husk.cmd("state", "nope"))


def test_json_log_format_for_conmon(husk, bundle, tmp_path):
    log = tmp_path / "log.json"
    bundle.set_args("no-such-binary")
    bundle.write()
    r = husk.cmd("create", "--bundle", bundle.path, "x", global_args=("--log", str(log), "--log-format", "json"))
    assert r.returncode != 0
    entries = [json.loads(l) for l in log.read_text().splitlines()]
    assert entries[-1]["level"] == "error"
    assert "no-such-binary" in entries[-1]["msg"]
    assert "time" in entries[-1]
