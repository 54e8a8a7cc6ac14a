"""husk as an unprivileged user: id maps from /etc/subuid and /etc/subgid
through newuidmap/newgidmap, the single-id map without them, the rootless
filesystem rules, running without a cgroup, and what such a container still
cannot do on the host.

The session fixture `rootless_user` (rootlessfix.py, shared through
conftest.py) adds a user of its own (`husk-test-<pid>`) and a 65536-id
range for it in /etc/subuid and /etc/subgid; both are removed afterwards,
so the machine is left as found. husk runs as that user through
`setpriv --reuid --regid --init-groups`, with its own $XDG_RUNTIME_DIR, on a
bundle in a directory the user can reach (pytest's are 0700 root)."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from husktest import BASE_CONFIG, HUSK, kill_stray_children, mount_points, reap_orphans, run_captured, wait_for
from rootlessfix import RANGE, SETPRIV

# A PATH with everything husk's tests need but newuidmap/newgidmap (Debian
# has them in /usr/bin only): "uidmap is not installed", honestly.
PATH_WITHOUT_HELPERS = "/usr/sbin"


class RootlessHusk:
    """husk run as the test user, state in its own $XDG_RUNTIME_DIR."""

    def __init__(self, user, base, template):
        self.user = user
        self.base = base
        self.xdg = os.path.join(base, "xdg")
        os.mkdir(self.xdg, 0o700)
        os.chown(self.xdg, user.uid, user.gid)
        self.bundle_path = os.path.join(base, "bundle")
        os.mkdir(self.bundle_path, 0o755)
        shutil.copytree(template, os.path.join(self.bundle_path, "rootfs"), symlinks=True)
        self.chown_tree(self.bundle_path)
        self.config = rootless_config(user)
        self.path = None  # PATH for husk; None: the test's own
        self._n = 0

    @property
    def rootfs(self):
        return os.path.join(self.bundle_path, "rootfs")

    @property
    def state_root(self):
        return os.path.join(self.xdg, "husk")

    def chown_tree(self, top, uid=None, gid=None):
        uid = self.user.uid if uid is None else uid
        gid = self.user.gid if gid is None else gid
        for d, dirs, files in os.walk(top):
            os.lchown(d, uid, gid)
            for n in dirs + files:
                os.lchown(os.path.join(d, n), uid, gid)

    def new_id(self):
        self._n += 1
        return f"rl{os.getpid()}-{self._n}"

    def env(self, **extra):
        e = {"XDG_RUNTIME_DIR": self.xdg, "PATH": self.path or os.environ.get("PATH", "/usr/bin:/bin"),
             "HOME": self.base}
        e.update(extra)
        return {k: v for k, v in e.items() if v is not None}

    def argv(self, *args):
        return [SETPRIV, f"--reuid={self.user.uid}", f"--regid={self.user.gid}", "--init-groups", HUSK, *args]

    def cmd(self, *args, timeout=60, check=False, env=None):
        return run_captured(self.argv(*args), timeout=timeout, check=check,
                            env=env if env is not None else self.env(), cwd=self.base)

    def write(self, config=None):
        path = os.path.join(self.bundle_path, "config.json")
        with open(path, "w") as f:
            json.dump(config if config is not None else self.config, f, indent=1)
        os.chown(path, self.user.uid, self.user.gid)

    def run(self, *args, cid=None, **kw):
        self.write()
        return self.cmd("run", "--bundle", self.bundle_path, *args, cid or self.new_id(), **kw)

    def sh(self, script, **kw):
        self.config["process"]["args"] = ["sh", "-c", script]
        return self.run(**kw)

    def delete_all(self):
        r = self.cmd("list", "-q")
        for cid in r.stdout.split():
            self.cmd("delete", "--force", cid)


def rootless_config(user):
    cfg = json.loads(json.dumps(BASE_CONFIG))
    cfg["linux"]["namespaces"].append({"type": "user"})
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": user.uid, "size": 1},
                                   {"containerID": 1, "hostID": user.start, "size": RANGE}]
    cfg["linux"]["gidMappings"] = [{"containerID": 0, "hostID": user.gid, "size": 1},
                                   {"containerID": 1, "hostID": user.start, "size": RANGE}]
    return cfg


@pytest.fixture
def rl(rootless_user, rootfs_template):
    before = mount_points()
    base = tempfile.mkdtemp(prefix="husk-rootless-", dir="/tmp")
    os.chmod(base, 0o755)
    h = RootlessHusk(rootless_user, base, rootfs_template)
    try:
        yield h
        h.delete_all()
        leftover = os.listdir(h.state_root) if os.path.isdir(h.state_root) else []
        procs = kill_stray_children()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert leftover == [], f"state directories left behind: {leftover}"
    assert procs == [], f"processes left behind: {procs}"
    assert mount_points() == before, "mounts leaked into the host mount namespace"


def all_caps():
    caps = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID",
            "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_NET_ADMIN", "CAP_SYS_PTRACE", "CAP_MKNOD"]
    return {k: list(caps) for k in ("bounding", "effective", "permitted")}


def test_id_inside_is_0_mapped_to_the_user(rl):
    r = rl.sh("id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map")
    assert r.returncode == 0, r.stderr
    lines = [l.split() for l in r.stdout.splitlines()]
    assert lines[0] == ["0"] and lines[1] == ["0"]
    assert lines[2] == ["0", str(rl.user.uid), "1"]
    assert lines[3] == ["1", str(rl.user.start), str(RANGE)]
    assert lines[4] == ["0", str(rl.user.gid), "1"]
    assert lines[5] == ["1", str(rl.user.start), str(RANGE)]
    # State went to $XDG_RUNTIME_DIR/husk, owned by the user.
    assert os.stat(rl.state_root).st_uid == rl.user.uid


def test_the_full_range_shows_files_owned_by_mapped_ids(rl):
    f = os.path.join(rl.rootfs, "tmp", "mapped")
    open(f, "w").close()
    os.chown(f, rl.user.start + 999, rl.user.start + 41)   # container 1000:42
    g = os.path.join(rl.rootfs, "tmp", "unmapped")
    open(g, "w").close()
    os.chown(g, 0, 0)                                        # host root: not in the map
    r = rl.sh("ls -ln /tmp/mapped /tmp/unmapped /bin/busybox")
    assert r.returncode == 0, r.stderr
    owners = {l.split()[-1]: (l.split()[2], l.split()[3]) for l in r.stdout.splitlines()}
    assert owners["/tmp/mapped"] == ("1000", "42")
    assert owners["/tmp/unmapped"] == ("65534", "65534")  # the overflow id
    assert owners["/bin/busybox"] == ("0", "0")           # the user's own files are root's inside


def test_container_root_cannot_write_a_root_owned_host_file(rl):
    d = os.path.join(rl.base, "hostdir")
    os.mkdir(d, 0o755)
    secret = os.path.join(d, "root-owned")
    with open(secret, "w") as f:
        f.write("host\n")
    os.chmod(secret, 0o644)
    rl.config["process"]["capabilities"] = all_caps()
    rl.config["mounts"].append({"destination": "/host", "type": "bind", "source": d, "options": ["rbind"]})
    r = rl.sh("echo container > /host/root-owned && echo WROTE; chmod 666 /host/root-owned && echo CHMOD; "
              "chown 0 /host/root-owned && echo CHOWN; ls -ln /host/root-owned")
    assert r.returncode == 0, r.stderr
    assert "WROTE" not in r.stdout and "CHMOD" not in r.stdout and "CHOWN" not in r.stdout
    assert " 65534 " in r.stdout  # host root is nobody in here
    assert open(secret).read() == "host\n"
    assert os.stat(secret).st_mode & 0o777 == 0o644


def test_container_root_cannot_change_a_host_sysctl(rl):
    knob = "/proc/sys/vm/overcommit_ratio"
    before = open(knob).read().strip()
    other = str(int(before) + 1)
    rl.config["process"]["capabilities"] = all_caps()
    rl.config["linux"]["readonlyPaths"] = []
    r = rl.sh(f"echo {other} > {knob} && echo CHANGED; cat {knob}")
    assert "CHANGED" not in r.stdout
    assert open(knob).read().strip() == before
    # Asked for in the spec, it is an error naming the key.
    rl.config["linux"]["sysctl"] = {"vm.overcommit_ratio": other}
    r = rl.sh("true")
    assert r.returncode != 0 and "linux.sysctl.vm.overcommit_ratio" in r.stderr, r.stderr
    assert open(knob).read().strip() == before


def test_exec_and_kill_work_rootless(rl):
    rl.config["process"]["args"] = ["sleep", "1000"]
    cid = rl.new_id()
    rl.write()
    r = rl.cmd("run", "--detach", "--bundle", rl.bundle_path, cid)
    assert r.returncode == 0, r.stderr
    st = json.loads(rl.cmd("state", cid, check=True).stdout)
    assert st["status"] == "running"
    r = rl.cmd("exec", cid, "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:4] == ["0", "0", str(rl.user.uid), "1"]
    assert rl.cmd("kill", cid, "KILL").returncode == 0
    assert wait_for(lambda: json.loads(rl.cmd("state", cid).stdout)["status"] == "stopped")
    assert rl.cmd("delete", cid).returncode == 0
    assert rl.cmd("list", "-q").stdout.split() == []


def test_exec_sets_the_processes_oom_score_adj_rootless(rl):
    """exec writes oom_score_adj before it joins the container's user
    namespace, while still dumpable: a non-dumpable process's /proc/self
    files belong to the host's root, and the write failed with EACCES."""
    rl.config["process"]["args"] = ["sleep", "1000"]
    rl.config["process"]["oomScoreAdj"] = 500
    cid = rl.new_id()
    rl.write()
    r = rl.cmd("run", "--detach", "--bundle", rl.bundle_path, cid)
    assert r.returncode == 0, r.stderr
    r = rl.cmd("exec", cid, "cat", "/proc/self/oom_score_adj")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "500"
    assert rl.cmd("kill", cid, "KILL").returncode == 0
    assert wait_for(lambda: json.loads(rl.cmd("state", cid).stdout)["status"] == "stopped")
    assert rl.cmd("delete", cid).returncode == 0


