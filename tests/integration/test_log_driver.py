"""`husk run --log-driver`: the container's output still reaches husk's own
stdout and stderr byte for byte, and each line also goes to a syslog,
GELF or fluentd receiver or to journald, as docker's log drivers send it.
Receivers are sockets the tests make: UDP and TCP on the loopback, unix
sockets in the test's directory, and journald's socket inside a private
mount namespace (a tmpfs over /run/systemd there, so the host's /run is not
touched)."""
import gzip
import json
import os
import re
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib

import msgpack
import pytest

from husktest import HUSK, children_of_us, wait_for

SCRIPT = "echo out-one; echo err-one >&2; echo; printf 'no-newline'"


def recv_all(sock, want, timeout=10):
    """Datagrams until `want` arrived (or the timeout)."""
    sock.settimeout(0.2)
    got = []
    wait_for(lambda: _recv_into(sock, got) or len(got) >= want, timeout=timeout)
    return got


def _recv_into(sock, got):
    try:
        got.append(sock.recv(65536).decode())
    except (socket.timeout, BlockingIOError):
        pass
    return False


def test_syslog_over_udp_with_tag_and_facility(husk, bundle):
    bundle.set_args("sh", "-c", SCRIPT)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        r = husk.run("--log-driver", "syslog", "--log-opt", f"address=udp://127.0.0.1:{port}",
                     "--log-opt", "tag=web", "--log-opt", "facility=local3")
        assert r.returncode == 0, r.stderr
        # Passthrough: exactly what the container wrote, on the same streams.
        assert r.stdout == "out-one\n\nno-newline"
        assert r.stderr == "err-one\n"
        msgs = recv_all(rx, 4)
    # local3 = 19: stdout lines at info (19*8+6), stderr at err (19*8+3);
    # the local format (docker's default): "<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG".
    stamp = r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
    by_text = {m.rsplit(": ", 1)[-1]: m for m in msgs}
    assert sorted(by_text) == sorted(["out-one", "err-one", "", "no-newline"]), msgs
    assert re.fullmatch(rf"<158>{stamp} web\[\d+\]: out-one", by_text["out-one"]), by_text
    assert re.fullmatch(rf"<155>{stamp} web\[\d+\]: err-one", by_text["err-one"]), by_text
    assert re.fullmatch(rf"<158>{stamp} web\[\d+\]: no-newline", by_text["no-newline"]), by_text


def run_to_tcp_listener(husk, log_args, until):
    """`husk run` with its log driver sending to a TCP listener of the
    test's on loopback ({port} in log_args is its port): the container's id
    and the bytes that arrived once until(data) holds or the sender closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        cid = husk.new_id()
        r = husk.run(*[a.format(port=port) for a in log_args], cid=cid)
        assert r.returncode == 0, r.stderr
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while not until(data):
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
    return cid, data


def test_syslog_rfc5424_over_tcp(husk, bundle):
    bundle.set_args("sh", "-c", "echo a; echo b")
    cid, data = run_to_tcp_listener(husk, ["--log-driver", "syslog", "--log-opt", "address=tcp://127.0.0.1:{port}",
                                           "--log-opt", "format=rfc5424micro"], lambda d: d.count(b"\n") >= 2)
    lines = data.decode().splitlines()
    host = socket.gethostname()
    tag = cid[:12]  # the default tag: the first 12 characters of the id, as docker's {{.ID}}
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)"
    assert len(lines) == 2, lines
    for line, text in zip(lines, ["a", "b"]):
        # daemon (3) * 8 + info (6)
        assert re.fullmatch(rf"<30>1 {ts} {re.escape(host)} {tag} \d+ {tag} - {text}", line), line


def test_syslog_unixgram_splits_long_lines(husk, bundle, tmp_path):
    bundle.set_args("sh", "-c", "head -c 40000 /dev/zero | tr '\\0' x; echo")
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as rx:
        rx.bind(path)
        r = husk.run("--log-driver", "syslog", "--log-opt", f"address=unixgram://{path}")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "x" * 40000 + "\n"
        msgs = recv_all(rx, 3)
    parts = [m.split("]: ", 1)[1] for m in msgs]
    assert [len(p) for p in parts] == [16384, 16384, 40000 - 2 * 16384]


JOURNAL_RECEIVER = textwrap.dedent("""
    import json, os, socket, struct, subprocess, sys
    husk, argv = sys.argv[1], json.loads(sys.argv[2])
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", "/run/systemd"], check=True)
    entries = []
    if os.environ.get("NO_JOURNAL") != "1":
        os.mkdir("/run/systemd/journal")
        rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        rx.bind("/run/systemd/journal/socket")
    r = subprocess.run([husk] + argv, capture_output=True, text=True)
    if os.environ.get("NO_JOURNAL") != "1":
        rx.setblocking(False)
        while True:
            try:
                d = rx.recv(1 << 20)
            except BlockingIOError:
                break
            e, i = {}, 0
            while i < len(d):
                nl = d.index(b"\\n", i)
                line = d[i:nl]
                if b"=" in line:
                    k, v = line.split(b"=", 1)
                    i = nl + 1
                else:  # binary-safe: KEY\\n<le64 size>VALUE\\n
                    k = line
                    n = struct.unpack("<Q", d[nl + 1:nl + 9])[0]
                    v = d[nl + 9:nl + 9 + n]
                    i = nl + 9 + n + 1
                e[k.decode()] = v.decode()
            entries.append(e)
    print(json.dumps({"rc": r.returncode, "out": r.stdout, "err": r.stderr, "entries": entries}))
