"""nomad-driver-husk (podman flavor) task config fields, checked inside the
running container: driver-probe (tests/driver/driver_probe.cc) plays Nomad's
client (StartTask with a task config, ExecTaskStreaming with and without a
tty, StopTask/DestroyTask), and each field's effect is read back the way a
user would check it: /proc, mountinfo, the task's cgroup files, `hostname`,
`ulimit`, annotations in `husk state`."""
import json
import os
import shutil
import subprocess
import tempfile
import time

import pytest

from driverprobe import PLUGIN, PROBE, Probe  # noqa: F401  (PLUGIN for other test files)
from husktest import CGROUP2, HUSK, ROOT, mount_points
DEMO_ROOTFS = os.path.join(ROOT, "build", "contrib", "demo-bundle", "rootfs")

pytestmark = pytest.mark.skipif(not os.path.exists(PROBE), reason="driver-probe not built")

# A stand-in for catatonit: PID 1 that runs the task as its child (so the
# test sees it is there) and passes SIGTERM on.
INIT = """#!/bin/sh
[ "$1" = -- ] && shift
"$@" &
child=$!
trap 'kill -TERM $child; wait $child; exit 143' TERM
wait $child
"""


@pytest.fixture
def image(tmp_path):
    d = tmp_path / "image"
    shutil.copytree(DEMO_ROOTFS, d, symlinks=True)
    return str(d)