def test_the_single_id_map_works_without_uidmap(rl):
    rl.path = PATH_WITHOUT_HELPERS
    assert shutil.which("newuidmap", path=PATH_WITHOUT_HELPERS) is None
    # `husk spec --rootless` falls back to the one id it can map by itself.
    os.remove(os.path.join(rl.bundle_path, "config.json")) if os.path.exists(
        os.path.join(rl.bundle_path, "config.json")) else None
    rl.cmd("spec", "--rootless", "-b", rl.bundle_path, check=True)
    with open(os.path.join(rl.bundle_path, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": rl.user.uid, "size": 1}]
    assert cfg["linux"]["gidMappings"] == [{"containerID": 0, "hostID": rl.user.gid, "size": 1}]
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "id -u; cat /proc/self/uid_map; cat /proc/self/setgroups"]
    rl.config = cfg
    r = rl.run()
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[:4] == ["0", "0", str(rl.user.uid), "1"] and out[4] == "deny"
    # A wider map needs the helper, and the error says which and why.
    rl.config = rootless_config(rl.user)
    r = rl.sh("true")
    assert r.returncode != 0
    assert "linux.uidMappings: mapping ids from /etc/subuid needs newuidmap, which is not in PATH" in r.stderr, r.stderr


def test_spec_rootless_maps_the_users_range_and_runs(rl):
    os.remove(os.path.join(rl.bundle_path, "config.json")) if os.path.exists(
        os.path.join(rl.bundle_path, "config.json")) else None
    rl.cmd("spec", "--rootless", "-b", rl.bundle_path, check=True)
    with open(os.path.join(rl.bundle_path, "config.json")) as f:
        cfg = json.load(f)
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": rl.user.uid, "size": 1},
                                           {"containerID": 1, "hostID": rl.user.start, "size": RANGE}]
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["sh", "-c", "cat /proc/self/uid_map | wc -l"]
    rl.config = cfg
    r = rl.run()
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2"


