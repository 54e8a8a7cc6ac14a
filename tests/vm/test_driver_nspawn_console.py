"""The nspawn flavor's console: interactive and read-only give the container
a pty as its console (what systemd-nspawn does), its output in the task's
stdout log; pipe keeps plain stdio."""
import time

from husktest import mount_points
from test_driver_fields import Probe
from test_driver_nspawn_users import images, task  # noqa: F401  (fixture)


def output(probe, task_id, config):
    r = probe.start(task_id, config, name="con")
    assert r["ok"], r
    log = probe.alloc / f"{task_id}.stdout"
    for _ in range(100):
        if b"done" in log.read_bytes():
            break
        time.sleep(0.2)
    assert probe.stop(task_id)["ok"]
    return log.read_bytes().decode()


def test_console_modes(tmp_path, images):  # noqa: F811
    before = mount_points()
    probe = Probe(tmp_path, name="nomad-driver-nspawn")
    try:
        a, _ = images
        script = ["/bin/sh", "-c", "tty; echo TERM=$TERM; echo done; exec sleep 1000"]
        out = output(probe, "ro", task(a, command=script, console="read-only", private_users="no"))
        assert "/dev/pts/" in out and "TERM=vt220" in out, out
        assert "\r\n" in out, out  # through a terminal
        out = output(probe, "pipe", task(a, command=script, console="pipe", private_users="no"))
        assert "not a tty" in out and "\r\n" not in out, out
    finally:
        probe.close()
    assert mount_points() == before