""")


def run_with_journal(husk, argv, no_journal=False):
    """husk with argv in a private mount namespace where a socket of ours is
    journald's; returns its exit code, output and the journal entries."""
    env = dict(os.environ, NO_JOURNAL="1" if no_journal else "0")
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", sys.executable, "-c", JOURNAL_RECEIVER,
                        HUSK, json.dumps(["--root", husk.root] + argv)], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_journald_entries_carry_the_container_fields(husk, bundle):
    bundle.set_args("sh", "-c", "echo hello; echo 'bad thing' >&2")
    bundle.write()
    cid = husk.new_id()
    res = run_with_journal(husk, ["run", "--bundle", bundle.path, "--log-driver", "journald",
                                  "--log-opt", "tag=redis", "--log-opt", "name=cache-1",
                                  "--log-opt", "field=NOMAD_JOB=jobs", cid])
    assert res["rc"] == 0, res["err"]
    assert res["out"] == "hello\n" and res["err"] == "bad thing\n"
    entries = {e["MESSAGE"]: e for e in res["entries"]}
    assert set(entries) == {"hello", "bad thing"}, res["entries"]
    out, err = entries["hello"], entries["bad thing"]
    assert out["PRIORITY"] == "6" and err["PRIORITY"] == "3"
    for e in (out, err):
        assert e["CONTAINER_ID"] == cid[:12]
        assert e["CONTAINER_ID_FULL"] == cid
        assert e["CONTAINER_NAME"] == "cache-1"
        assert e["CONTAINER_TAG"] == "redis" and e["SYSLOG_IDENTIFIER"] == "redis"
        assert e["NOMAD_JOB"] == "jobs"
        assert "CONTAINER_PARTIAL_MESSAGE" not in e


def test_journald_long_line_is_sent_in_partial_pieces(husk, bundle):
    bundle.set_args("sh", "-c", "head -c 20000 /dev/zero | tr '\\0' y; echo")
    bundle.write()
    res = run_with_journal(husk, ["run", "--bundle", bundle.path, "--log-driver", "journald", husk.new_id()])
    assert res["rc"] == 0, res["err"]
    pieces = res["entries"]
    assert [len(e["MESSAGE"]) for e in pieces] == [16384, 20000 - 16384]
    assert pieces[0]["CONTAINER_PARTIAL_MESSAGE"] == "true"
    assert "CONTAINER_PARTIAL_MESSAGE" not in pieces[1]