def test_a_range_the_user_does_not_own_is_an_error_naming_it(rl):
    rl.config["linux"]["uidMappings"][1]["hostID"] = 100000
    r = rl.sh("true")
    assert r.returncode != 0
    assert (f'linux.uidMappings[1]: host ids 100000-165535 are not in /etc/subuid for user "{rl.user.name}" '
            f"(it has {rl.user.start}-{rl.user.start + RANGE - 1}") in r.stderr, r.stderr
    rl.config = rootless_config(rl.user)
    rl.config["linux"]["gidMappings"][0]["hostID"] = 0
    r = rl.sh("true")
    assert r.returncode != 0 and "linux.gidMappings[0]: host ids 0-0 are not in /etc/subgid" in r.stderr, r.stderr
    assert rl.cmd("list", "-q").stdout.split() == []


def test_keep_id_maps_the_users_uid_to_itself(rl):
    u, g, s = rl.user.uid, rl.user.gid, rl.user.start
    rl.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": s, "size": u},
                                         {"containerID": u, "hostID": u, "size": 1},
                                         {"containerID": u + 1, "hostID": s + u, "size": RANGE - u}]
    rl.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": s, "size": g},
                                         {"containerID": g, "hostID": g, "size": 1},
                                         {"containerID": g + 1, "hostID": s + g, "size": RANGE - g}]
    rl.config["process"]["user"] = {"uid": u, "gid": g}
    d = os.path.join(rl.base, "work")
    os.mkdir(d, 0o755)
    os.chown(d, u, g)
    rl.config["mounts"].append({"destination": "/work", "type": "bind", "source": d, "options": ["rbind"]})
    r = rl.sh("id -u; id -g; touch /work/made-inside; ls -ln /work/made-inside")
    assert r.returncode == 0, r.stderr
    out = r.stdout.split()
    assert out[:2] == [str(u), str(g)]
    st = os.stat(os.path.join(d, "made-inside"))
    assert (st.st_uid, st.st_gid) == (u, g)  # the host sees the user's own file


