"""spec, features, --version, help."""
import json
import os


def test_spec_writes_a_config_that_runs(husk, bundle, tmp_path):
    os.remove(os.path.join(bundle.path, "config.json")) if os.path.exists(os.path.join(bundle.path, "config.json")) else None
    husk.cmd("spec", "-b", bundle.path, check=True)
    cfg = json.load(open(os.path.join(bundle.path, "config.json")))
    assert cfg["ociVersion"] == "1.2.0"
    assert cfg["root"]["path"] == "rootfs"
    assert {n["type"] for n in cfg["linux"]["namespaces"]} >= {"pid", "mount", "network", "ipc", "uts"}
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "echo spec-ok"]
    bundle.write(cfg)
    assert husk.run(write=False).stdout == "spec-ok\n"
    r = husk.cmd("spec", "-b", bundle.path)
    assert r.returncode != 0 and "exists" in r.stderr


def test_spec_rootless(husk, tmp_path):
    husk.cmd("spec", "--rootless", "-b", str(tmp_path), check=True)
    cfg = json.load(open(tmp_path / "config.json"))
    types = {n["type"] for n in cfg["linux"]["namespaces"]}
    assert "user" in types and "network" not in types
    assert cfg["linux"]["uidMappings"][0]["size"] == 1


def test_features(husk):
    f = json.loads(husk.cmd("features", check=True).stdout)
    assert f["ociVersionMax"] == "1.2.0"
    assert "CAP_SYS_ADMIN" in f["linux"]["capabilities"]
    assert "time" in f["linux"]["namespaces"]
    assert "SCMP_ACT_NOTIFY" in f["linux"]["seccomp"]["actions"]
    assert "createRuntime" in f["hooks"]
    assert "rbind" in f["mountOptions"] and "idmap" in f["mountOptions"]


def test_version(husk):
    out = husk.cmd("--version", check=True).stdout
    assert out.startswith("husk version ")
    assert "commit:" in out and "spec: 1.2.0" in out


def test_help(husk):
    r = husk.cmd("--help", check=True)
    for c in ("create", "start", "run", "exec", "kill", "delete", "state", "list", "ps", "pause", "resume", "spec",
              "features"):
        assert f"  {c} " in r.stdout
