"""Seccomp from linux.seccomp: actions, errnoRet, argument rules, notify."""
import array
import json
import os
import socket
import tempfile
import threading


def profile(default="SCMP_ACT_ALLOW", syscalls=()):
    return {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": list(syscalls)}


def test_errno_with_errno_ret(husk, bundle):
    bundle.config["linux"]["seccomp"] = profile(syscalls=[
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}])
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    bundle.set_args("sh", "-c", "mkdir /tmp/x; echo rc=$?")
    r = husk.run()
    assert "Permission denied" in r.stderr  # errno 13 = EACCES
    assert "rc=1" in r.stdout


def test_default_errno_with_allow_list(husk, bundle):
    # Default deny with EPERM; everything busybox needs to echo is allowed.
    allowed = ["execve", "execveat", "brk", "arch_prctl", "set_tid_address", "exit_group", "exit", "write",
               "writev", "getuid", "geteuid", "getpid", "getppid", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
               "ioctl", "read", "close", "fcntl", "mmap", "munmap", "mprotect", "getcwd", "uname", "prlimit64",
               "newfstatat", "fstat", "openat", "readlink", "stat", "lstat", "access", "faccessat", "faccessat2",
               "sigaltstack", "statx", "set_robust_list", "rseq", "getrandom", "open", "wait4", "getgid", "getegid",
               "setresuid", "setresgid", "setgroups", "capget", "capset", "prctl", "chdir", "getdents64",
               "clone", "clone3", "fork", "vfork", "dup2", "dup3", "lseek", "pipe", "pipe2", "madvise"]
    bundle.config["linux"]["seccomp"] = profile("SCMP_ACT_ERRNO", [{"names": allowed, "action": "SCMP_ACT_ALLOW"}])
    bundle.set_args("sh", "-c", "echo allowed; hostname newname 2>&1 || true")
    r = husk.run()
    assert r.stdout.startswith("allowed")
    assert "Operation not permitted" in r.stdout


def test_kill_process_action(husk, bundle):
    bundle.config["linux"]["seccomp"] = profile(syscalls=[{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}])
    bundle.set_args("sh", "-c", "echo $PPID")  # busybox sh calls getppid at start
    r = husk.run()
    assert r.returncode == 128 + 31  # SIGSYS


def test_argument_rule_masked_eq(husk, bundle):
    # personality(0xffffffff) queries; deny only personality(PER_LINUX32=8).
    bundle.config["linux"]["seccomp"] = profile(syscalls=[
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}])
    bundle.set_args("sh", "-c", "linux32 true; echo rc32=$?; linux64 true; echo rc64=$?")
    out = husk.run().stdout
    assert "rc32=1" in out
    assert "rc64=0" in out


def test_unknown_syscall_names_are_skipped(husk, bundle):
    bundle.config["linux"]["seccomp"] = profile(syscalls=[
        {"names": ["no_such_syscall_2099", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}])
    bundle.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"})
    bundle.set_args("sh", "-c", "mkdir /tmp/y 2>/dev/null; echo rc=$?")
    assert husk.run().stdout.strip() == "rc=1"


def test_notify_listener_receives_the_fd_and_state(husk, bundle):
    d = tempfile.mkdtemp(prefix="husk-seccomp-")
    path = os.path.join(d, "listener.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got = {}

    def accept():
        conn, _ = srv.accept()
        fds = array.array("i")
        data, anc, _, _ = conn.recvmsg(65536, socket.CMSG_LEN(fds.itemsize))
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:fds.itemsize])
        got["state"] = json.loads(data.decode())
        got["fd"] = fds[0] if fds else None
        conn.close()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        sc = profile(syscalls=[{"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_NOTIFY"}])
        sc["listenerPath"] = path
        sc["listenerMetadata"] = "meta-1"
        bundle.config["linux"]["seccomp"] = sc
        bundle.set_args("sleep", "100")
        cid = husk.create()
        t.join(10)
        assert got.get("fd") is not None
        assert got["state"]["fds"] == ["seccompFd"]
        assert got["state"]["metadata"] == "meta-1"
        assert got["state"]["state"]["id"] == cid
        assert got["state"]["pid"] == husk.state(cid)["pid"]
        os.close(got["fd"])
    finally:
        srv.close()
        os.unlink(path)
        os.rmdir(d)