def test_idmapped_bind_mount_rootless_is_refused_clearly_or_works(rl):
    d = os.path.join(rl.base, "idm")
    os.mkdir(d, 0o755)
    os.chown(d, rl.user.start + 5, rl.user.start + 5)
    rl.config["mounts"].append({"destination": "/idm", "type": "bind", "source": d, "options": ["rbind", "idmap"],
                                "uidMappings": [{"containerID": 0, "hostID": rl.user.start + 5, "size": 1}],
                                "gidMappings": [{"containerID": 0, "hostID": rl.user.start + 5, "size": 1}]})
    r = rl.sh("ls -lnd /idm")
    if r.returncode == 0:
        assert r.stdout.split()[2:4] == ["0", "0"]
    else:
        # The host filesystem belongs to the initial user namespace: only its
        # root may idmap it. The error says so and names the mount.
        assert 'mounts[6]' in r.stderr and "a rootless container cannot idmap a host directory" in r.stderr, r.stderr


def test_rootless_filesystem_rules(rl):
    """No network namespace: sysfs is the host's, bound read-only; device
    nodes are bound from the host, not made; masked paths still apply."""
    rl.config["linux"]["namespaces"] = [n for n in rl.config["linux"]["namespaces"] if n["type"] != "network"]
    rl.config["linux"]["devices"] = [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]
    rl.config["process"]["capabilities"] = all_caps()
    r = rl.sh("grep -E ' /sys | /dev/null | /dev/fuse ' /proc/self/mountinfo; "
              "echo x > /dev/null && echo NULL-OK; ls -ln /dev/null; "
              "mknod /tmp/n c 1 3 && echo MKNOD; wc -c < /proc/keys; ls /sys/firmware | wc -l; "
              "touch /sys/x 2>/dev/null && echo SYS-WRITABLE; true")
    assert r.returncode == 0, r.stderr
    mi = [l.split() for l in r.stdout.splitlines() if " - " in l]
    by_target = {l[4]: l for l in mi}
    assert "/sys" in by_target and "ro" in by_target["/sys"][5].split(",")
    assert by_target["/sys"][3] == "/"  # the host's sysfs, bound
    assert "/dev/null" in by_target and "/dev/fuse" in by_target
    assert "NULL-OK" in r.stdout
    assert "MKNOD" not in r.stdout
    lines = r.stdout.splitlines()
    assert "0" in lines  # /proc/keys is /dev/null; /sys/firmware is empty
    assert "SYS-WRITABLE" not in r.stdout