def annotations(state):
    out = {}
    root = state / "containers"
    for cid in os.listdir(root):
        if cid.startswith("."):
            continue
        r = subprocess.run([HUSK, "--root", str(root), "state", cid], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        out.update(json.loads(r.stdout).get("annotations", {}))
    return out


NOMAD_SLICE = os.path.join(CGROUP2, "nomad.slice")


def task_scopes():
    """The tasks' cgroups: husk-<container>.scope under nomad.slice."""
    if not os.path.isdir(NOMAD_SLICE):
        return []
    return [d for d in os.listdir(NOMAD_SLICE) if d.startswith("husk-") and d.endswith(".scope")]


def test_task_config_fields_take_effect_inside_the_container(tmp_path, image):
    before = mount_points()
    init = tmp_path / "init.sh"
    init.write_text(INIT)
    init.chmod(0o755)
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "marker").write_text("from-the-host\n")
    probe = Probe(tmp_path)
    try:
        config = {
            "image": image,
            "entrypoint": ["/bin/sh", "-c"],
            "command": "echo started; exec sleep 1000",
            "working_dir": "/tmp",
            "hostname": "fieldbox",
            "init": True, "init_path": str(init),
            "labels": [{"com.example.team": "core"}],
            "cap_add": ["NET_ADMIN"], "cap_drop": ["CHOWN"],
            "readonly_rootfs": True,
            "tmpfs": ["/scratch"],
            "shm_size": "8m",
            "sysctl": [{"kernel.msgmax": "4096"}],
            "ulimit": [{"nofile": "512:1024"}],
            "pids_limit": 77,
            "oom_score_adj": 123,
            "memory_reservation": "64m",
            "memory_swap": "192m",
            "cpu_hard_limit": True, "cpu_cfs_period": 50000,
            "devices": ["/dev/null:/dev/probe-null"],
            "volumes": [f"{vol}:/data:ro"],
            "extra_hosts": ["probe.example:192.0.2.7"],
            "network_mode": "none",
            "security_opt": ["no-new-privileges"],
            "logging": {"driver": "nomad"},
        }
        r = probe.start("fields", config, env={"FIELD_ENV": "from-nomad"}, memory_mb=128)
        assert r["ok"], r
        # Few processes: exec in a TCG VM shared with other work is slow.
        out = probe.sh("fields", """
            echo "cmd1=$(tr '\\0' ' ' < /proc/1/cmdline)"
            ps -o ppid,args | grep '^ *[0-9]* sleep 1000' | sed 's/^ */cmd2=/'
            echo "cwd=$(readlink /proc/1/cwd)"
            read h < /proc/sys/kernel/hostname; echo "hostname=$h"
            tr '\\0' '\\n' < /proc/1/environ | grep ^FIELD_ENV= | sed 's/^/env=/'
            grep -E '^(CapEff|NoNewPrivs):' /proc/1/status
            touch /rootfs-file 2>/dev/null && echo rootfs=rw || echo rootfs=ro
            touch /tmp/ok && echo tmp=rw
            grep -E ' /(scratch|dev/shm) ' /proc/self/mountinfo | sed 's/^/mnt=/'
            echo "msgmax=$(cat /proc/sys/kernel/msgmax)"
            grep 'Max open files' /proc/1/limits
            for f in pids.max memory.low memory.swap.max cpu.max; do read v < /sys/fs/cgroup/$f; echo "$f=$v"; done
            read v < /proc/1/oom_score_adj; echo "oom=$v"
            test -c /dev/probe-null && echo dev=char
            read v < /data/marker; echo "data=$v"; touch /data/x 2>/dev/null || echo data=ro
            grep probe.example /etc/hosts
            sed -n 's/^ *\\([a-z0-9]*\\):.*/link=\\1/p' /proc/net/dev
        """, close=True, timeout=300)
        got = out["stdout"]
        lines = dict(line.split("=", 1) for line in got.splitlines() if "=" in line and ":" not in line.split("=")[0])
        assert lines["cmd1"].startswith("/bin/sh /run/podman-init -- /bin/sh -c"), got
        assert lines["cmd2"].split() == ["1", "sleep", "1000"], got  # the init's child
        assert lines["cwd"] == "/tmp" and lines["hostname"] == "fieldbox", got
        assert lines["env"] == "FIELD_ENV=from-nomad", got
        capeff = int([line for line in got.splitlines() if line.startswith("CapEff:")][0].split()[1], 16)
        assert capeff & (1 << 12) and not capeff & (1 << 0), got  # NET_ADMIN added, CHOWN dropped
        assert "NoNewPrivs:\t1" in got, got
        assert lines["rootfs"] == "ro" and lines["tmp"] == "rw", got
        mnts = [v for k, v in (line.split("=", 1) for line in got.splitlines() if line.startswith("mnt="))]
        assert any(" /scratch " in m and " - tmpfs " in m for m in mnts), got
        assert any(" /dev/shm " in m and "size=8192k" in m for m in mnts), got
        assert lines["msgmax"] == "4096", got
        assert [line.split()[3:5] for line in got.splitlines() if line.startswith("Max open files")] == [["512", "1024"]], got
        assert lines["pids.max"] == "77", got
        assert lines["memory.low"] == str(64 << 20), got
        assert lines["memory.swap.max"] == str(64 << 20), got  # memory_swap is memory + swap
        assert lines["cpu.max"].split()[1] == "50000" and lines["cpu.max"].split()[0] != "max", got
        assert lines["oom"] == "123" and lines["dev"] == "char", got
        assert lines["data"] in ("from-the-host", "ro"), got
        assert "data=from-the-host" in got and "data=ro" in got, got
        assert "192.0.2.7\tprobe.example" in got, got
        assert [line for line in got.splitlines() if line.startswith("link=")] == ["link=lo"], got
        assert annotations(probe.state).get("com.example.team") == "core"
        # The task's cgroup is under nomad.slice, as nomad-driver-podman's.
        assert "husk-fields.scope" in task_scopes()
        assert open(os.path.join(NOMAD_SLICE, "husk-fields.scope", "pids.max")).read().strip() == "77"
        assert probe.stop("fields")["ok"]
        assert "husk-fields.scope" not in task_scopes()
    finally:
        probe.close()
    assert [c for c in os.listdir(probe.state / "containers") if not c.startswith(".")] == []
    assert mount_points() == before


