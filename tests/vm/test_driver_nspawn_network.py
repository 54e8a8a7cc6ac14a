"""The nspawn flavor's network_bridge onto a bridge husk did not make (what
systemd-nspawn's --network-bridge always means): the task's veth joins it,
its host0 (nspawn's name) comes up with no address (DHCP or whatever serves the bridge
configures it), StopTask takes the veth away and leaves the bridge."""
import subprocess

from husktest import mount_points
from test_driver_fields import Probe
from test_driver_nspawn_users import images, task  # noqa: F401  (fixture)


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def test_network_bridge_joins_an_existing_bridge(tmp_path, images):  # noqa: F811
    before = mount_points()
    ip("link", "add", "brx", "type", "bridge")
    probe = Probe(tmp_path, name="nomad-driver-nspawn")
    try:
        ip("addr", "add", "192.0.2.1/24", "dev", "brx")
        ip("link", "set", "brx", "up")
        a, _ = images
        r = probe.start("one", task(a, network_veth=True, network_bridge="brx", private_users="no"), name="web")
        assert r["ok"], r
        assert "hk" in ip("-o", "link", "show", "master", "brx").stdout
        out = probe.sh("one", "ip -o link show host0; echo v4:; ip -o -4 addr show host0")["stdout"]
        link, v4 = out.split("v4:")
        assert ",UP" in link and v4.strip() == "", out
        # An address given from the bridge's side reaches the host through it.
        probe.sh("one", "ip addr add 192.0.2.7/24 dev host0")  # nspawn keeps CAP_NET_ADMIN in a private network
        got = probe.sh("one", "for i in 1 2 3 4 5; do ping -c1 -W1 192.0.2.1 >/dev/null && echo ok && exit 0; "
                       "sleep 1; done; exit 1")["stdout"]
        assert got.strip() == "ok", got
        assert probe.stop("one")["ok"]
        assert ip("-o", "link", "show", "master", "brx").stdout.strip() == ""
        assert ip("link", "show", "brx", check=False).returncode == 0  # the bridge stays: not husk's
    finally:
        probe.close()
        ip("link", "del", "brx", check=False)
    assert mount_points() == before
