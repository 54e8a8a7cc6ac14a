"""The rootfs: mounts of every kind, /dev, masked and read-only paths."""
import os


def test_proc_sys_and_dev(husk, bundle):
    bundle.set_args("sh", "-c",
                    "grep -E ' /proc | /sys | /dev ' /proc/self/mounts | cut -d' ' -f2,3; "
                    "stat -c '%F %t:%T' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty; "
                    "readlink /dev/fd; readlink /dev/stdin; readlink /dev/ptmx")
    out = husk.run().stdout.splitlines()
    assert "/proc proc" in out and "/sys sysfs" in out and "/dev tmpfs" in out
    assert "character special file 1:3" in out
    assert "character special file 1:5" in out
    assert "character special file 5:0" in out
    assert "/proc/self/fd" in out and "/proc/self/fd/0" in out and "pts/ptmx" in out


def test_spec_devices(husk, bundle):
    bundle.config["linux"]["devices"] = [{"path": "/dev/mydev", "type": "c", "major": 1, "minor": 7,
                                          "fileMode": 0o640, "uid": 12, "gid": 34}]
    bundle.set_args("stat", "-c", "%F %t:%T %a %u %g", "/dev/mydev")
    assert husk.run().stdout.strip() == "character special file 1:7 640 12 34"


def test_masked_paths(husk, bundle):
    assert os.path.getsize("/proc/timer_list") == 0 and open("/proc/timer_list").read() != ""
    bundle.set_args("sh", "-c", "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo x > /proc/timer_list")
    r = husk.run()
    assert r.stdout.split() == ["0", "0"]
    # The host's file really has content: the container saw the mask.


def test_readonly_paths_and_readonly_root(husk, bundle):
    bundle.config["root"]["readonly"] = True
    bundle.set_args("sh", "-c", "echo 1 > /proc/sys/kernel/domainname; touch /newfile; echo end")
    r = husk.run()
    assert "Read-only file system" in r.stderr
    assert r.stderr.count("Read-only file system") == 2
    assert not os.path.exists(os.path.join(bundle.rootfs, "newfile"))


def test_tmpfs_with_options(husk, bundle):
    bundle.config["mounts"].append({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                                    "options": ["size=1m", "mode=700", "noexec"]})
    bundle.set_args("sh", "-c", "grep ' /scratch ' /proc/self/mounts; stat -c %a /scratch")
    out = husk.run().stdout.splitlines()
    assert "size=1024k" in out[0] and "noexec" in out[0]
    assert out[1] == "700"


def test_bind_mount_readonly(husk, bundle, tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    (d / "hello").write_text("from the host\n")
    bundle.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(d),
                                    "options": ["rbind", "ro"]})
    bundle.set_args("sh", "-c", "cat /data/hello; touch /data/x")
    r = husk.run()
    assert r.stdout == "from the host\n"
    assert "Read-only file system" in r.stderr
    assert not (d / "x").exists()


def test_bind_mount_of_a_file(husk, bundle, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("one file\n")
    bundle.config["mounts"].append({"destination": "/etc/motd", "type": "bind", "source": str(f), "options": ["bind"]})
    bundle.set_args("cat", "/etc/motd")
    assert husk.run().stdout == "one file\n"


def test_no_pivot(husk, bundle):
    bundle.set_args("sh", "-c", "ls /bin/busybox && echo ok")
    r = husk.run("--no-pivot")
    assert r.stdout.splitlines()[-1] == "ok"


def test_mount_propagation_private_by_default(husk, bundle, tmp_path):
    bundle.config["mounts"].append({"destination": "/data", "type": "bind", "source": str(tmp_path), "options": ["rbind"]})
    bundle.set_args("sh", "-c", "mkdir -p /data/sub && mount -t tmpfs none /data/sub && echo mounted")
    bundle.config["process"]["capabilities"]["bounding"].append("CAP_SYS_ADMIN")
    bundle.config["process"]["capabilities"]["effective"].append("CAP_SYS_ADMIN")
    bundle.config["process"]["capabilities"]["permitted"].append("CAP_SYS_ADMIN")
    r = husk.run()
    assert "mounted" in r.stdout
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path / "sub") not in f.read()


