"""What the container's process sees of process.* and the linux.* knobs."""
import os

import pytest


def caps_mask(names):
    import ctypes
    numbers = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7,
               "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_ADMIN": 21, "CAP_AUDIT_WRITE": 29}
    return sum(1 << numbers[n] for n in names)


def status_field(text, name):
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise KeyError(name)


def test_env_cwd_and_args(husk, bundle):
    bundle.config["process"]["env"].append("GREETING=hi there")
    bundle.config["process"]["cwd"] = "/etc"
    bundle.set_args("sh", "-c", 'echo "$GREETING|$(pwd)|$0|$1"', "zero", "one")
    assert husk.run().stdout == "hi there|/etc|zero|one\n"


def test_command_is_found_in_the_containers_path(husk, bundle):
    bundle.config["process"]["env"] = ["PATH=/bin"]
    bundle.set_args("busybox", "echo", "found")
    assert husk.run().stdout == "found\n"


def test_missing_command_fails_at_create_naming_it(husk, bundle):
    bundle.set_args("no-such-binary")
    r = husk.create(check=False)
    assert r.returncode != 0
    assert '"no-such-binary" not found' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert husk.cmd("list", "-q").stdout == ""


def test_user_groups_and_umask(husk, bundle):
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [2000, 2001], "umask": 0o077}
    bundle.set_args("sh", "-c", "id -u; id -g; id -G; umask")
    out = husk.run().stdout.split("\n")
    assert out[0] == "1000"
    assert out[1] == "1001"
    assert set(out[2].split()) == {"1001", "2000", "2001"}
    assert out[3] == "0077"


def test_capabilities_all_sets(husk, bundle):
    caps = bundle.config["process"]["capabilities"]
    caps["bounding"] = ["CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"]
    caps["effective"] = ["CAP_KILL"]
    caps["permitted"] = ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    caps["inheritable"] = ["CAP_NET_BIND_SERVICE"]
    caps["ambient"] = ["CAP_NET_BIND_SERVICE"]
    bundle.config["process"]["noNewPrivileges"] = False
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.set_args("cat", "/proc/self/status")
    st = husk.run().stdout
    assert int(status_field(st, "CapBnd"), 16) == caps_mask(["CAP_KILL", "CAP_CHOWN", "CAP_NET_BIND_SERVICE"])
    # After exec as a non-root user, only ambient caps survive into E and P.
    assert int(status_field(st, "CapAmb"), 16) == caps_mask(["CAP_NET_BIND_SERVICE"])
    assert int(status_field(st, "CapEff"), 16) == caps_mask(["CAP_NET_BIND_SERVICE"])
    assert int(status_field(st, "CapInh"), 16) == caps_mask(["CAP_NET_BIND_SERVICE"])


def test_root_process_gets_exactly_the_bounding_set(husk, bundle):
    bundle.set_args("cat", "/proc/self/status")
    st = husk.run().stdout
    want = caps_mask(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    assert int(status_field(st, "CapBnd"), 16) == want
    assert int(status_field(st, "CapEff"), 16) == want
    assert status_field(st, "NoNewPrivs") == "1"


def test_no_new_privileges_false(husk, bundle):
    bundle.config["process"]["noNewPrivileges"] = False
    bundle.set_args("cat", "/proc/self/status")
    assert status_field(husk.run().stdout, "NoNewPrivs") == "0"


def test_rlimits(husk, bundle):
    bundle.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                                           {"type": "RLIMIT_NPROC", "soft": 77, "hard": 88}]
    bundle.set_args("sh", "-c", "ulimit -n; ulimit -Hn; ulimit -u")
    assert husk.run().stdout.split() == ["123", "456", "77"]


def test_oom_score_adj(husk, bundle):
    bundle.config["process"]["oomScoreAdj"] = 345
    bundle.set_args("cat", "/proc/self/oom_score_adj")
    assert husk.run().stdout.strip() == "345"


def test_hostname_and_domainname(husk, bundle):
    bundle.config["hostname"] = "box1"
    bundle.config["domainname"] = "example.test"
    bundle.set_args("sh", "-c", "hostname; cat /proc/sys/kernel/domainname")
    assert husk.run().stdout.split() == ["box1", "example.test"]
    assert os.uname().nodename != "box1"


def test_hostname_without_uts_namespace_is_an_error(husk, bundle):
    bundle.config["linux"]["namespaces"] = [n for n in bundle.config["linux"]["namespaces"] if n["type"] != "uts"]
    r = husk.run()
    assert r.returncode != 0
    assert "hostname" in r.stderr and "UTS" in r.stderr


def test_sysctl(husk, bundle):
    bundle.config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "4096"}
    # /proc/sys stays read-only (as podman has it): sysctls go in before that.
    bundle.set_args("sh", "-c", "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax")
    assert husk.run().stdout.split() == ["1", "4096"]


def test_personality_linux32(husk, bundle):
    bundle.config["linux"]["personality"] = {"domain": "LINUX32"}
    bundle.set_args("uname", "-m")
    assert husk.run().stdout.strip() in ("i686", "i386")