def test_journald_missing_is_an_error_before_the_container_exists(husk, bundle):
    bundle.set_args("sh", "-c", "echo never")
    bundle.write()
    res = run_with_journal(husk, ["run", "--bundle", bundle.path, "--log-driver", "journald", husk.new_id()],
                           no_journal=True)
    assert res["rc"] != 0
    assert "log driver journald: connect to journald (/run/systemd/journal/socket)" in res["err"], res["err"]
    assert "is systemd-journald running?" in res["err"]
    assert "never" not in res["out"]
    assert os.listdir(husk.root) == []


def test_bad_log_options_are_errors_naming_the_option(husk, bundle):
    bundle.set_args("true")
    cases = [
        (["--log-driver", "logentries"],
         '--log-driver: "logentries" is not a log driver husk has (journald, syslog, gelf, fluentd, splunk, awslogs, gcplogs)'),
        (["--log-driver", "gelf"], "--log-opt address: the gelf log driver needs one"),
        (["--log-driver", "gelf", "--log-opt", "address=udp://127.0.0.1"], "names no port"),
        (["--log-driver", "gelf", "--log-opt", "address=tls://127.0.0.1:12201"], "GELF goes over udp:// or tcp://, as docker's gelf driver sends it (it has no TLS)"),
        (["--log-driver", "gelf", "--log-opt", "address=tcp://127.0.0.1:12201", "--log-opt", "compression-type=gzip"],
         "--log-opt compression-type: GELF over TCP is not compressed (UDP only)"),
        (["--log-driver", "gelf", "--log-opt", "address=udp://127.0.0.1:12201", "--log-opt", "tcp-max-reconnect=2"],
         "--log-opt tcp-max-reconnect: only for GELF over TCP"),
        (["--log-driver", "gelf", "--log-opt", "address=udp://127.0.0.1:12201", "--log-opt", "compression-type=lz4"],
         '--log-opt compression-type: "lz4" is not a GELF compression'),
        (["--log-driver", "gelf", "--log-opt", "address=udp://127.0.0.1:12201", "--log-opt", "compression-level=10"],
         "--log-opt compression-level: 10 is not in -1..9"),
        (["--log-driver", "gelf", "--log-opt", "address=udp://127.0.0.1:12201", "--log-opt", "field=_id=1"],
         "GELF does not allow the field _id"),
        (["--log-driver", "gelf", "--log-opt", "gelf-address=udp://127.0.0.1:12201"],
         "--log-opt gelf-address: not an option of the gelf log driver"),
        (["--log-driver", "fluentd", "--log-opt", "address=udp://127.0.0.1:24224"],
         "the forward protocol goes over tcp://, tls:// or unix://"),
        (["--log-driver", "fluentd", "--log-opt", "async=maybe"], '--log-opt async: "maybe" is not a boolean'),
        (["--log-driver", "fluentd", "--log-opt", "async=true", "--log-opt", "async-connect=true"], "not both"),
        (["--log-driver", "fluentd", "--log-opt", "retry-wait=5x"], "--log-opt retry-wait"),
        (["--log-driver", "fluentd", "--log-opt", "buffer-limit=lots"], '--log-opt buffer-limit: "lots" is not a size'),
        (["--log-driver", "fluentd", "--log-opt", "fluentd-address=x"],
         "--log-opt fluentd-address: not an option of the fluentd log driver"),
        (["--log-driver", "syslog", "--log-opt", "syslog-address=udp://x"],
         "--log-opt syslog-address: not an option of the syslog log driver (address, facility, format, tag, tls-"),
        (["--log-driver", "syslog", "--log-opt", "address=127.0.0.1:514"], '--log-opt address: "127.0.0.1:514": expected'),
        (["--log-driver", "syslog", "--log-opt", "address=tcp://127.0.0.1:6514", "--log-opt", "tls-skip-verify=true"],
         "--log-opt tls-skip-verify: only for a tcp+tls:// address"),
        (["--log-driver", "syslog", "--log-opt", "address=udp://127.0.0.1:99999"], "the port must be 1-65535"),
        (["--log-driver", "syslog", "--log-opt", "facility=local9"], '--log-opt facility: "local9" is not a syslog facility'),
        (["--log-driver", "syslog", "--log-opt", "format=json"], '--log-opt format: "json" is not a syslog format'),
        (["--log-driver", "journald", "--log-opt", "field=_PID=1"], "--log-opt field=_PID=1: expected NAME=VALUE"),
        (["--log-opt", "tag=x"], "--log-opt needs a --log-driver"),
        (["--detach", "--log-driver", "syslog"], "--log-driver: a detached run has no monitor"),
    ]
    for extra, message in cases:
        r = husk.run(*extra)
        assert r.returncode != 0, extra
        assert message in r.stderr, (extra, r.stderr)
        assert os.listdir(husk.root) == [], extra


