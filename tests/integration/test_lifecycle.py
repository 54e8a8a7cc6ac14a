"""create / start / run / state / kill / delete / list / ps / pause / resume."""
import json
import os
import signal
import time

from husktest import CGROUP2, wait_for


def test_run_foreground_prints_output_and_returns_exit_status(husk, bundle):
    bundle.set_args("sh", "-c", "echo hello from $(hostname); exit 7")
    r = husk.run()
    assert r.stdout == "hello from husk-test\n"
    assert r.returncode == 7


def test_run_reports_signal_death_as_128_plus_signal(husk, bundle):
    # Without a pid namespace the shell is not an init, which would ignore it.
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "pid"]
    bundle.set_args("sh", "-c", "kill -TERM $$")
    assert husk.run().returncode == 128 + signal.SIGTERM


def test_init_is_pid_1_in_its_pid_namespace(husk, bundle):
    bundle.set_args("sh", "-c", "echo $$")
    assert husk.run().stdout.strip() == "1"


def test_run_removes_the_container_after_it_exits(husk, bundle):
    husk.run(cid="gone")
    assert husk.cmd("list", "-q").stdout == ""


def test_create_start_state_delete(husk, bundle):
    bundle.set_args("sleep", "1000")
    cid = husk.create()
    st = husk.state(cid)
    assert st["status"] == "created"
    assert st["id"] == cid
    assert st["bundle"] == os.path.realpath(bundle.path)
    assert st["pid"] > 0
    # The init waits on exec.fifo: it has not exec'd sleep yet.
    with open(f"/proc/{st['pid']}/cmdline", "rb") as f:
        assert b"sleep" not in f.read()
    husk.cmd("start", cid, check=True)
    assert husk.state(cid)["status"] == "running"
    assert wait_for(lambda: b"sleep" in open(f"/proc/{st['pid']}/cmdline", "rb").read())
    husk.cmd("kill", cid, "KILL", check=True)
    assert wait_for(lambda: husk.state(cid)["status"] == "stopped")
    assert husk.state(cid)["pid"] == 0
    husk.cmd("delete", cid, check=True)
    r = husk.cmd("state", cid)
    assert r.returncode != 0 and "does not exist" in r.stderr


def test_start_twice_is_an_error(husk, bundle):
    bundle.set_args("sleep", "1000")
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    r = husk.cmd("start", cid)
    assert r.returncode != 0
    assert "running" in r.stderr


def test_delete_of_running_container_needs_force(husk, bundle):
    bundle.set_args("sleep", "1000")
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    pid = husk.state(cid)["pid"]
    r = husk.cmd("delete", cid)
    assert r.returncode != 0 and "--force" in r.stderr
    husk.cmd("delete", "--force", cid, check=True)
    assert not os.path.exists(f"/proc/{pid}/cmdline") or wait_for(lambda: not os.path.exists(f"/proc/{pid}/status") or
                                                                  "Z" in open(f"/proc/{pid}/stat").read().split()[2])


def test_delete_of_created_container_kills_its_init(husk, bundle):
    cid = husk.create()
    pid = husk.state(cid)["pid"]
    husk.cmd("delete", cid, check=True)
    def gone():
        try:
            return open(f"/proc/{pid}/stat").read().split(") ")[1][0] in "ZX"
        except FileNotFoundError:
            return True
    assert wait_for(gone)
    assert not os.path.exists(os.path.join(CGROUP2, "husk", cid))


def test_kill_accepts_names_and_numbers(husk, bundle):
    bundle.set_args("sh", "-c", "trap 'echo got USR1 > /tmp/sig' USR1; while true; do sleep 0.05; done")
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    time.sleep(0.3)
    husk.cmd("kill", cid, "USR1", check=True)
    assert wait_for(lambda: husk.cmd("exec", cid, "cat", "/tmp/sig").stdout == "got USR1\n")
    husk.cmd("kill", cid, "9", check=True)
    assert wait_for(lambda: husk.state(cid)["status"] == "stopped")
    r = husk.cmd("kill", cid, "SIGNOPE")
    assert r.returncode != 0


def test_kill_all_reaches_every_process(husk, bundle):
    bundle.set_args("sh", "-c", "sleep 1000 & sleep 1000 & trap '' TERM; wait")
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    assert wait_for(lambda: len(json.loads(husk.cmd("ps", "--format", "json", cid).stdout)) == 3)
    pids = json.loads(husk.cmd("ps", "--format", "json", cid).stdout)
    husk.cmd("kill", "--all", cid, "KILL", check=True)
    assert wait_for(lambda: husk.state(cid)["status"] == "stopped")
    for p in pids:
        assert wait_for(lambda: not os.path.exists(f"/proc/{p}") or open(f"/proc/{p}/stat").read().split(") ")[1][0] == "Z")


def test_list_formats(husk, bundle):
    bundle.set_args("sleep", "1000")
    a = husk.create("la")
    b = husk.create("lb")
    assert husk.cmd("list", "-q").stdout.split() == [a, b]
    entries = json.loads(husk.cmd("list", "--format", "json").stdout)
    assert [e["id"] for e in entries] == [a, b]
    assert all(e["status"] == "created" for e in entries)
    table = husk.cmd("list").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "PID", "STATUS"]


def test_ps_lists_the_containers_processes(husk, bundle):
    bundle.set_args("sh", "-c", "sleep 1000 & wait")
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    assert wait_for(lambda: len(json.loads(husk.cmd("ps", "--format", "json", cid).stdout)) == 2)
    table = husk.cmd("ps", cid, check=True).stdout.splitlines()
    assert "PID" in table[0]
    assert any("sleep 1000" in line for line in table[1:])