def test_without_a_delegated_cgroup_it_warns_once_and_a_limit_is_an_error(rl):
    r = rl.sh("cat /proc/self/cgroup")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("rootless: running without a cgroup") == 1, r.stderr
    rl.config["linux"]["resources"] = {"pids": {"limit": 0}}  # podman's "no limit" asks for nothing
    assert rl.sh("true").returncode == 0
    rl.config["linux"]["resources"] = {"memory": {"limit": 64 << 20}}
    r = rl.sh("true")
    assert r.returncode != 0
    assert "linux.resources.memory.limit: a rootless container has no cgroup to apply this limit to" in r.stderr
    assert rl.cmd("list", "-q").stdout.split() == []


def test_pause_without_a_cgroup_says_why(rl):
    rl.config["process"]["args"] = ["sleep", "1000"]
    cid = rl.new_id()
    rl.write()
    assert rl.cmd("run", "--detach", "--bundle", rl.bundle_path, cid).returncode == 0
    r = rl.cmd("pause", cid)
    assert r.returncode != 0 and "has no cgroup" in r.stderr, r.stderr
    assert rl.cmd("delete", "--force", cid).returncode == 0


def test_a_spec_without_a_user_namespace_gets_one(rl):
    rl.config = json.loads(json.dumps(BASE_CONFIG))
    r = rl.sh("id -u; cat /proc/self/uid_map")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "0", str(rl.user.uid), "1"]
    assert "linux.namespaces has no user namespace: added one" in r.stderr
    # exec joins the added user namespace too (the saved config.json has none).
    rl.config["process"]["args"] = ["sleep", "1000"]
    cid = rl.new_id()
    rl.write()
    assert rl.cmd("run", "--detach", "--bundle", rl.bundle_path, cid).returncode == 0
    r = rl.cmd("exec", cid, "cat", "/proc/self/uid_map")
    assert r.returncode == 0 and r.stdout.split() == ["0", str(rl.user.uid), "1"], r.stderr
    assert rl.cmd("delete", "--force", cid).returncode == 0


def test_state_root_needs_a_runtime_dir_the_user_owns(rl):
    r = rl.cmd("list", env=rl.env(XDG_RUNTIME_DIR=None))
    assert r.returncode != 0 and "XDG_RUNTIME_DIR is not set" in r.stderr, r.stderr
    r = rl.cmd("list", env=rl.env(XDG_RUNTIME_DIR="/tmp"))
    assert r.returncode != 0 and "XDG_RUNTIME_DIR /tmp is owned by uid 0, not by the caller" in r.stderr, r.stderr


