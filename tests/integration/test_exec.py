"""husk exec: a process in a running container's namespaces and cgroup."""
import json
import os

from husktest import CGROUP2, wait_for
from consolesock import ConsoleSocket


def running(husk, bundle, *args):
    bundle.set_args(*(args or ("sleep", "1000")))
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    return cid


def test_exec_joins_the_containers_namespaces(husk, bundle):
    cid = running(husk, bundle)
    r = husk.cmd("exec", cid, "sh", "-c", "hostname; ps -o pid,comm | grep -c sleep; readlink /proc/1/exe", check=True)
    lines = r.stdout.split()
    assert lines[0] == "husk-test"
    assert lines[1] == "1"  # sees the container's init through its pid namespace
    assert lines[2] == "/bin/busybox"
    init = husk.state(cid)["pid"]
    for ns in ("mnt", "net", "pid", "uts", "ipc", "cgroup"):
        assert os.readlink(f"/proc/{init}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}")


def test_exec_exit_status_env_cwd_user(husk, bundle):
    cid = running(husk, bundle)
    r = husk.cmd("exec", "--env", "FOO=bar", "--cwd", "/etc", "--user", "1234:5678", cid,
                 "sh", "-c", 'echo "$FOO $(pwd) $(id -u) $(id -g)"; exit 3')
    assert r.returncode == 3
    assert r.stdout == "bar /etc 1234 5678\n"


def test_exec_process_runs_in_the_container_cgroup(husk, bundle):
    cid = running(husk, bundle)
    r = husk.cmd("exec", cid, "cat", "/proc/self/cgroup", check=True)
    # (a hybrid host also lists its v1 hierarchies; the v2 line is last)
    assert r.stdout.strip().splitlines()[-1] == "0::/"


def test_exec_detach_with_pid_file(husk, bundle, tmp_path):
    cid = running(husk, bundle)
    pidfile = tmp_path / "exec.pid"
    husk.cmd("exec", "--detach", "--pid-file", str(pidfile), cid, "sleep", "500", check=True)
    pid = int(pidfile.read_text())
    assert wait_for(lambda: b"sleep" in open(f"/proc/{pid}/cmdline", "rb").read())
    assert pid in json.loads(husk.cmd("ps", "--format", "json", cid).stdout)


def test_exec_process_file(husk, bundle, tmp_path):
    cid = running(husk, bundle)
    proc = {"args": ["sh", "-c", "echo $X; pwd"], "env": ["X=from-file", "PATH=/bin"], "cwd": "/tmp",
            "user": {"uid": 0, "gid": 0}}
    (tmp_path / "p.json").write_text(json.dumps(proc))
    r = husk.cmd("exec", "--process", str(tmp_path / "p.json"), cid, check=True)
    assert r.stdout == "from-file\n/tmp\n"


def test_exec_cap_adds_a_capability(husk, bundle):
    cid = running(husk, bundle)
    r = husk.cmd("exec", "--cap", "CAP_CHOWN", cid, "grep", "CapEff", "/proc/self/status", check=True)
    assert int(r.stdout.split()[1], 16) & 1


def test_exec_into_stopped_container_fails(husk, bundle):
    bundle.set_args("true")
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    assert wait_for(lambda: husk.state(cid)["status"] == "stopped")
    r = husk.cmd("exec", cid, "true")
    assert r.returncode != 0 and "stopped" in r.stderr


def test_exec_missing_binary_is_reported(husk, bundle):
    cid = running(husk, bundle)
    r = husk.cmd("exec", cid, "nope-not-here")
    assert r.returncode != 0 and "nope-not-here" in r.stderr


def test_exec_tty_through_console_socket(husk, bundle):
    cid = running(husk, bundle)
    cs = ConsoleSocket()
    try:
        r = husk.cmd("exec", "--tty", "--detach", "--console-socket", cs.path, cid,
                     "sh", "-c", "tty; echo done")
        assert r.returncode == 0, r.stderr
        assert cs.wait_master() is not None
        out = cs.read_all()
        assert "/dev/pts/" in out and "done" in out
    finally:
        cs.close()


def test_terminal_container_through_console_socket(husk, bundle):
    bundle.config["process"]["terminal"] = True
    bundle.config["process"]["consoleSize"] = {"height": 33, "width": 101}
    bundle.set_args("sh", "-c", "tty; stty size; ls -l /dev/console")
    cs = ConsoleSocket()
    try:
        cid = husk.create(None, "--console-socket", cs.path)
        assert cs.wait_master() is not None
        husk.cmd("start", cid, check=True)
        out = cs.read_all()
        assert "/dev/console" in out or "/dev/pts/0" in out
        assert "33 101" in out
    finally:
        cs.close()


def test_terminal_without_console_socket_is_refused_for_create(husk, bundle):
    bundle.config["process"]["terminal"] = True
    r = husk.create(check=False)
    assert r.returncode != 0 and "console-socket" in r.stderr


def test_run_in_the_foreground_with_a_terminal(husk, bundle):
    """No console socket: husk holds the pty master and copies it to its own
    terminal (here a pty the test owns), both ways."""
    import pty
    import select
    from husktest import HUSK
    bundle.config["process"]["terminal"] = True
    bundle.set_args("sh", "-c", "tty; read line; echo got:$line")
    bundle.write()
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(HUSK, [HUSK, "--root", husk.root, "run", "--bundle", bundle.path, husk.new_id()])
    out = b""
    sent = False
    deadline = __import__("time").time() + 20
    while __import__("time").time() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if b"/dev/" in out and not sent:
            os.write(fd, b"hello\n")
            sent = True
        if b"got:hello" in out:
            break
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert b"/dev/pts/0" in out or b"/dev/console" in out, out
    assert b"got:hello" in out, out
    assert os.waitstatus_to_exitcode(status) == 0


def test_exec_no_new_privs_and_preserve_fds(husk, bundle, tmp_path):
    bundle.config["process"]["noNewPrivileges"] = False
    cid = running(husk, bundle)
    r = husk.cmd("exec", cid, "grep", "NoNewPrivs", "/proc/self/status", check=True)
    assert r.stdout.split()[1] == "0"
    r = husk.cmd("exec", "--no-new-privs", cid, "grep", "NoNewPrivs", "/proc/self/status", check=True)
    assert r.stdout.split()[1] == "1"
    f = tmp_path / "fd.txt"
    f.write_text("through exec\n")
    fd = os.open(str(f), os.O_RDONLY)
    try:
        r = husk.cmd("exec", "--preserve-fds", "1", cid, "sh", "-c", "cat <&3", pass_fds=(3,),
                     preexec_fn=lambda: os.dup2(fd, 3))
        assert r.stdout == "through exec\n", r.stderr
    finally:
        os.close(fd)