def test_pause_freezes_and_resume_thaws(husk, bundle):
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    bundle.set_args("sh", "-c", "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.01; done")
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    pid = husk.state(cid)["pid"]
    def counter():
        return open(f"/proc/{pid}/root/tmp/n").read().strip()
    assert wait_for(lambda: counter() not in ("", "0"))
    husk.cmd("pause", cid, check=True)
    assert husk.state(cid)["status"] == "paused"
    frozen = counter()
    time.sleep(0.3)
    assert counter() == frozen, "a paused container made progress"
    r = husk.cmd("exec", cid, "true")
    assert r.returncode != 0 and "paused" in r.stderr
    husk.cmd("resume", cid, check=True)
    assert husk.state(cid)["status"] == "running"
    assert wait_for(lambda: counter() != frozen)
    r = husk.cmd("resume", cid)
    assert r.returncode != 0 and "only a paused container" in r.stderr


def test_pid_file_holds_the_init_pid(husk, bundle, tmp_path):
    bundle.set_args("sleep", "1000")
    pidfile = tmp_path / "pid"
    cid = husk.create(None, "--pid-file", str(pidfile))
    assert int(pidfile.read_text()) == husk.state(cid)["pid"]


def test_run_detach_leaves_it_running(husk, bundle):
    bundle.set_args("sleep", "1000")
    husk.run("--detach", cid="det")
    assert husk.state("det")["status"] == "running"


def test_container_gets_its_own_cgroup(husk, bundle):
    bundle.set_args("cat", "/proc/self/cgroup")
    cid = husk.new_id()
    r = husk.run(cid=cid)
    # With a cgroup namespace the container sees its own cgroup as the root.
    assert r.stdout.strip().endswith("0::/")
    bundle.set_args("sleep", "1000")
    cid = husk.create()
    pid = husk.state(cid)["pid"]
    procs = open(os.path.join(CGROUP2, "husk", cid, "cgroup.procs")).read().split()
    assert str(pid) in procs
    husk.cmd("delete", "--force", cid, check=True)
    assert not os.path.exists(os.path.join(CGROUP2, "husk", cid))


def test_commands_on_one_container_are_serialised(husk, bundle):
    # Many concurrent state calls while deleting never see a half-removed container.
    import subprocess
    from husktest import HUSK
    bundle.set_args("sleep", "1000")
    cid = husk.create()
    procs = [subprocess.Popen([HUSK, "--root", husk.root, "state", cid], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(10)]
    husk.cmd("delete", "--force", cid, check=True)
    for p in procs:
        out, err = p.communicate()
        if p.returncode == 0:
            assert json.loads(out)["id"] == cid
        else:
            assert "does not exist" in err


def test_run_keep_records_how_the_container_ended(husk, bundle):
    bundle.set_args("sh", "-c", "exit 7")
    cid = husk.new_id()
    assert husk.run("--keep", cid=cid).returncode == 7
    with open(os.path.join(husk.root, cid, "exit")) as f:
        assert f.read().split() == ["exit_code=7", "signal=0", "oom_killed=0"]
    # Not pid 1 of its own namespace, which no signal of its own can kill.
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "pid"]
    bundle.set_args("sh", "-c", "kill -9 $$")
    cid = husk.new_id()
    assert husk.run("--keep", cid=cid).returncode == 137
    with open(os.path.join(husk.root, cid, "exit")) as f:
        assert f.read().split() == ["exit_code=137", "signal=9", "oom_killed=0"]


def test_delete_force_of_a_kept_run_removes_it_while_its_monitor_exits(husk, bundle):
    """`husk run --keep` writes an exit record when its container ends; a
    `delete --force` that kills the container must not race that write (the
    Nomad driver's dangling-container reaper does exactly this): delete
    succeeds and leaves no directory behind, every time."""
    import subprocess
    from husktest import HUSK
    bundle.set_args("sleep", "1000")
    bundle.write()
    for _ in range(15):
        cid = husk.new_id()
        monitor = subprocess.Popen([HUSK, "--root", husk.root, "run", "--keep", "--bundle", bundle.path, cid],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert wait_for(lambda: os.path.exists(os.path.join(husk.root, cid, "state")) and
                            husk.state(cid)["status"] == "running")
            r = husk.cmd("delete", "--force", cid)
            assert r.returncode == 0, r.stderr
            assert monitor.wait(timeout=20) == 137
            assert monitor.stderr.read() == b""
            assert not os.path.exists(os.path.join(husk.root, cid))
        finally:
            if monitor.poll() is None:
                monitor.kill()
                monitor.wait()
            monitor.stderr.close()


def test_delete_after_a_crash_kills_what_is_left_and_removes_the_cgroup(husk, bundle):
    # No pid namespace: the init's children outlive it, as after a crash of
    # the container's init.
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "pid"]
    bundle.set_args("sh", "-c", "sleep 1000 & exec sleep 1001")
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    init = husk.state(cid)["pid"]
    cg = os.path.join(CGROUP2, "husk", cid)
    assert wait_for(lambda: len(open(os.path.join(cg, "cgroup.procs")).read().split()) == 2)
    os.kill(init, signal.SIGKILL)
    assert wait_for(lambda: husk.state(cid)["status"] == "stopped")
    assert len(open(os.path.join(cg, "cgroup.procs")).read().split()) == 1  # the orphaned sleep
    husk.cmd("delete", cid, check=True)
    assert not os.path.exists(cg)