def test_exec_with_a_tty(tmp_path, image):
    probe = Probe(tmp_path, name="nomad-driver-husk")
    try:
        r = probe.start("tty", {"image": image, "command": "/bin/sleep", "args": ["1000"], "network_mode": "host"},
                        user="65534:65534")
        assert r["ok"], r
        # The resize is applied before the line is read, so stty sees it.
        t = probe.call(op="exec", id="tty", cmd=["/bin/sh", "-c", "read x; stty size; tty; id -u; echo got:$x; exit 4"],
                       tty=True, rows=33, cols=101, stdin="hello\n")
        assert t["ok"], t
        assert t["exit_code"] == 4, t
        assert "33 101" in t["stdout"] and "/dev/pts/" in t["stdout"] and "got:hello" in t["stdout"], t
        assert "65534" in t["stdout"], t  # the task's user
        # Closing stdin on a terminal ends input as ^D does.
        c = probe.call(op="exec", id="tty", cmd=["/bin/sh", "-c", "cat >/dev/null; echo cat-done:$?"],
                       tty=True, stdin="abc\n", close=True)
        assert c["ok"] and "cat-done:0" in c["stdout"] and c["exit_code"] == 0, c
        # A command that cannot run: an error naming it and a failing exit code.
        bad = probe.call(op="exec", id="tty", cmd=["/nonexistent-cmd"], tty=True)
        assert bad["ok"] and bad["exit_code"] != 0, bad
        assert "nonexistent-cmd" in bad["stdout"] + bad["stderr"], bad
        # Without a tty: pipes, stdout and stderr apart.
        p = probe.call(op="exec", id="tty", cmd=["/bin/sh", "-c", "[ -t 0 ] || echo no-tty; cat; echo err >&2; exit 5"],
                       stdin="piped\n", close=True)
        assert p["ok"] and p["exit_code"] == 5, p
        assert p["stdout"] == "no-tty\npiped\n" and p["stderr"] == "err\n", p
        # Nothing of the execs is left: no process but the task's own.
        ps = probe.sh("tty", "ps -o comm")
        assert set(ps["stdout"].split()) <= {"COMMAND", "sleep", "sh", "ps"}, ps
        assert not [d for d in os.listdir("/tmp") if d.startswith("husk-exec-")]
        assert probe.stop("tty")["ok"]
    finally:
        probe.close()


def test_systemd_cgroup_manager_puts_tasks_in_nomad_slice(tmp_path, image):
    if not shutil.which("dbus-daemon"):
        pytest.skip("needs dbus-daemon")
    from test_systemd_cgroup import FakeSystemd
    workdir = tempfile.mkdtemp(prefix="fakesd-", dir="/tmp")
    fake = FakeSystemd(workdir)
    saved = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
    os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = fake.address
    try:
        probe = Probe(tmp_path, plugin_args=["--cgroup-manager", "systemd"])
        try:
            r = probe.start("sd", {"image": image, "command": "/bin/sleep", "args": ["1000"], "network_mode": "host",
                                   "pids_limit": 33})
            assert r["ok"], r
            starts = fake.calls("StartTransientUnit")
            assert [(c["name"].startswith("husk-"), c["props"].get("Slice")) for c in starts] == [(True, "nomad.slice")], starts
            assert "husk-sd.scope" in task_scopes(), starts
            assert open(os.path.join(NOMAD_SLICE, "husk-sd.scope", "pids.max")).read().strip() == "33"
            assert probe.stop("sd")["ok"]
            assert "husk-sd.scope" not in task_scopes()
        finally:
            probe.close()
    finally:
        fake.stop()
        if saved is None:
            os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        else:
            os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = saved
        shutil.rmtree(workdir, ignore_errors=True)


def test_plugin_options_privileged_and_bad_config(tmp_path, image):
    before = mount_points()
    # The image must come from the allocation when volumes are disabled.
    probe = Probe(tmp_path, plugin_config={"volumes": {"enabled": False}, "extra_labels": ["job_name"],
                                           "dns_servers": ["192.0.2.53"]})
    try:
        alloc_image = probe.alloc / "web" / "local" / "image"
        alloc_image.parent.mkdir(parents=True)
        shutil.copytree(image, alloc_image, symlinks=True)
        # volumes.enabled = false: a host path outside the allocation is refused, naming the field.
        bad = probe.start("vol", {"image": str(alloc_image), "command": "/bin/true", "volumes": ["/etc:/hostetc"]},
                          name="web")
        assert not bad["ok"] and "config.volumes[0]" in bad["error"] and "volumes are not enabled" in bad["error"], bad
        bad = probe.start("cap", {"image": str(alloc_image), "command": "/bin/true", "cap_add": ["NOT_A_CAP"]},
                          name="web")
        assert not bad["ok"] and "config.cap_add[0]" in bad["error"], bad
        assert [c for c in os.listdir(probe.state / "containers") if not c.startswith(".")] == []
        assert os.listdir(probe.state / "tasks") == []
        # privileged: every capability, the host's devices; extra_labels and dns_servers apply.
        r = probe.start("priv", {"image": "local/image", "command": "/bin/sleep", "args": ["1000"],
                                 "network_mode": "none", "privileged": True}, name="web")
        assert r["ok"], r
        out = probe.sh("priv", "grep -E '^(CapEff|Seccomp):' /proc/1/status; test -c /dev/kmsg && echo kmsg=yes;"
                       " grep nameserver /etc/resolv.conf", close=True, timeout=300)["stdout"]
        capeff = int([line for line in out.splitlines() if line.startswith("CapEff:")][0].split()[1], 16)
        assert capeff & (1 << 21) and capeff & (1 << 19), out  # SYS_ADMIN, SYS_PTRACE
        assert "Seccomp:\t0" in out and "kmsg=yes" in out, out  # no filter, host devices
        assert "nameserver 192.0.2.53" in out, out
        assert annotations(probe.state).get("com.hashicorp.nomad.job_name") == "probe-job"
        assert probe.stop("priv")["ok"]
    finally:
        probe.close()
    assert mount_points() == before


