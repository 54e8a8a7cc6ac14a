"""linux.resources.devices through the eBPF device program: what a process in
the container can open, before and after `husk update -r`, and how many husk
programs stay attached to the container's cgroup."""
import ctypes
import json
import os
import struct

from husktest import CGROUP2

LOOP_CONTROL = {"path": "/dev/loop-control", "type": "c", "major": 10, "minor": 237, "fileMode": 0o666}
DENY_ALL = {"allow": False, "access": "rwm"}

# bpf(2), x86_64 and aarch64 numbers; the commands from <linux/bpf.h>.
SYS_BPF = {"x86_64": 321, "aarch64": 280}[os.uname().machine]
BPF_PROG_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD, BPF_PROG_QUERY = 13, 15, 16
BPF_CGROUP_DEVICE = 6
_libc = ctypes.CDLL(None, use_errno=True)


def _bpf(cmd, attr):
    buf = ctypes.create_string_buffer(bytes(attr), len(attr))
    r = _libc.syscall(SYS_BPF, cmd, buf, len(attr))
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r, buf.raw


def device_programs(cgroup_dir):
    """(id, name) of each device program attached to the cgroup itself."""
    fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        ids = (ctypes.c_uint32 * 64)()
        # target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt
        attr = struct.pack("=IIIIQI4x", fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), 64)
        _, out = _bpf(BPF_PROG_QUERY, attr)
        count = struct.unpack_from("=I", out, 24)[0]
    finally:
        os.close(fd)
    progs = []
    for pid in list(ids)[:count]:
        pfd, _ = _bpf(BPF_PROG_GET_FD_BY_ID, struct.pack("=I12x", pid))
        try:
            info = ctypes.create_string_buffer(80)  # struct bpf_prog_info up to name[16]
            _bpf(BPF_OBJ_GET_INFO_BY_FD, struct.pack("=IIQ", pfd, 80, ctypes.addressof(info)))
            progs.append((pid, info.raw[64:80].rstrip(b"\0").decode()))
        finally:
            os.close(pfd)
    return progs


def husk_programs(cid):
    return [p for p in device_programs(os.path.join(CGROUP2, "husk", cid)) if p[1] == "husk_devices"]


def try_open(husk, cid, path, mode="r"):
    """Open path in the running container: "ok" or the shell's error."""
    redirect = f"3<{path}" if mode == "r" else f"3<>{path}"
    r = husk.cmd("exec", cid, "sh", "-c", f"exec {redirect} && echo ok", timeout=120)
    return (r.stdout + r.stderr).strip()


def test_only_allowed_devices_open_and_update_allows_more(husk, bundle, tmp_path):
    bundle.set_args("sleep", "1000")
    bundle.config["linux"]["devices"] = [LOOP_CONTROL]
    # linux.devices makes the node, resources.devices does not allow it.
    bundle.config["linux"]["resources"] = {"devices": [DENY_ALL, {"allow": True, "type": "c", "major": 1,
                                                                   "minor": 3, "access": "rwm"}]}
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    assert len(husk_programs(cid)) == 1
    first = husk_programs(cid)[0][0]

    assert try_open(husk, cid, "/dev/null", "rw") == "ok"
    assert try_open(husk, cid, "/dev/zero") == "ok"  # a default, though not in the rules
    assert "Operation not permitted" in try_open(husk, cid, "/dev/loop-control")

    # An update without device rules keeps the program. (The condition lets
    # the test run on a hybrid host too, where cgroup2 has no pids.)
    res = tmp_path / "resources.json"
    if "pids" in open(os.path.join(CGROUP2, "cgroup.controllers")).read().split():
        husk.cmd("update", "--pids-limit", "100", cid, check=True)
    else:
        res.write_text("{}")
        husk.cmd("update", "-r", str(res), cid, check=True)
    assert husk_programs(cid) == [(first, "husk_devices")]

    res.write_text(json.dumps({"devices": [DENY_ALL, {"allow": True, "type": "c", "major": 10, "minor": 237,
                                                       "access": "rw"}]}))
    husk.cmd("update", "-r", str(res), cid, check=True)
    assert try_open(husk, cid, "/dev/loop-control") == "ok"
    assert try_open(husk, cid, "/dev/null", "rw") == "ok"
    progs = husk_programs(cid)
    assert len(progs) == 1 and progs[0][0] != first, progs  # replaced, not added

    # And back: the same update path takes the access away again.
    res.write_text(json.dumps({"devices": [DENY_ALL]}))
    husk.cmd("update", "-r", str(res), cid, check=True)
    assert "Operation not permitted" in try_open(husk, cid, "/dev/loop-control")
    assert len(husk_programs(cid)) == 1
    husk.cmd("delete", "--force", cid, check=True)


def test_no_rules_still_denies_all_but_the_defaults(husk, bundle):
    bundle.config["linux"]["devices"] = [LOOP_CONTROL]
    bundle.config["linux"].pop("resources", None)
    bundle.set_args("sh", "-c", "echo x > /dev/null && echo null=ok; (exec 3</dev/loop-control) 2>&1; echo loop=$?")
    r = husk.run()
    assert "null=ok" in r.stdout, r.stdout + r.stderr
    assert "Operation not permitted" in r.stdout and "loop=" in r.stdout and "loop=0" not in r.stdout, r.stdout


def test_allow_all_lets_every_device_open(husk, bundle):
    bundle.config["linux"]["devices"] = [LOOP_CONTROL]
    bundle.config["linux"]["resources"] = {"devices": [{"allow": True, "access": "rwm"}]}
    bundle.set_args("sh", "-c", "exec 3</dev/loop-control && echo loop=ok")
    r = husk.run()
    assert "loop=ok" in r.stdout, r.stdout + r.stderr


def test_a_rule_that_cannot_be_enforced_is_refused(husk, bundle):
    bundle.config["linux"]["resources"] = {"devices": [
        DENY_ALL, {"allow": True, "type": "c", "major": 10, "access": "rwm"},
        {"allow": False, "type": "c", "major": 10, "minor": 237, "access": "rw"}]}
    r = husk.create(check=False)
    assert r.returncode != 0
    assert "linux.resources.devices[2]: deny c 10:237 cannot punch a hole" in r.stderr, r.stderr
