"""OCI hooks: all six kinds, their order, the state on stdin, timeouts."""
import json
import os


def hook_script(tmp_path, name, body):
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return str(p)


def test_all_hooks_run_in_order_with_state(husk, bundle, tmp_path):
    log = tmp_path / "hooks.log"
    # createContainer and startContainer run in the container's mount
    # namespace, so they log into a path the container sees at the same place.
    rec = hook_script(tmp_path, "rec.sh", f'read -r state; echo "$1 $state" >> {log}\n')
    bundle.config["mounts"].append({"destination": str(tmp_path), "type": "bind", "source": str(tmp_path),
                                    "options": ["rbind"]})
    bundle.config["hooks"] = {
        kind: [{"path": rec, "args": ["rec.sh", kind]}]
        for kind in ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
    }
    # startContainer runs inside the rootfs after pivot: give it /bin/sh there (busybox) and the script path.
    os.makedirs(bundle.rootfs + str(tmp_path), exist_ok=True)
    bundle.set_args("true")
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    husk.cmd("delete", "--force", cid, check=True)
    lines = log.read_text().splitlines()
    kinds = [l.split()[0] for l in lines]
    assert kinds == ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
    first = json.loads(lines[0].split(" ", 1)[1])
    assert first["id"] == cid and first["pid"] > 0
    assert json.loads(lines[-1].split(" ", 1)[1])["status"] == "stopped"


def test_failing_create_runtime_hook_aborts_create(husk, bundle, tmp_path):
    bad = hook_script(tmp_path, "bad.sh", "exit 3\n")
    bundle.config["hooks"] = {"createRuntime": [{"path": bad}]}
    r = husk.create(check=False)
    assert r.returncode != 0
    assert "hooks.createRuntime[0]" in r.stderr and "status 3" in r.stderr
    assert os.listdir(husk.root) == []


def test_hook_timeout_kills_it(husk, bundle, tmp_path):
    slow = hook_script(tmp_path, "slow.sh", "sleep 30\n")
    bundle.config["hooks"] = {"prestart": [{"path": slow, "timeout": 1}]}
    r = husk.create(check=False, timeout=20)
    assert r.returncode != 0 and "timed out after 1s" in r.stderr


def test_hook_env_and_args(husk, bundle, tmp_path):
    out = tmp_path / "env.out"
    bundle.config["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["myname", "-c", f'echo "$0 $HOOKVAR" > {out}'],
                                                 "env": ["HOOKVAR=v1"]}]}
    husk.create()
    assert out.read_text() == "myname v1\n"


def test_failing_poststart_hook_only_warns(husk, bundle, tmp_path):
    bad = hook_script(tmp_path, "bad.sh", "exit 1\n")
    bundle.config["hooks"] = {"poststart": [{"path": bad}]}
    bundle.set_args("sleep", "100")
    cid = husk.create()
    r = husk.cmd("start", cid)
    assert r.returncode == 0
    assert "warning" in r.stderr and "poststart" in r.stderr