@pytest.mark.parametrize("driver,opt,shown", [
    ("syslog", "address=tcp://127.0.0.1:{port}", "tcp://127.0.0.1:{port}"),
    ("gelf", "address=tcp://127.0.0.1:{port}", "tcp://127.0.0.1:{port}"),
    ("fluentd", "address=127.0.0.1:{port}", "127.0.0.1:{port}"),
])
def test_refused_tcp_connection_is_an_error_and_leaves_nothing(husk, bundle, driver, opt, shown):
    bundle.set_args("sh", "-c", "echo never")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = husk.run("--log-driver", driver, "--log-opt", opt.format(port=port))
    assert r.returncode != 0
    assert f"log driver {driver}: connect to {shown.format(port=port)}" in r.stderr and "refused" in r.stderr, r.stderr
    assert "never" not in r.stdout
    assert os.listdir(husk.root) == []


def test_forwarder_outlives_a_killed_monitor_and_ends_with_the_container(husk, bundle):
    """As conmon's: the forwarder drains the pipes for as long as the
    container writes, even when the monitor itself is gone."""
    bundle.set_args("sh", "-c", "echo first; read x; echo after")
    bundle.write()
    cid = husk.new_id()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        monitor = subprocess.Popen([HUSK, "--root", husk.root, "run", "--keep", "--bundle", bundle.path,
                                    "--log-driver", "syslog", "--log-opt", f"address=udp://127.0.0.1:{port}", cid],
                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert recv_all(rx, 1)[0].endswith(": first")
            monitor.kill()
            monitor.wait()
            # The container is still running, and its next line still arrives.
            assert husk.state(cid)["status"] == "running"
            monitor.stdin.write(b"go\n")
            monitor.stdin.close()
            assert recv_all(rx, 1)[0].endswith(": after")
            # With the container gone, so is the forwarder (it is ours now:
            # the test is a subreaper).
            assert wait_for(lambda: husk.state(cid)["status"] == "stopped")
            assert wait_for(lambda: not forwarders_of_us())
        finally:
            husk.cmd("delete", "--force", cid)
            wait_for(lambda: not forwarders_of_us())


def forwarders_of_us():
    found = []
    for pid in children_of_us():
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "husk-log":
                    found.append(pid)
        except OSError:
            pass
    return found


# ---- gelf ---------------------------------------------------------------------------------------------

def gelf_messages(datagrams):
    """GELF messages from UDP datagrams: chunks (0x1e 0x0f, 8-byte id, seq,
    count) put together, then gzip, zlib or nothing undone."""
    whole, chunks = [], {}
    for d in datagrams:
        if d[:2] == b"\x1e\x0f":
            msg_id, seq, count = d[2:10], d[10], d[11]
            assert len(d) <= 1420 and count <= 128
            chunks.setdefault(msg_id, {})[seq] = (count, d[12:])
            parts = chunks[msg_id]
            if len(parts) == count:
                whole.append(b"".join(parts[i][1] for i in range(count)))
        else:
            whole.append(d)
    out = []
    for w in whole:
        if w[:2] == b"\x1f\x8b":
            w = gzip.decompress(w)
        elif w[:1] == b"\x78":
            w = zlib.decompress(w)
        out.append(json.loads(w))
    return out


def recv_datagrams(sock, until, timeout=10):
    sock.settimeout(0.2)
    got = []

    def more():
        try:
            got.append(sock.recv(65536))
        except (socket.timeout, BlockingIOError):
            pass
        return until(got)
    assert wait_for(more, timeout=timeout), got
    return got


def test_gelf_over_udp_has_dockers_fields_and_levels(husk, bundle):
    bundle.set_args("sh", "-c", SCRIPT)
    cid = husk.new_id()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        before = time.time()
        r = husk.run("--log-driver", "gelf", "--log-opt", f"address=udp://127.0.0.1:{port}",
                     "--log-opt", "tag=web", "--log-opt", "name=web-1", "--log-opt", "image-name=busybox:1",
                     "--log-opt", "image-id=sha256:abc", "--log-opt", "command=sh -c x",
                     "--log-opt", "created=2026-01-02T03:04:05.5Z", "--log-opt", "field=team=payments",
                     "--log-opt", "field=_env_mode=prod", cid=cid)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "out-one\n\nno-newline" and r.stderr == "err-one\n"
        datagrams = recv_datagrams(rx, lambda got: len(got) >= 4)
    # gzip by default, as docker's
    assert all(d[:2] == b"\x1f\x8b" for d in datagrams), datagrams
    msgs = {m["short_message"]: m for m in gelf_messages(datagrams)}
    assert sorted(msgs) == sorted(["out-one", "err-one", "", "no-newline"]), msgs
    assert msgs["out-one"]["level"] == 6 and msgs["no-newline"]["level"] == 6 and msgs["err-one"]["level"] == 3
    for m in msgs.values():
        assert m["version"] == "1.1"
        assert m["host"] == socket.gethostname()
        assert isinstance(m["timestamp"], float) and before - 1 <= m["timestamp"] <= time.time() + 1
        assert m["_container_id"] == cid and m["_container_name"] == "web-1" and m["_tag"] == "web"
        assert m["_image_name"] == "busybox:1" and m["_image_id"] == "sha256:abc"
        assert m["_command"] == "sh -c x" and m["_created"] == "2026-01-02T03:04:05.5Z"
        assert m["_team"] == "payments" and m["_env_mode"] == "prod"


def test_gelf_messages_are_valid_utf8(husk, bundle):
    """As Go's encoding/json in docker: a byte that is not UTF-8 becomes U+FFFD."""
    bundle.set_args("sh", "-c", "printf 'caf\\303\\251 \\377 ok\\n'")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        r = husk.run("--log-driver", "gelf", "--log-opt", f"address=udp://127.0.0.1:{port}",
                     "--log-opt", "compression-type=none")
        assert r.returncode == 0, r.stderr
        datagrams = recv_datagrams(rx, lambda got: len(got) >= 1)
    json.loads(datagrams[0].decode("utf-8"))  # strict: valid UTF-8
    assert gelf_messages(datagrams)[0]["short_message"] == "caf\u00e9 \ufffd ok"


def test_gelf_udp_chunks_long_messages_compressed_or_not(husk, bundle):
    # Uncompressed: every 16 KiB piece of a 40000-byte line is chunked.
    bundle.set_args("sh", "-c", "head -c 40000 /dev/zero | tr '\\0' x; echo")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        port = rx.getsockname()[1]
        r = husk.run("--log-driver", "gelf", "--log-opt", f"address=udp://127.0.0.1:{port}",
                     "--log-opt", "compression-type=none")
        assert r.returncode == 0, r.stderr
        datagrams = recv_datagrams(rx, lambda got: len(gelf_messages(got)) >= 3)
    assert all(d[:2] == b"\x1e\x0f" for d in datagrams)
    assert [len(m["short_message"]) for m in gelf_messages(datagrams)] == [16384, 16384, 40000 - 2 * 16384]

    # zlib of a line that does not compress much is chunked too; a short
    # line is one datagram.
    bundle.set_args("sh", "-c", "head -c 6000 /dev/urandom | base64 -w0; echo; echo short")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        port = rx.getsockname()[1]
        r = husk.run("--log-driver", "gelf", "--log-opt", f"address=udp://127.0.0.1:{port}",
                     "--log-opt", "compression-type=zlib", "--log-opt", "compression-level=9")
        assert r.returncode == 0, r.stderr
        datagrams = recv_datagrams(rx, lambda got: len(gelf_messages(got)) >= 2)
    msgs = gelf_messages(datagrams)
    assert [m["short_message"] for m in msgs] == [r.stdout.split("\n")[0], "short"]
    assert sum(d[:2] == b"\x1e\x0f" for d in datagrams) > 1
    assert any(d[:1] == b"\x78" for d in datagrams)  # the short one: a zlib stream on its own


def test_gelf_over_tcp_is_null_delimited_json(husk, bundle):
    bundle.set_args("sh", "-c", "echo a; echo b >&2")
    cid, data = run_to_tcp_listener(husk, ["--log-driver", "gelf", "--log-opt", "address=tcp://127.0.0.1:{port}",
                                           "--log-opt", "tcp-max-reconnect=1", "--log-opt", "tcp-reconnect-delay=0"],
                                    lambda d: d.count(b"\0") >= 2)
    frames = data.split(b"\0")
    assert frames[-1] == b"" and len(frames) == 3, data
    msgs = [json.loads(f) for f in frames[:2]]
    assert [(m["short_message"], m["level"]) for m in sorted(msgs, key=lambda m: m["short_message"])] == \
        [("a", 6), ("b", 3)]
    assert all(m["_container_id"] == cid and m["_tag"] == cid[:12] for m in msgs)


# ---- fluentd ------------------------------------------------------------------------------------------

class ForwardReceiver:
    """A fluentd forward input: msgpack events off stream connections,
    answering {"ack": chunk} when an event asks for one."""

    def __init__(self, sock, ack=True, unacked=0):
        self.sock, self.ack, self.events, self.conns = sock, ack, [], 0
        self.unacked = unacked  # this many events first get no ack, and their connection closed
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            self.conns += 1
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        unpacker = msgpack.Unpacker(raw=False)
        conn.settimeout(0.2)
        with conn:
            while not self.stop:
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                unpacker.feed(data)
                for ev in unpacker:
                    self.events.append(ev)
                    if self.unacked > 0:
                        self.unacked -= 1
                        return
                    if self.ack and len(ev) == 4 and "chunk" in ev[3]:
                        conn.sendall(msgpack.packb({"ack": ev[3]["chunk"]}))

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close()


def test_fluentd_forward_events_carry_dockers_record(husk, bundle):
    bundle.set_args("sh", "-c", SCRIPT)
    cid = husk.new_id()
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    rx = ForwardReceiver(srv)
    try:
        before = int(time.time())
        r = husk.run("--log-driver", "fluentd", "--log-opt", f"address=tcp://127.0.0.1:{port}",
                     "--log-opt", "tag=docker.web", "--log-opt", "name=/web-1",
                     "--log-opt", "field=team=payments", cid=cid)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "out-one\n\nno-newline" and r.stderr == "err-one\n"
        assert wait_for(lambda: len(rx.events) >= 4), rx.events
    finally:
        rx.close()
    by_log = {ev[2]["log"]: ev for ev in rx.events}
    assert sorted(by_log) == sorted(["out-one", "err-one", "", "no-newline"])
    for text, ev in by_log.items():
        assert len(ev) == 3  # no option map without request-ack
        tag, t, record = ev
        assert tag == "docker.web"
        assert isinstance(t, int) and before - 1 <= t <= time.time() + 1  # whole seconds by default
        assert record == {"container_id": cid, "container_name": "/web-1", "team": "payments",
                          "source": "stderr" if text == "err-one" else "stdout", "log": text}


def test_fluentd_over_unix_with_sub_second_time_and_acks(husk, bundle, tmp_path):
    bundle.set_args("sh", "-c", "echo one; echo two; head -c 20000 /dev/zero | tr '\\0' z; echo")
    path = str(tmp_path / "fluentd.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    rx = ForwardReceiver(srv)
    cid = husk.new_id()
    try:
        r = husk.run("--log-driver", "fluentd", "--log-opt", f"address=unix://{path}",
                     "--log-opt", "sub-second-precision=true", "--log-opt", "request-ack=true", cid=cid)
        # husk waits for every ack: all events are in when it is done.
        assert r.returncode == 0, r.stderr
        events = list(rx.events)
    finally:
        rx.close()
    assert [ev[2]["log"][:5] for ev in events] == ["one", "two", "z" * 5, "z" * 5]
    chunks = set()
    for tag, t, record, option in events:
        assert tag == cid[:12]
        # EventTime: ext type 0, seconds and nanoseconds big-endian
        assert isinstance(t, msgpack.ExtType) and t.code == 0 and len(t.data) == 8
        sec, nsec = struct.unpack(">II", t.data)
        assert abs(sec - time.time()) < 60 and 0 <= nsec < 10**9
        chunks.add(option["chunk"])
    assert len(chunks) == 4
    # A line sent in pieces has docker's partial-message fields.
    a, b = events[2][2], events[3][2]
    assert len(a["log"]) == 16384 and len(b["log"]) == 20000 - 16384
    assert a["partial_message"] == b["partial_message"] == "true" and a["partial_id"] == b["partial_id"]
    assert (a["partial_ordinal"], a["partial_last"], b["partial_ordinal"], b["partial_last"]) == \
        ("1", "false", "2", "true")
    assert "partial_message" not in events[0][2]


def test_fluentd_sends_an_unacked_event_again(husk, bundle):
    bundle.set_args("sh", "-c", "echo one; echo two")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    rx = ForwardReceiver(srv, unacked=1)
    try:
        r = husk.run("--log-driver", "fluentd", "--log-opt", f"address=127.0.0.1:{port}",
                     "--log-opt", "request-ack=true", "--log-opt", "retry-wait=100ms")
        assert r.returncode == 0, r.stderr
        events = list(rx.events)
    finally:
        rx.close()
    # "one" went twice with the same chunk id (fluentd drops the duplicate),
    # over a new connection.
    assert [ev[2]["log"] for ev in events] == ["one", "one", "two"]
    assert events[0][3]["chunk"] == events[1][3]["chunk"] != events[2][3]["chunk"]
    assert rx.conns == 2


def test_fluentd_async_reconnect_interval_makes_new_connections(husk, bundle):
    """fluentd-async-reconnect-interval: in async mode a connection this old
    is replaced before the next event (an address of several fluentds gets
    them all); outside 100ms..10s it is an error, as in docker."""
    bundle.set_args("sh", "-c", "for i in 1 2 3 4 5 6; do echo line$i; sleep 0.25; done")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    rx = ForwardReceiver(srv)
    try:
        r = husk.run("--log-driver", "fluentd", "--log-opt", f"address=127.0.0.1:{port}",
                     "--log-opt", "async=true", "--log-opt", "async-reconnect-interval=400ms")
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: len(rx.events) >= 6), rx.events
        assert [ev[2]["log"] for ev in rx.events] == [f"line{i}" for i in range(1, 7)]
        # 1.5 s of lines, a new connection every 0.4 s: 3 or 4 of them.
        assert 3 <= rx.conns <= 5, rx.conns
    finally:
        rx.close()
    r = husk.run("--log-driver", "fluentd", "--log-opt", "async=true", "--log-opt", "async-reconnect-interval=50ms")
    assert r.returncode != 0
    assert '--log-opt async-reconnect-interval: "50ms" is not between 100ms and 10s' in r.stderr, r.stderr


def test_fluentd_async_waits_for_a_late_destination(husk, bundle):
    """fluentd-async: no fluentd at start is no error; lines wait for it."""
    bundle.set_args("sh", "-c", "echo early; sleep 1; echo late")
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
    port = srv.getsockname()[1]
    holder = {}
    timer = threading.Timer(0.5, lambda: holder.setdefault("rx", ForwardReceiver(srv)))
    timer.start()
    try:
        r = husk.run("--log-driver", "fluentd", "--log-opt", f"address=127.0.0.1:{port}",
                     "--log-opt", "async=true", "--log-opt", "retry-wait=100ms")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "early\nlate\n"
        timer.join()
        assert wait_for(lambda: len(holder["rx"].events) >= 2), holder["rx"].events
        assert [ev[2]["log"] for ev in holder["rx"].events] == ["early", "late"]
    finally:
        timer.cancel()
        timer.join()
        if "rx" in holder:
            holder["rx"].close()
        else:
            srv.close()
