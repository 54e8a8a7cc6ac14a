"""The unprivileged test user, for every test that runs husk or husk-image
rootless: the session fixture `rootless_user` adds a user of its own,
`husk-test-<pid of the pytest session>`, and a 65536-id range for it in
/etc/subuid and /etc/subgid, above every range there; both are removed
afterwards, so the machine is left as found. Sessions running at once
(two checkouts, CI and a developer) each get their own user and range: the
files are changed under a lock, and a session that died without cleaning
up has its user and lines removed by the next one. conftest.py makes the
fixture visible to every test file."""
import fcntl
import os
import pwd
import re
import shutil
import subprocess
import tempfile

import pytest

USER_PREFIX = "husk-test-"
LOCK = "/run/lock/husk-test-subids.lock"
RANGE = 65536
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"


def _ranges(path):
    out = []
    with open(path) as f:
        for line in f:
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                out.append((int(parts[1]), int(parts[2])))
    return out


def _unprivileged_userns_works(uid, gid):
    r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups", "unshare", "-U", "true"],
                       capture_output=True)
    return r.returncode == 0


class RootlessUser:
    def __init__(self, name, uid, gid, start):
        self.name, self.uid, self.gid, self.start = name, uid, gid, start


def _drop_lines(path, names):
    with open(path) as fh:
        lines = fh.readlines()
    kept = [l for l in lines if l.split(":", 1)[0] not in names]
    if kept != lines:
        with open(path, "w") as fh:
            fh.writelines(kept)


def _of_a_dead_session(name):
    m = re.fullmatch(re.escape(USER_PREFIX) + r"(\d+)", name)
    return bool(m) and not os.path.exists(f"/proc/{m.group(1)}")


def _reap_dead_sessions():
    """Users and ranges of test sessions whose process is gone."""
    dead = {p.pw_name for p in pwd.getpwall() if _of_a_dead_session(p.pw_name)}
    for f in ("/etc/subuid", "/etc/subgid"):
        with open(f) as fh:
            dead |= {line.split(":", 1)[0] for line in fh if _of_a_dead_session(line.split(":", 1)[0])}
    for f in ("/etc/subuid", "/etc/subgid"):
        _drop_lines(f, dead)
    for name in dead:
        subprocess.run(["userdel", name], capture_output=True)


class _Locked:
    def __enter__(self):
        os.makedirs(os.path.dirname(LOCK), exist_ok=True)
        self.fd = os.open(LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc):
        os.close(self.fd)


@pytest.fixture(scope="session")
def rootless_user():
    if os.geteuid() != 0:
        pytest.skip("needs root to add a user and its /etc/subuid range")
    if not os.path.exists(SETPRIV):
        pytest.skip("setpriv (util-linux) is not installed")
    name = f"{USER_PREFIX}{os.getpid()}"
    with _Locked():
        _reap_dead_sessions()
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group",
                        name], check=True)
        pw = pwd.getpwnam(name)
        # A range nobody else has: above every range in either file.
        start = max([300000] + [s + c for f in ("/etc/subuid", "/etc/subgid") for s, c in _ranges(f)])
        for f in ("/etc/subuid", "/etc/subgid"):
            with open(f, "a") as fh:
                fh.write(f"{name}:{start}:{RANGE}\n")
    try:
        if not _unprivileged_userns_works(pw.pw_uid, pw.pw_gid):
            pytest.skip("this kernel does not allow unprivileged user namespaces")
        yield RootlessUser(name, pw.pw_uid, pw.pw_gid, start)
    finally:
        with _Locked():
            for f in ("/etc/subuid", "/etc/subgid"):
                _drop_lines(f, {name})
            subprocess.run(["userdel", name], check=False)


@pytest.fixture
def rootless_base(rootless_user):
    """A directory the test user owns under /tmp (pytest's tmp dirs are
    0700 root). Whatever a failed test left there goes as root, mounts
    included (root may remove the sub-ids' files)."""
    b = tempfile.mkdtemp(prefix="husk-rootless-", dir="/tmp")
    os.chmod(b, 0o755)
    os.chown(b, rootless_user.uid, rootless_user.gid)
    yield b
    subprocess.run(["umount", "-R", "-l", b], capture_output=True)
    shutil.rmtree(b, ignore_errors=True)
