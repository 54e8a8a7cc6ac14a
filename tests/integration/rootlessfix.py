"""The unprivileged test user, for every test that runs husk or husk-image
rootless: the session fixture `rootless_user` adds the user `husk-test`
(unless it exists) and a 65536-id range for it in /etc/subuid and
/etc/subgid, above every range there; both are removed afterwards, so the
machine is left as found. conftest.py makes the fixture visible to every
test file."""
import os
import pwd
import shutil
import subprocess

import pytest

USER = "husk-test"
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


@pytest.fixture(scope="session")
def rootless_user():
    if os.geteuid() != 0:
        pytest.skip("needs root to add a user and its /etc/subuid range")
    if not os.path.exists(SETPRIV):
        pytest.skip("setpriv (util-linux) is not installed")
    created = False
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "--user-group",
                        USER], check=True)
        created = True
        pw = pwd.getpwnam(USER)
    # A range nobody else has: above every range in either file.
    start = max([300000] + [s + c for f in ("/etc/subuid", "/etc/subgid") for s, c in _ranges(f)])
    line = f"{USER}:{start}:{RANGE}\n"
    originals = {}
    for f in ("/etc/subuid", "/etc/subgid"):
        with open(f) as fh:
            originals[f] = fh.read()
        with open(f, "a") as fh:
            fh.write(line)
    try:
        if not _unprivileged_userns_works(pw.pw_uid, pw.pw_gid):
            pytest.skip("this kernel does not allow unprivileged user namespaces")
        yield RootlessUser(USER, pw.pw_uid, pw.pw_gid, start)
    finally:
        for f, text in originals.items():
            with open(f) as fh:
                now = fh.read()
            with open(f, "w") as fh:
                fh.write(now.replace(line, "", 1) if line in now else text)
        if created:
            subprocess.run(["userdel", USER], check=False)