def test_io_priority_and_scheduler(husk, bundle):
    bundle.config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_IDLE", "priority": 0}
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 5}
    bundle.set_args("sh", "-c", "cat /proc/self/stat")
    fields = husk.run().stdout.split(") ")[1].split()
    # field 19 (nice) and 41 (policy); index from field 3
    assert fields[19 - 3] == "5"
    assert fields[41 - 3] == "3"  # SCHED_BATCH


def test_only_stdio_fds_reach_the_container(husk, bundle):
    bundle.set_args("ls", "/proc/self/fd")
    # ls itself opens one fd for the directory.
    assert sorted(husk.run().stdout.split(), key=int) == ["0", "1", "2", "3"]


def test_preserve_fds(husk, bundle, tmp_path):
    f = tmp_path / "shared.txt"
    f.write_text("passed through\n")
    fd = os.open(str(f), os.O_RDONLY)
    try:
        # fds 3 and 4 exist only in husk's process (set up in the child).
        def place():
            os.dup2(fd, 3)
            os.dup2(fd, 4)
        bundle.set_args("sh", "-c", "cat <&4; ls /proc/self/fd | wc -l")
        r = husk.run("--preserve-fds", "2", pass_fds=(3, 4), preexec_fn=place)
        assert r.stdout.split("\n")[0] == "passed through", r.stderr
        assert r.stdout.split("\n")[1].strip() == "6"  # 0,1,2,3,4 + ls's own
    finally:
        os.close(fd)


def test_listen_fds_are_passed_with_env(husk, bundle, tmp_path):
    f = tmp_path / "sock.txt"
    f.write_text("socket data\n")
    fd = os.open(str(f), os.O_RDONLY)
    try:
        bundle.set_args("sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; cat <&3")
        env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()))
        r = husk.run(pass_fds=(3,), env=env, preexec_fn=lambda: os.dup2(fd, 3))
        assert r.stdout == "1 1\nsocket data\n", r.stderr
    finally:
        os.close(fd)


def test_memory_policy_and_cpu_affinity(husk, bundle):
    bundle.config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0"}
    bundle.config["process"]["execCPUAffinity"] = {"initial": "0", "final": "0"}
    bundle.set_args("sh", "-c", "grep -E '^(Cpus_allowed_list|Mems_allowed_list)' /proc/self/status; "
                    "grep -c bind /proc/self/numa_maps 2>/dev/null || echo no-numa-maps")
    r = husk.run()
    assert r.returncode == 0, r.stderr
    assert "Cpus_allowed_list:\t0\n" in r.stdout


def test_unsupported_fields_are_refused_not_ignored(husk, bundle):
    bundle.config["linux"]["intelRdt"] = {"closID": "x"}
    r = husk.create(check=False)
    assert r.returncode != 0 and "linux.intelRdt" in r.stderr
    del bundle.config["linux"]["intelRdt"]
    bundle.config["linux"]["netDevices"] = {"eth7": {"name": "eth0"}}
    r = husk.create(check=False)
    assert r.returncode != 0 and "linux.netDevices" in r.stderr
    del bundle.config["linux"]["netDevices"]
    # AppArmor: this host runs none, so a profile is an error naming it and
    # leaves nothing behind; "unconfined" asks for nothing and runs.
    # (tests/vm/test_apparmor.py applies profiles where the kernel has AppArmor.)
    if not os.path.exists("/sys/module/apparmor/parameters/enabled"):
        bundle.config["process"]["apparmorProfile"] = "some-profile"
        r = husk.run()
        assert r.returncode != 0 and 'process.apparmorProfile "some-profile": AppArmor is not enabled' in r.stderr, \
            r.stderr
        assert husk.cmd("list", "-q").stdout.strip() == ""
        bundle.config["process"]["apparmorProfile"] = "unconfined"
        r = husk.run()
        assert r.returncode == 0 and "AppArmor" not in r.stderr, r.stderr


def test_notify_socket_is_passed_through(husk, bundle, tmp_path):
    import socket
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    try:
        bundle.set_args("sh", "-c", "echo $NOTIFY_SOCKET; test -S /run/notify/notify.sock && echo is-socket")
        r = husk.run(env=dict(os.environ, NOTIFY_SOCKET=path))
        assert r.stdout.split() == ["/run/notify/notify.sock", "is-socket"], r.stderr
    finally:
        s.close()


def test_new_session_keyring_unless_no_new_keyring(husk, bundle):
    bundle.config["linux"]["maskedPaths"].remove("/proc/keys")
    # Named after the container, as runc does: /proc/keys also lists keyrings
    # of earlier containers that the kernel has not collected yet.
    cid = husk.new_id()
    bundle.set_args("sh", "-c", f"grep -c ' _ses.{cid}: ' /proc/keys || true")
    assert husk.run(cid=cid).stdout.strip() == "1"
    cid = husk.new_id()
    bundle.set_args("sh", "-c", f"grep -c ' _ses.{cid}: ' /proc/keys || true")
    assert husk.run("--no-new-keyring", cid=cid).stdout.strip() == "0"
