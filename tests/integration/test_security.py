"""Each attack class the runtime defends against, tried and shown to fail."""
import hashlib
import os

from husktest import HUSK


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_cve_2019_5736_self_exe_interpreter_never_reaches_husk(husk, bundle):
    """The image's entry point is "#!/proc/self/exe": the kernel runs whatever
    /proc/self/exe is at exec time. With husk that is the sealed trampoline
    memfd, which refuses to run as its own interpreter: the host's husk binary
    is never executed inside the container."""
    before = sha(HUSK)
    with open(os.path.join(bundle.rootfs, "evil"), "w") as f:
        f.write("#!/proc/self/exe\n")
    os.chmod(os.path.join(bundle.rootfs, "evil"), 0o755)
    bundle.set_args("/evil")
    r = husk.run()
    assert r.returncode == 127
    assert "husk: exec /proc/self/exe" in r.stderr
    assert sha(HUSK) == before


def test_cve_2019_5736_waiting_init_exe_is_unreachable_from_the_container(husk, bundle):
    """Before start, the container's init is still husk. It is not dumpable, so
    a process in the container cannot open its /proc/<pid>/exe (the O_PATH fd
    the attack would later reopen for writing)."""
    bundle.set_args("true")
    cid = husk.create()
    r = husk.cmd("exec", cid, "sh", "-c", "cat /proc/1/exe > /dev/null && echo opened || echo denied")
    assert r.stdout.strip() == "denied", r.stdout + r.stderr


def test_exec_process_exe_is_not_the_husk_binary(husk, bundle):
    bundle.set_args("sleep", "1000")
    cid = husk.create()
    husk.cmd("start", cid, check=True)
    # /proc/self/exe of an exec'd process is its own binary, never husk.
    r = husk.cmd("exec", cid, "readlink", "/proc/self/exe", check=True)
    assert r.stdout.strip() == "/bin/busybox"


def test_cve_2024_21626_cwd_through_a_leaked_fd_is_refused(husk, bundle):
    # Try every fd number a leaked host directory could have.
    for n in range(3, 12):
        bundle.config["process"]["cwd"] = f"/proc/self/fd/{n}"
        bundle.set_args("sh", "-c", "pwd; ls ..")
        r = husk.run()
        assert r.returncode != 0, f"cwd /proc/self/fd/{n} was accepted: {r.stdout}"


def test_cve_2021_30465_symlink_cannot_redirect_a_mount_to_the_host(husk, bundle, tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "marker").write_text("host data\n")
    os.symlink(str(victim), os.path.join(bundle.rootfs, "evil"))
    bundle.config["mounts"].append({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"})
    bundle.set_args("true")
    husk.run()
    # Whatever happened inside, the host directory was never covered or changed.
    assert (victim / "marker").read_text() == "host data\n"
    assert len(os.listdir(victim)) == 1
    with open("/proc/self/mountinfo") as f:
        assert str(victim) not in f.read()


def test_dotdot_in_mount_destination_stays_in_rootfs(husk, bundle, tmp_path):
    bundle.config["mounts"].append({"destination": "/../../../../../../tmp/husk-escape-test", "type": "tmpfs",
                                    "source": "tmpfs"})
    bundle.set_args("true")
    husk.run()
    assert not os.path.exists("/tmp/husk-escape-test")


def test_no_runtime_fd_reaches_the_container(husk, bundle):
    bundle.set_args("sh", "-c", "for f in /proc/self/fd/*; do readlink $f; done")
    r = husk.run()
    targets = r.stdout.split()
    assert not any("husk" in t or "exec.fifo" in t or "memfd" in t for t in targets), targets