def test_seccomp_hooks_and_console_socket_work_rootless(rl):
    from consolesock import ConsoleSocket
    rl.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    # One script for every hook, in a directory bound into the container at
    # the same path: createContainer and startContainer run in the
    # container's namespaces and find it (and the log) there too.
    hookdir = os.path.join(rl.base, "hooks")
    os.mkdir(hookdir, 0o755)
    log = os.path.join(hookdir, "hooks.log")
    hook = os.path.join(hookdir, "hook.sh")
    with open(hook, "w") as f:
        f.write(f"#!/bin/sh\nread -r state; echo \"$1 $(id -u)\" >> {log}\n")
    os.chmod(hook, 0o755)
    open(log, "w").close()
    os.chown(log, rl.user.uid, rl.user.gid)
    kinds = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
    rl.config["hooks"] = {k: [{"path": hook, "args": ["hook.sh", k]}] for k in kinds}
    rl.config["mounts"].append({"destination": hookdir, "type": "bind", "source": hookdir, "options": ["rbind"]})
    rl.config["process"]["terminal"] = True
    cs = ConsoleSocket()
    os.chmod(cs.dir, 0o755)
    os.chmod(cs.path, 0o777)
    try:
        rl.config["process"]["args"] = ["sh", "-c", "mkdir /tmp/x 2>&1; test -t 0 && echo on-a-tty; sleep 1000"]
        cid = rl.new_id()
        rl.write()
        r = rl.cmd("run", "--detach", "--console-socket", cs.path, "--bundle", rl.bundle_path, cid)
        assert r.returncode == 0, r.stderr
        assert cs.wait_master() is not None
        out = cs.read_all(timeout=5)
        assert "Permission denied" in out and "on-a-tty" in out, out
        assert rl.cmd("delete", "--force", cid).returncode == 0
    finally:
        cs.close()
    # In the OCI order; the runtime's hooks as the user on the host, the
    # container's as its root.
    u = str(rl.user.uid)
    assert open(log).read().split() == ["prestart", u, "createRuntime", u, "createContainer", "0",
                                        "startContainer", "0", "poststart", u, "poststop", u]


def cap_mask(names):
    bits = {"CAP_CHOWN": 0, "CAP_KILL": 5, "CAP_NET_BIND_SERVICE": 10, "CAP_SYS_ADMIN": 21}
    return sum(1 << bits[n] for n in names)


def caps_of(status_text):
    return {l.split(":")[0]: int(l.split()[1], 16) for l in status_text.splitlines() if l.startswith("Cap")}


def test_capabilities_are_the_specs_in_run_and_exec(rl):
    """The init and an exec'd process get exactly the spec's sets (in the
    container's user namespace), exec --cap adds one for that process only."""
    want = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    rl.config["process"]["capabilities"] = {k: list(want) for k in ("bounding", "effective", "permitted")}
    rl.config["process"]["args"] = ["sleep", "1000"]
    cid = rl.new_id()
    rl.write()
    assert rl.cmd("run", "--detach", "--bundle", rl.bundle_path, cid).returncode == 0
    init = caps_of(rl.cmd("exec", cid, "cat", "/proc/1/status", check=True).stdout)
    assert init["CapBnd"] == init["CapPrm"] == init["CapEff"] == cap_mask(want), init
    assert init["CapInh"] == 0 and init["CapAmb"] == 0, init
    ex = caps_of(rl.cmd("exec", cid, "cat", "/proc/self/status", check=True).stdout)
    assert ex["CapBnd"] == ex["CapEff"] == cap_mask(want), ex
    ex = caps_of(rl.cmd("exec", "--cap", "CAP_SYS_ADMIN", cid, "cat", "/proc/self/status", check=True).stdout)
    assert ex["CapEff"] == cap_mask(want + ["CAP_SYS_ADMIN"]), ex
    # An unknown capability is refused, naming it.
    r = rl.cmd("exec", "--cap", "CAP_NOPE", cid, "true")
    assert r.returncode != 0 and "CAP_NOPE" in r.stderr, r.stderr
    assert rl.cmd("delete", "--force", cid).returncode == 0


def test_kill_all_without_a_cgroup_signals_the_init_and_exec_gets_a_terminal(rl):
    from consolesock import ConsoleSocket
    rl.config["process"]["args"] = ["sleep", "1000"]
    cid = rl.new_id()
    rl.write()
    r = rl.cmd("run", "--detach", "--bundle", rl.bundle_path, cid)
    assert r.returncode == 0 and "running without a cgroup" in r.stderr, r.stderr
    cs = ConsoleSocket()
    os.chmod(cs.dir, 0o755)
    os.chmod(cs.path, 0o777)
    try:
        r = rl.cmd("exec", "--tty", "--detach", "--console-socket", cs.path, cid, "sh", "-c", "tty; echo exec-done")
        assert r.returncode == 0, r.stderr
        assert cs.wait_master() is not None
        out = cs.read_all(timeout=5)
        assert "/dev/pts/" in out and "exec-done" in out, out
    finally:
        cs.close()
    assert rl.cmd("kill", "--all", cid, "KILL").returncode == 0
    assert wait_for(lambda: json.loads(rl.cmd("state", cid).stdout)["status"] == "stopped")
    assert rl.cmd("delete", cid).returncode == 0