def test_podman_task_modes_join_another_task(tmp_path, image):
    """network_mode and ipc_mode = "task:NAME" (nomad-driver-podman's way of
    naming the container NAME-<alloc id>): the other task's network and IPC
    namespaces, and its /dev/shm when it is shareable."""
    before = mount_points()
    probe = Probe(tmp_path)
    alloc = "6b6f7a1e-4c9d-4a3b-9f10-2a3b4c5d6e7f"  # Nomad's ids: <alloc>/<task>/<8 hex>
    web_id, side_id = f"{alloc}/web/0123abcd", f"{alloc}/side/4567ef01"
    try:
        web = "echo hello-task-mode > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"
        r = probe.start(web_id, {"image": image, "command": "/bin/sh", "args": ["-c", web], "ipc_mode": "shareable"},
                        name="web", alloc=alloc)
        assert r["ok"], r
        assert r["network"]["addr"].startswith("10.89.0.") and r["network"]["auto_advertise"], r  # as the podman driver
        r = probe.start(side_id, {"image": image, "command": "/bin/sleep", "args": ["1000"],
                                  "network_mode": "task:web", "ipc_mode": "task:web"}, name="side", alloc=alloc)
        assert r["ok"], r
        assert "network" not in r, r  # no address of its own
        got = probe.sh(side_id, "for i in 1 2 3 4 5; do wget -q -O- http://127.0.0.1:8080/ && exit 0; sleep 1; done; "
                       "exit 1")["stdout"]
        assert got == "hello-task-mode\n", got  # web's loopback: one network namespace
        ns = "readlink /proc/self/ns/net /proc/self/ns/ipc"
        assert probe.sh(side_id, ns)["stdout"] == probe.sh(web_id, ns)["stdout"]
        probe.sh(web_id, "echo shared > /dev/shm/seg")
        assert probe.sh(side_id, "cat /dev/shm/seg")["stdout"] == "shared\n"
        bad = probe.start(f"{alloc}/lost/89abcdef", {"image": image, "command": "/bin/true",
                                                      "network_mode": "task:nosuch"}, name="lost", alloc=alloc)
        assert not bad["ok"] and "config.network_mode" in bad["error"], bad
        assert probe.stop(side_id)["ok"] and probe.stop(web_id)["ok"]
        assert os.listdir(probe.state / "tasks") == []
    finally:
        probe.close()
    assert mount_points() == before


def test_podman_userns_joins_a_user_namespace(tmp_path, image):
    """userns = "ns:PATH": the task runs in that user namespace (its map),
    as podman joins it."""
    before = mount_points()
    holder = subprocess.Popen(["unshare", "--user", "sleep", "1000"])
    probe = Probe(tmp_path)
    try:
        path = f"/proc/{holder.pid}/ns/user"
        for _ in range(50):  # unshare makes the namespace, then execs sleep
            if os.readlink(path) != os.readlink("/proc/self/ns/user"):
                break
            time.sleep(0.1)
        for m in ("uid_map", "gid_map"):  # root maps it from outside
            with open(f"/proc/{holder.pid}/{m}", "w") as f:
                f.write("0 0 65536\n")
        r = probe.start("u", {"image": image, "command": "/bin/sleep", "args": ["1000"], "network_mode": "none",
                              "userns": f"ns:{path}"}, name="web")
        assert r["ok"], r
        e = probe.sh("u", "readlink /proc/self/ns/user; cat /proc/self/uid_map")
        out = e["stdout"].split()
        assert e.get("exit_code", 0) == 0 and out, e  # exec joins it too (its rlimits set before)
        assert out[0] == os.readlink(path), out  # the holder's user namespace
        assert out[1:] == ["0", "0", "65536"], out
        assert probe.stop("u")["ok"]
        bad = probe.start("k", {"image": image, "command": "/bin/true", "userns": "keep-id"}, name="web")
        assert not bad["ok"] and "config.userns" in bad["error"] and "rootless" in bad["error"], bad
    finally:
        probe.close()
        holder.kill()
        holder.wait()
    assert mount_points() == before


