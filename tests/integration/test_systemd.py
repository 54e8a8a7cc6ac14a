"""contrib/systemd: husk@.service (system) and its user twin. systemd-analyze
checks the units as built; their commands are then played in systemd's order
(ExecStartPre, ExecStart, READY=1, ExecStop, ExecStopPost) with this test as
the notify socket: READY=1 from the container must arrive from husk's own pid
(the unit's main pid, NotifyAccess=main), and nothing may be left after."""
import array
import json
import os
import shlex
import shutil
import socket
import subprocess
import tempfile

import pytest

from husktest import HUSK, ROOT, wait_for

BUILD = os.path.dirname(os.path.dirname(os.path.dirname(HUSK)))
UNITS = {"system": os.path.join(BUILD, "contrib", "systemd", "system", "husk@.service"),
         "user": os.path.join(BUILD, "contrib", "systemd", "user", "husk@.service")}

NOTIFY_C = r"""
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv) {
  const char *path = getenv("NOTIFY_SOCKET");
  if (!path || argc < 2) return 2;
  int s = socket(AF_UNIX, SOCK_DGRAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  return sendto(s, argv[1], strlen(argv[1]), 0, (struct sockaddr *)&a, sizeof a) < 0;
}
"""


def installed_husk_path(unit_text):
    for line in unit_text.splitlines():
        if line.startswith("ExecStart="):
            return line.split("=", 1)[1].split()[0]
    raise AssertionError("no ExecStart= in the unit")


def unit_for_test(kind, husk_cmd):
    text = open(UNITS[kind]).read()
    return text.replace(installed_husk_path(text), husk_cmd)


@pytest.mark.parametrize("kind", ["system", "user"])
def test_units_pass_systemd_analyze_verify(kind, tmp_path):
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed (Debian's systemd package)")
    assert os.path.exists(UNITS[kind]), "the build configures contrib/systemd"
    # verify wants an instance, and the ExecStart= binary to exist.
    unit = tmp_path / "husk@demo.service"
    unit.write_text(unit_for_test(kind, HUSK))
    env = dict(os.environ)
    args = [analyze]
    if kind == "user":
        xdg = tmp_path / "xdg"
        xdg.mkdir(mode=0o700)
        env["XDG_RUNTIME_DIR"] = str(xdg)
        args.append("--user")
    r = subprocess.run(args + ["verify", "--man=no", str(unit)], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_the_man_page_is_built():
    assert os.path.exists(os.path.join(BUILD, "man", "husk-systemd.7"))


def unit_commands(text):
    cmds = {}
    env = {}
    for line in text.splitlines():
        if "=" not in line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        if key == "Environment":
            k, v = value.split("=", 1)
            env[k] = v
        elif key.startswith("Exec"):
            cmds.setdefault(key, []).append(value)
    return cmds, env


def expand(cmd, env, instance, state_dir):
    ignore = cmd.startswith("-")
    cmd = cmd.lstrip("-")
    for k, v in env.items():
        cmd = cmd.replace("${" + k + "}", v)
    cmd = cmd.replace("%i", instance).replace("%S", state_dir)
    return ignore, shlex.split(cmd)


def test_the_units_commands_run_a_bundle_as_a_notify_service(husk, bundle, tmp_path):
    gcc = shutil.which("gcc")
    if not gcc:
        pytest.skip("gcc is needed to build the sd_notify test client")
    src = tmp_path / "notify.c"
    src.write_text(NOTIFY_C)
    subprocess.run([gcc, "-static", "-O", "-o", os.path.join(bundle.rootfs, "bin", "notify"), str(src)], check=True)
    state_dir = tmp_path / "state"
    cid = husk.new_id()
    bundle_dir = state_dir / "husk" / "bundles" / cid
    bundle_dir.parent.mkdir(parents=True)
    bundle.set_args("sh", "-c", 'trap "exit 0" TERM; notify "READY=1\nSTATUS=up\nMAINPID=1"; '
                    "while :; do sleep 0.1; done")
    bundle.write()
    os.symlink(bundle.path, bundle_dir)

    cmds, env = unit_commands(unit_for_test("system", f"{HUSK} --root {husk.root}"))
    assert set(cmds) == {"ExecStartPre", "ExecStart", "ExecStop", "ExecStopPost"}

    # A crash left the container's state behind: ExecStartPre removes it.
    husk.create(cid)
    run = lambda c: subprocess.run(c, capture_output=True, text=True, timeout=60)
    for c in cmds["ExecStartPre"]:
        ignore, argv = expand(c, env, cid, str(state_dir))
        r = run(argv)
        assert ignore or r.returncode == 0, r.stderr

    sock_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(sock_path)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.settimeout(20)
    _, argv = expand(cmds["ExecStart"][0], env, cid, str(state_dir))
    main = subprocess.Popen(argv, env=dict(os.environ, NOTIFY_SOCKET=sock_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        msg, anc, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(12))
        creds = array.array("i")
        for level, typ, data in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                creds.frombytes(data[:12])
        assert msg.decode().split("\n")[:2] == ["READY=1", "STATUS=up"]
        assert "MAINPID" not in msg.decode()  # the container's pid means nothing to systemd
        assert creds[0] == main.pid, "READY=1 must come from the unit's main pid (husk run)"
        assert wait_for(lambda: husk.state(cid)["status"] == "running")
        for c in cmds["ExecStop"]:
            ignore, argv = expand(c, env, cid, str(state_dir))
            r = run(argv)
            assert r.returncode == 0, r.stderr
        assert main.wait(timeout=30) == 0, main.stderr.read()
    finally:
        if main.poll() is None:
            main.kill()
            main.wait()
        sock.close()
    for c in cmds["ExecStopPost"]:
        ignore, argv = expand(c, env, cid, str(state_dir))
        run(argv)
    assert husk.cmd("list", "-q").stdout.split() == []


def test_a_home_prefix_installs_husk_its_man_pages_and_user_unit_under_it(tmp_path):
    meson = shutil.which("meson")
    if not meson:
        pytest.skip("meson is not installed")
    home = tmp_path / "home"
    build = tmp_path / "build"
    prefix = home / ".local"
    r = subprocess.run([meson, "setup", str(build), f"--prefix={prefix}", "-Dtests=disabled"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([meson, "introspect", "--installed", str(build)], capture_output=True, text=True, check=True)
    dests = sorted(json.loads(r.stdout).values())
    assert all(d.startswith(str(prefix) + "/") for d in dests), dests
    for want in ("bin/husk", "share/man/man1/husk.1", "share/man/man1/husk-run.1", "share/man/man7/husk-systemd.7",
                 "share/systemd/user/husk@.service", "lib/systemd/system/husk@.service"):
        assert str(prefix / want) in dests, (want, dests)
    # The units name the installed binary.
    unit = open(build / "contrib" / "systemd" / "user" / "husk@.service").read()
    assert f"ExecStart={prefix}/bin/husk run --bundle" in unit