def test_podman_rootless_with_husk_as_its_runtime(rl):
    """podman as the user, its own user namespace from the subuid range, husk
    run inside it as that namespace's root (rootless all the same)."""
    podman = shutil.which("podman")
    if not podman:
        pytest.skip("podman is installed by tools/install-deps")
    home = os.path.join(rl.base, "home")
    os.mkdir(home, 0o700)
    os.chown(home, rl.user.uid, rl.user.gid)
    tar = os.path.join(rl.base, "rootfs.tar")
    subprocess.run(["tar", "-C", rl.rootfs, "-cf", tar, "."], check=True)
    os.chmod(tar, 0o644)
    env = rl.env(HOME=home)

    def pod(*args, timeout=120):
        argv = [SETPRIV, f"--reuid={rl.user.uid}", f"--regid={rl.user.gid}", "--init-groups", podman,
                "--storage-driver", "vfs", "--runtime", HUSK, *args]
        return run_captured(argv, timeout=timeout, env=env, cwd=rl.base)

    try:
        assert pod("import", tar, "localhost/husk-busybox:latest").returncode == 0
        r = pod("run", "--rm", "--network", "none", "localhost/husk-busybox", "sh", "-c",
                "echo hello; id -u; cat /proc/self/uid_map")
        assert r.returncode == 0, r.stderr
        out = r.stdout.split()
        assert out[:2] == ["hello", "0"]
        assert out[2:8] == ["0", str(rl.user.uid), "1", "1", str(rl.user.start), str(RANGE)]
        cid = pod("run", "-d", "--network", "none", "localhost/husk-busybox", "sleep", "1000").stdout.strip()
        assert cid
        r = pod("exec", cid, "sh", "-c", "echo in-exec")
        assert r.stdout.strip() == "in-exec", r.stderr
        assert pod("rm", "-f", "-t", "0", cid).returncode == 0
        # --userns=keep-id: the user is themselves in the container.
        r = pod("run", "--rm", "--network", "none", "--userns=keep-id", "localhost/husk-busybox", "id", "-u")
        assert r.returncode == 0 and r.stdout.strip() == str(rl.user.uid), r.stderr
        assert pod("ps", "-a", "-q").stdout.strip() == ""
    finally:
        pod("rm", "-a", "-f", "-t", "0")
        # Rootless podman keeps a pause process holding its user namespace.
        for d, _, files in os.walk(rl.xdg):
            if "pause.pid" in files:
                try:
                    os.kill(int(open(os.path.join(d, "pause.pid")).read().strip()), signal.SIGKILL)
                except (ValueError, ProcessLookupError):
                    pass
        time.sleep(0.2)
        reap_orphans()
        subprocess.run(["rm", "-rf", home])


def test_start_of_a_short_process_is_not_taken_for_one_that_died_before_start(rl):
    """`start` opened exec.fifo before looking at the process: /bin/true could
    run and exit in between, and start said "exited before start" (about one
    start in eight here, single-id map)."""
    rl.config = rootless_config(rl.user)
    rl.config["linux"]["uidMappings"] = rl.config["linux"]["uidMappings"][:1]
    rl.config["linux"]["gidMappings"] = rl.config["linux"]["gidMappings"][:1]
    rl.config["process"]["args"] = ["true"]
    rl.write()
    for i in range(40):
        cid = rl.new_id()
        r = rl.cmd("create", "--bundle", rl.bundle_path, cid)
        assert r.returncode == 0, r.stderr
        r = rl.cmd("start", cid)
        assert r.returncode == 0, f"start #{i}: {r.stderr}"
        assert rl.cmd("delete", "--force", cid).returncode == 0