def test_podman_userns_auto_gives_each_task_its_own_ids(tmp_path, monkeypatch):
    """userns = "auto": each task gets ids of its own from the ranges of
    `containers` in /etc/subuid and /etc/subgid, sized from the image (its
    largest id + 1, at least 1024), and sees the image's files with the
    image's owners; a task's ids are free again once it is destroyed. The
    layers are idmapped with the task's maps where the store's file system
    takes idmapped mounts, else copied with the task's ids into its task dir
    (the VM's Debian 6.1 kernel idmaps no tmpfs or 9p: the copies are
    tested here), which goes with the task."""
    import imagebuild as ib
    layout = tmp_path / "layout"
    ib.make_layout(str(layout), [ib.tree_entries(DEMO_ROOTFS),
                                 [ib.d("srv"), ib.f("srv/owned", b"x\n", mode=0o640, uid=1234, gid=2345)]], ref="1")
    store = tmp_path / "store"
    monkeypatch.setenv("HUSK_IMAGE_STORE", str(store))
    before = mount_points()
    ids = {}
    for name, start in (("subuid", 400000), ("subgid", 600000)):
        ids[name] = tmp_path / name
        ids[name].write_text(f"containers:{start}:10000\n")
    mounted = []
    probe = None
    try:
        for name in ids:
            subprocess.run(["mount", "--bind", str(ids[name]), f"/etc/{name}"], check=True)
            mounted.append(f"/etc/{name}")
        probe = Probe(tmp_path)
        base = {"image": f"oci:{layout}:1", "command": "/bin/sleep", "args": ["1000"], "network_mode": "none"}

        def maps(task_id):
            out = probe.sh(task_id, "cat /proc/self/uid_map /proc/self/gid_map")["stdout"].split()
            return [int(x) for x in out]

        r = probe.start("a", {**base, "userns": "auto"}, name="web")
        assert r["ok"], r
        layers = [store / "layers" / n for n in os.listdir(store / "layers") if not n.startswith(".")]
        idmapped = subprocess.run([HUSK, "check-idmap", str(layers[0])], capture_output=True).returncode == 0
        copies = [d / "copied" for d in (probe.state / "tasks").iterdir() if (d / "copied").exists()]
        assert len(copies) == (0 if idmapped else 1), copies
        if copies:
            # The copy of the image's top layer is owned by the task's ids.
            st = os.stat(copies[0] / "0" / "srv" / "owned")
            assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (400000 + 1234, 600000 + 2345, 0o640)
        # 2346 ids: the image's largest id is gid 2345.
        assert maps("a") == [0, 400000, 2346, 0, 600000, 2346]
        e = probe.sh("a", "stat -c %u:%g:%a /srv/owned /bin/busybox; id -u; echo new > /srv/new")
        assert e["stdout"].split() == ["1234:2345:640", "0:0:755", "0"], e
        # What the task writes is the task's on the host.
        new = [os.path.join(d, "upper", "srv", "new") for d in (probe.state / "tasks").iterdir()]
        st = os.stat([p for p in new if os.path.exists(p)][0])
        assert (st.st_uid, st.st_gid) == (400000, 600000)

        r = probe.start("b", {**base, "userns": "auto:size=4096"}, name="web")
        assert r["ok"], r
        assert maps("b") == [0, 402346, 4096, 0, 602346, 4096]
        assert probe.stop("a")["ok"]
        # a's ids are free again; one forced mapping takes container uid 0.
        r = probe.start("c", {**base, "userns": "auto:uidmapping=0:5000:1"}, name="web")
        assert r["ok"], r
        assert maps("c") == [1, 400000, 2345, 0, 5000, 1, 0, 600000, 2346]
        r = probe.start("d", {**base, "userns": "auto:size=9000"}, name="web")
        assert not r["ok"] and "config.userns" in r["error"] and "free uids" in r["error"], r
        r = probe.start("e", {**base, "userns": "auto:nosuch=1"}, name="web")
        assert not r["ok"] and "unknown option" in r["error"], r
        assert probe.stop("b")["ok"] and probe.stop("c")["ok"]
        assert os.listdir(probe.state / "tasks") == []
    finally:
        if probe:
            probe.close()
        for m in mounted:
            subprocess.run(["umount", m], check=True)
    assert mount_points() == before