def test_cgroup2_mount_shows_the_containers_cgroup(husk, bundle):
    bundle.config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                    "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
    bundle.set_args("sh", "-c", "grep cgroup2 /proc/self/mounts | cut -d' ' -f2; cat /sys/fs/cgroup/cgroup.procs")
    out = husk.run().stdout.split()
    assert out[0] == "/sys/fs/cgroup"
    assert out[1:] == ["1"]


def test_idmapped_bind_mount(husk, bundle, tmp_path):
    d = tmp_path / "owned"
    d.mkdir()
    (d / "f").write_text("x")
    os.chown(d / "f", 1000, 1000)
    bundle.config["mounts"].append({"destination": "/idm", "type": "bind", "source": str(d), "options": ["rbind", "idmap"],
                                    # a mount mapping goes from the id on disk to the id seen
                                    "uidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}],
                                    "gidMappings": [{"containerID": 1000, "hostID": 0, "size": 1}]})
    bundle.set_args("stat", "-c", "%u:%g", "/idm/f")
    r = husk.run()
    assert r.stdout.strip() == "0:0", r.stderr


def test_layers_idmapped_uids_and_gids_apart_under_an_overlay(husk, bundle, tmp_path):
    """What the driver does for podman's userns = "auto": each image layer
    idmapped with the task's maps (`husk mount-idmapped --uid-map
    --gid-map`), an overlay of them, and a container in a user namespace of
    the same maps sees the image's owners; what it writes is its own on the
    host."""
    import shutil
    import subprocess
    from husktest import HUSK, mount_points
    before = mount_points()
    for d in (str(tmp_path),):
        while d != "/":
            os.chmod(d, os.stat(d).st_mode | 0o111)
            d = os.path.dirname(d)
    bottom, top = tmp_path / "l1", tmp_path / "l0"
    shutil.copytree(bundle.rootfs, bottom, symlinks=True)
    (top / "srv").mkdir(parents=True)
    (top / "srv" / "owned").write_text("x\n")
    os.chmod(top / "srv" / "owned", 0o640)
    os.chown(top / "srv" / "owned", 1234, 2345)
    low, upper, work = tmp_path / "low", tmp_path / "upper", tmp_path / "work"
    for d in (low / "0", low / "1", upper, work):
        d.mkdir(parents=True)
    os.chown(upper, 400000, 600000)
    maps = ["--uid-map", "0:400000:3000", "--gid-map", "0:600000:1000,1000:700000:2000"]
    # Both maps are needed; a bad one is an error naming it.
    r = subprocess.run([HUSK, "mount-idmapped", "--uid-map", "0:400000:3000", str(top), str(low / "0")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--gid-map" in r.stderr, r.stderr
    r = subprocess.run([HUSK, "mount-idmapped", "--uid-map", "0:400000", "--gid-map", "0:1:1", str(top), str(low / "0")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and '"0:400000" is not CONTAINER:HOST:SIZE' in r.stderr, r.stderr
    mounted = []
    try:
        for src, dst in ((top, low / "0"), (bottom, low / "1")):
            subprocess.run([HUSK, "mount-idmapped", *maps, str(src), str(dst)], check=True)
            mounted.append(str(dst))
        assert os.stat(low / "0" / "srv" / "owned").st_uid == 401234
        assert os.stat(low / "0" / "srv" / "owned").st_gid == 701345
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={low}/0:{low}/1,upperdir={upper},workdir={work}", bundle.rootfs], check=True)
        mounted.insert(0, bundle.rootfs)
        bundle.config["linux"]["namespaces"].append({"type": "user"})
        bundle.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 400000, "size": 3000}]
        bundle.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 600000, "size": 1000},
                                                 {"containerID": 1000, "hostID": 700000, "size": 2000}]
        bundle.set_args("sh", "-c", "stat -c %u:%g:%a /srv/owned /bin/busybox; echo new > /srv/new")
        r = husk.run()
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["1234:2345:640", "0:0:755"]
        st = os.stat(upper / "srv" / "new")
        assert (st.st_uid, st.st_gid) == (400000, 600000)
    finally:
        for m in mounted:
            subprocess.run(["umount", m], check=True)
    assert mount_points() == before
