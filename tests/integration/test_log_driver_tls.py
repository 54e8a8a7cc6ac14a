"""`husk run --log-driver` for the drivers husk-log sends (TLS and HTTP):
splunk's HTTP Event Collector over HTTPS, syslog over tcp+tls, fluentd
over tls, CloudWatch Logs (awslogs) with SigV4, and Google Cloud Logging
(gcplogs). The receivers are the test's own, on the loopback: an HTTPS
server with a self-signed certificate that `openssl req` makes in the
test's directory, a TLS syslog listener, an HTTP endpoint that checks the
AWS signature with the test's keys, and a fake Google (token endpoint and
entries:write, in a namespace whose /etc/hosts names it) that checks the
service account's signed token request."""
import gzip
import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import msgpack
import pytest

from husktest import HUSK

SCRIPT = "echo out-one; echo err-one >&2; echo; printf 'no-newline'"


def make_cert(tmp_path, name="server", names="DNS:localhost,IP:127.0.0.1"):
    """A self-signed certificate for `names` (localhost and 127.0.0.1): (cert, key)."""
    cert, key = str(tmp_path / f"{name}.pem"), str(tmp_path / f"{name}.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName={names}"],
                   check=True, capture_output=True)
    return cert, key


class Recorder(http.server.BaseHTTPRequestHandler):
    """Keeps every request (method, path, headers, body) on the server."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _record(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        self.server.requests.append((self.command, self.path, dict(self.headers), body))
        status, answer = self.server.answer(self.command, self.path, self.headers, body)
        raw = isinstance(answer, bytes)  # as it is, else as JSON
        data = answer if raw else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if raw else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_OPTIONS = do_GET = _record


class HttpReceiver:
    """An HTTP(S) server on 127.0.0.1 in a thread; `answer(method, path,
    headers, body)` gives (status, JSON or bytes) for each request."""

    def __init__(self, answer, cert=None, address=("127.0.0.1", 0)):
        self.server = http.server.ThreadingHTTPServer(address, Recorder)
        self.server.daemon_threads = True
        self.server.requests = []
        self.server.answer = answer
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*cert)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def requests(self):
        return self.server.requests

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def hec_ok(method, path, headers, body):
    return 200, {"text": "Success", "code": 0}


def json_stream(data):
    """The JSON objects of a body that has them one after another."""
    dec, out, i = json.JSONDecoder(), [], 0
    text = data.decode()
    while i < len(text):
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
    return out


def needed_libraries(path):
    out = subprocess.run(["readelf", "-d", path], check=True, capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def test_husk_loads_no_tls_library_husk_log_does():
    """The TLS and HTTP drivers live in husk-log so that husk's start stays
    one shared library (libc)."""
    assert [x for x in needed_libraries(HUSK) if not x.startswith("ld-linux")] == ["libc.so.6"]
    husk_log = os.path.join(os.path.dirname(os.path.dirname(HUSK)), "logs", "husk-log")
    libs = needed_libraries(husk_log)
    assert "libcurl.so.4" in libs and "libssl.so.3" in libs, libs


# ---- splunk ------------------------------------------------------------------------------------------

def test_splunk_posts_hec_events_over_https(husk, bundle, tmp_path):
    bundle.set_args("sh", "-c", SCRIPT)
    cert = make_cert(tmp_path)
    rx = HttpReceiver(hec_ok, cert)
    cid = husk.new_id()
    try:
        before = time.time()
        r = husk.run("--log-driver", "splunk", "--log-opt", f"url=https://127.0.0.1:{rx.port}",
                     "--log-opt", "token=0d2c-test-token", "--log-opt", f"capath={cert[0]}",
                     "--log-opt", "source=web-src", "--log-opt", "sourcetype=web-type", "--log-opt", "index=main",
                     "--log-opt", "tag=web", "--log-opt", "field=team=payments", "--log-opt", "field=app=shop",
                     cid=cid)
        assert r.returncode == 0, r.stderr
        # Passthrough stays: what the container wrote, on the same streams.
        assert r.stdout == "out-one\n\nno-newline" and r.stderr == "err-one\n"
        requests = list(rx.requests)
    finally:
        rx.close()
    # The connection check first (docker's splunk-verify-connection), then the events.
    assert requests[0][0] == "OPTIONS" and requests[0][1] == "/services/collector/event/1.0"
    posts = [q for q in requests if q[0] == "POST"]
    assert posts, requests
    events = []
    for method, path, headers, body in posts:
        assert path == "/services/collector/event/1.0"
        assert headers["Authorization"] == "Splunk 0d2c-test-token"
        events += json_stream(body)
    host = socket.gethostname()
    for ev in events:
        assert set(ev) == {"event", "time", "host", "source", "sourcetype", "index"}, ev
        assert (ev["host"], ev["source"], ev["sourcetype"], ev["index"]) == (host, "web-src", "web-type", "main")
        assert re.fullmatch(r"\d+\.\d{6}", ev["time"]), ev["time"]
        assert before - 1 <= float(ev["time"]) <= time.time() + 1
        assert ev["event"]["tag"] == "web" and ev["event"]["attrs"] == {"team": "payments", "app": "shop"}
    # Each stream's lines in order, each with its source.
    out = [ev["event"]["line"] for ev in events if ev["event"]["source"] == "stdout"]
    err = [ev["event"]["line"] for ev in events if ev["event"]["source"] == "stderr"]
    assert out == ["out-one", "", "no-newline"] and err == ["err-one"], events
    assert set(events[0]["event"]) == {"line", "source", "tag", "attrs"}


def test_splunk_raw_and_json_formats_gzip_and_no_tag(husk, bundle, tmp_path):
    bundle.set_args("sh", "-c", "echo '{\"k\": [1, 2]}'; echo plain; echo '   '")
    cert = make_cert(tmp_path)
    bodies = {}
    for fmt in ("json", "raw"):
        rx = HttpReceiver(hec_ok, cert)
        try:
            r = husk.run("--log-driver", "splunk", "--log-opt", f"url=https://localhost:{rx.port}/",
                         "--log-opt", "token=t", "--log-opt", "insecureskipverify=true", "--log-opt", f"format={fmt}",
                         "--log-opt", "gzip=true", "--log-opt", "gzip-level=9", "--log-opt", "verify-connection=false",
                         "--log-opt", "tag=" if fmt == "json" else "tag=api", "--log-opt", "field=a=1")
            assert r.returncode == 0, r.stderr
            requests = list(rx.requests)
        finally:
            rx.close()
        assert [q[0] for q in requests] == ["POST"], requests  # no OPTIONS without verify-connection
        assert requests[0][2]["Content-Encoding"] == "gzip"
        bodies[fmt] = json_stream(gzip.decompress(requests[0][3]))
    # json: a line that is JSON is the event's JSON; no tag when the tag is empty.
    lines = [ev["event"]["line"] for ev in bodies["json"]]
    assert lines == [{"k": [1, 2]}, "plain", "   "]
    assert all("tag" not in ev["event"] for ev in bodies["json"])
    # raw: the event is the text with the tag and attrs before it; blank lines are not sent.
    assert [ev["event"] for ev in bodies["raw"]] == ['api a=1 {"k": [1, 2]}', "api a=1 plain"]


def test_splunk_batches_follow_dockers_batch_size_variable(husk, bundle):
    bundle.set_args("sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done")
    rx = HttpReceiver(hec_ok)
    try:
        r = husk.run("--log-driver", "splunk", "--log-opt", f"url=http://127.0.0.1:{rx.port}", "--log-opt", "token=t",
                     "--log-opt", "verify-connection=false",
                     env=dict(os.environ, SPLUNK_LOGGING_DRIVER_POST_MESSAGES_BATCH_SIZE="2"))
        assert r.returncode == 0, r.stderr
        requests = list(rx.requests)
    finally:
        rx.close()
    batches = [[ev["event"]["line"] for ev in json_stream(q[3])] for q in requests]
    assert batches == [["line1", "line2"], ["line3", "line4"], ["line5"]], batches


def test_splunk_wrong_ca_is_an_error_before_the_container_exists(husk, bundle, tmp_path):
    bundle.set_args("sh", "-c", "echo never")
    cert = make_cert(tmp_path)
    other = make_cert(tmp_path, "other-ca")
    rx = HttpReceiver(hec_ok, cert)
    try:
        r = husk.run("--log-driver", "splunk", "--log-opt", f"url=https://127.0.0.1:{rx.port}",
                     "--log-opt", "token=t", "--log-opt", f"capath={other[0]}")
        requests = list(rx.requests)
    finally:
        rx.close()
    assert r.returncode != 0
    assert "log driver splunk: verify the connection: OPTIONS https://127.0.0.1:" in r.stderr, r.stderr
    assert "certificate" in r.stderr, r.stderr
    assert "never" not in r.stdout and requests == []
    assert os.listdir(husk.root) == []


def test_splunk_caname_is_the_name_the_certificate_must_have(husk, bundle, tmp_path):
    bundle.set_args("sh", "-c", "echo hi")
    cert = make_cert(tmp_path, names="DNS:hec.example.test")
    rx = HttpReceiver(hec_ok, cert)
    base = ["--log-driver", "splunk", "--log-opt", f"url=https://127.0.0.1:{rx.port}", "--log-opt", "token=t",
            "--log-opt", f"capath={cert[0]}"]
    try:
        wrong = husk.run(*base)
        right = husk.run(*base, "--log-opt", "caname=hec.example.test")
        requests = list(rx.requests)
    finally:
        rx.close()
    assert wrong.returncode != 0 and "verify the connection" in wrong.stderr, wrong.stderr
    assert right.returncode == 0, right.stderr
    assert [q[0] for q in requests] == ["OPTIONS", "POST"]
    assert [ev["event"]["line"] for ev in json_stream(requests[1][3])] == ["hi"]


def test_splunk_refused_token_is_an_error_before_the_container_exists(husk, bundle, tmp_path):
    bundle.set_args("sh", "-c", "echo never")
    rx = HttpReceiver(lambda *a: (403, {"text": "Invalid token", "code": 4}))
    try:
        r = husk.run("--log-driver", "splunk", "--log-opt", f"url=http://127.0.0.1:{rx.port}", "--log-opt", "token=t")
    finally:
        rx.close()
    assert r.returncode != 0
    assert "log driver splunk: verify the connection" in r.stderr and "answered 403" in r.stderr, r.stderr
    assert "never" not in r.stdout
    assert os.listdir(husk.root) == []


def test_splunk_bad_options_name_the_option(husk, bundle):
    bundle.set_args("true")
    cases = [
        (["--log-opt", "token=t"], "--log-opt url: the splunk log driver needs one"),
        (["--log-opt", "url=https://127.0.0.1:8088"], "--log-opt token: the splunk log driver needs one"),
        (["--log-opt", "url=https://127.0.0.1:8088/services", "--log-opt", "token=t"],
         '--log-opt url: "https://127.0.0.1:8088/services": expected http(s)://HOST:PORT'),
        (["--log-opt", "url=https://127.0.0.1:8088", "--log-opt", "token=t", "--log-opt", "format=xml"],
         '--log-opt format: "xml" is not a splunk format'),
        (["--log-opt", "url=https://127.0.0.1:8088", "--log-opt", "token=t", "--log-opt", "gzip-level=10"],
         "--log-opt gzip-level: 10 is not in -1..9"),
        (["--log-opt", "url=https://127.0.0.1:8088", "--log-opt", "token=t", "--log-opt", "splunk-token=t"],
         "--log-opt splunk-token: not an option of the splunk log driver"),
    ]
    for extra, message in cases:
        r = husk.run("--log-driver", "splunk", *extra)
        assert r.returncode != 0, extra
        assert message in r.stderr, (extra, r.stderr)
        assert os.listdir(husk.root) == [], extra


# ---- syslog over tcp+tls -----------------------------------------------------------------------------

class TlsListener:
    """A TLS server on 127.0.0.1 that takes one connection and keeps what
    it reads; with client_ca it asks for a client certificate."""

    def __init__(self, cert, client_ca=None, fluentd_acks=False):
        self.fluentd_acks = fluentd_acks  # answer fluentd events' chunk ids with acks
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(*cert)
        if client_ca:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(client_ca)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(10)
        self.port = self.sock.getsockname()[1]
        self.data, self.error, self.peer_cert = b"", None, None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                self.peer_cert = tls.getpeercert()
                tls.settimeout(10)
                unpacker = msgpack.Unpacker(raw=False)
                while chunk := tls.recv(65536):
                    self.data += chunk
                    if self.fluentd_acks:
                        unpacker.feed(chunk)
                        for ev in unpacker:
                            tls.sendall(msgpack.packb({"ack": ev[3]["chunk"]}))
        except (OSError, ssl.SSLError) as e:
            self.error = e

    def close(self):
        self.sock.close()
        self.thread.join(timeout=15)


def octet_frames(data):
    """RFC 5425's framing: MSG-LEN SP SYSLOG-MSG, one after another."""
    frames, i = [], 0
    while i < len(data):
        sp = data.index(b" ", i)
        n = int(data[i:sp])
        frames.append(data[sp + 1:sp + 1 + n].decode())
        i = sp + 1 + n
    return frames


def test_syslog_over_tls_is_rfc5425_framed_with_a_client_certificate(husk, bundle, tmp_path):
    bundle.set_args("sh", "-c", "echo a; echo 'b c' >&2; echo")
    cert = make_cert(tmp_path)
    client = make_cert(tmp_path, "client")
    rx = TlsListener(cert, client_ca=client[0])
    cid = husk.new_id()
    try:
        r = husk.run("--log-driver", "syslog", "--log-opt", f"address=tcp+tls://127.0.0.1:{rx.port}",
                     "--log-opt", "format=rfc5424", "--log-opt", f"tls-ca-cert={cert[0]}",
                     "--log-opt", f"tls-cert={client[0]}", "--log-opt", f"tls-key={client[1]}", cid=cid)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "a\n\n" and r.stderr == "b c\n"
    finally:
        rx.close()
    assert rx.error is None, rx.error
    assert rx.peer_cert and dict(x[0] for x in rx.peer_cert["subject"])["commonName"] == "client"
    frames = octet_frames(rx.data)
    host, tag = re.escape(socket.gethostname()), cid[:12]
    ts = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)"
    # daemon (3) * 8 + info (6) for stdout, + err (3) for stderr; no '\n' inside a frame.
    by_text = {f.rsplit(" - ", 1)[1]: f for f in frames}
    assert sorted(by_text) == ["", "a", "b c"], frames
    assert re.fullmatch(rf"<30>1 {ts} {host} {tag} \d+ {tag} - a", by_text["a"]), frames
    assert re.fullmatch(rf"<27>1 {ts} {host} {tag} \d+ {tag} - b c", by_text["b c"]), frames


def test_syslog_over_tls_local_format_is_newline_framed_without_verify(husk, bundle, tmp_path):
    bundle.set_args("sh", "-c", "echo one; echo two")
    rx = TlsListener(make_cert(tmp_path))
    try:
        r = husk.run("--log-driver", "syslog", "--log-opt", f"address=tcp+tls://localhost:{rx.port}",
                     "--log-opt", "tls-skip-verify=true", "--log-opt", "tag=web")
        assert r.returncode == 0, r.stderr
    finally:
        rx.close()
    lines = rx.data.decode().split("\n")
    assert lines[2:] == [""] and [re.sub(r".*\]: ", "", x) for x in lines[:2]] == ["one", "two"], lines
    assert all(re.match(r"<30>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d web\[\d+\]: ", x) for x in lines[:2]), lines


def test_syslog_over_tls_with_a_wrong_ca_is_an_error_before_the_container_exists(husk, bundle, tmp_path):
    bundle.set_args("sh", "-c", "echo never")
    rx = TlsListener(make_cert(tmp_path))
    other = make_cert(tmp_path, "other-ca")
    try:
        r = husk.run("--log-driver", "syslog", "--log-opt", f"address=tcp+tls://127.0.0.1:{rx.port}",
                     "--log-opt", f"tls-ca-cert={other[0]}")
    finally:
        rx.close()
    assert r.returncode != 0
    assert (f"log driver syslog: TLS handshake with tcp+tls://127.0.0.1:{rx.port}: the server's certificate: "
            in r.stderr), r.stderr
    assert "self-signed certificate" in r.stderr or "unable to get local issuer" in r.stderr, r.stderr
    assert "never" not in r.stdout and rx.data == b""
    assert os.listdir(husk.root) == []


def test_syslog_tls_options_are_checked(husk, bundle, tmp_path):
    bundle.set_args("true")
    cases = [
        (["--log-opt", "address=tcp+tls://127.0.0.1:6514", "--log-opt", f"tls-ca-cert={tmp_path}/none.pem"],
         f"--log-opt tls-ca-cert: {tmp_path}/none.pem: No such file or directory"),
        (["--log-opt", "address=tcp+tls://127.0.0.1:6514", "--log-opt", "tls-skip-verify=sure"],
         '--log-opt tls-skip-verify: "sure" is not a boolean'),
        (["--log-opt", "address=udp://127.0.0.1:514", "--log-opt", f"tls-ca-cert={tmp_path}"],
         "--log-opt tls-ca-cert: only for a tcp+tls:// address"),
        (["--log-opt", "address=tcp+tls://127.0.0.1:6514", "--log-opt", f"tls-cert={tmp_path}"],
         "--log-opt tls-cert: give tls-cert and tls-key together"),
    ]
    for extra, message in cases:
        r = husk.run("--log-driver", "syslog", *extra)
        assert r.returncode != 0, extra
        assert message in r.stderr, (extra, r.stderr)
        assert os.listdir(husk.root) == [], extra


# ---- fluentd over tls -------------------------------------------------------------------------------

def _unpack(data):
    u = msgpack.Unpacker(raw=False)
    u.feed(data)
    return list(u)


def test_fluentd_over_tls_sends_forward_events(husk, bundle, tmp_path):
    """docker's fluentd over tls:// (no options: the system's CAs, which
    SSL_CERT_FILE names here, and the address's host)."""
    bundle.set_args("sh", "-c", "echo one; echo two >&2")
    cert = make_cert(tmp_path)
    rx = TlsListener(cert, fluentd_acks=True)
    cid = husk.new_id()
    try:
        r = husk.run("--log-driver", "fluentd", "--log-opt", f"address=tls://127.0.0.1:{rx.port}",
                     "--log-opt", "tag=docker.web", "--log-opt", "request-ack=true", cid=cid,
                     env=dict(os.environ, SSL_CERT_FILE=cert[0]))
        assert r.returncode == 0, r.stderr
    finally:
        rx.close()
    assert rx.error is None, rx.error
    events = _unpack(rx.data)
    by_log = {ev[2]["log"]: ev for ev in events}
    assert sorted(by_log) == ["one", "two"], events
    assert by_log["one"][0] == "docker.web" and by_log["two"][2]["source"] == "stderr"
    assert by_log["one"][2]["container_id"] == cid
    assert all(len(ev) == 4 and ev[3]["chunk"] for ev in events)  # each acked over TLS, or husk-log warns
    assert "lines are lost" not in r.stderr



def test_fluentd_over_tls_needs_a_certificate_the_system_trusts(husk, bundle, tmp_path):
    bundle.set_args("sh", "-c", "echo never")
    rx = TlsListener(make_cert(tmp_path))
    try:
        r = husk.run("--log-driver", "fluentd", "--log-opt", f"address=tls://127.0.0.1:{rx.port}")
    finally:
        rx.close()
    assert r.returncode != 0
    assert f"log driver fluentd: TLS handshake with tls://127.0.0.1:{rx.port}: the server's certificate:" \
        in r.stderr, r.stderr
    assert "never" not in r.stdout and rx.data == b""
    assert os.listdir(husk.root) == []


# ---- awslogs -----------------------------------------------------------------------------------------

KEY_ID, SECRET = "AKIDHUSKTEST0001", "c2VjcmV0LWZvci10aGUtdGVzdA"


def sigv4_ok(method, path, headers, body, key_id, secret, region):
    """Checks the request's AWS Signature Version 4 as CloudWatch would."""
    import hashlib
    import hmac
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/logs/aws4_request, "
                     r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", headers.get("Authorization", ""))
    if not m or m[1] != key_id or m[3] != region:
        return False
    signed = m[4].split(";")
    if not {"content-type", "host", "x-amz-date", "x-amz-target"} <= set(signed) or signed != sorted(signed):
        return False
    amz_date = headers["X-Amz-Date"]
    if amz_date[:8] != m[2] or abs(time.mktime(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")) - time.mktime(time.gmtime())) > 300:
        return False
    lower = {k.lower(): v for k, v in headers.items()}
    canonical = "\n".join([method, path, "", "".join(f"{h}:{lower[h].strip()}\n" for h in signed), m[4],
                           hashlib.sha256(body).hexdigest()])
    scope = f"{m[2]}/{region}/logs/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret).encode()
    for part in (m[2], region, "logs", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), m[5])


class FakeCloudWatch:
    """CloudWatch Logs' JSON API on the loopback: signature checked with the
    test's keys, groups and streams kept, PutLogEvents' events recorded."""

    def __init__(self, secret=SECRET, groups=(), key_id=KEY_ID):
        self.key_id = key_id
        self.secret, self.groups, self.streams, self.calls, self.events = secret, set(groups), set(), [], []
        self.http = HttpReceiver(self.answer)
        self.url = f"http://127.0.0.1:{self.http.port}"

    def answer(self, method, path, headers, body):
        target = headers.get("X-Amz-Target", "")
        self.calls.append(target.split(".")[-1])
        if not sigv4_ok(method, path, headers, body, self.key_id, self.secret, "eu-west-1"):
            return 403, {"__type": "InvalidSignatureException", "message": "The request signature does not match"}
        if headers.get("Content-Type") != "application/x-amz-json-1.1" or not target.startswith("Logs_20140328."):
            return 400, {"__type": "SerializationException"}
        self.token = headers.get("X-Amz-Security-Token")
        req = json.loads(body)
        group = req["logGroupName"]
        if target.endswith(".CreateLogGroup"):
            self.groups.add(group)
            return 200, {}
        if group not in self.groups:
            return 400, {"__type": "ResourceNotFoundException", "message": "The specified log group does not exist."}
        if target.endswith(".CreateLogStream"):
            if (group, req["logStreamName"]) in self.streams:
                return 400, {"__type": "ResourceAlreadyExistsException", "message": "exists"}
            self.streams.add((group, req["logStreamName"]))
            return 200, {}
        if target.endswith(".PutLogEvents"):
            if (group, req["logStreamName"]) not in self.streams:
                return 400, {"__type": "ResourceNotFoundException", "message": "The specified log stream does not exist."}
            self.events.append(req)
            return 200, {"nextSequenceToken": "1"}
        return 400, {"__type": "UnknownOperationException"}

    def close(self):
        self.http.close()


def aws_env(**kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(kw)
    return env


def test_awslogs_creates_group_and_stream_and_puts_signed_events(husk, bundle):
    bundle.set_args("sh", "-c", "echo first; echo; echo second >&2; echo third")
    cw = FakeCloudWatch()
    try:
        before = int(time.time() * 1000)
        r = husk.run("--log-driver", "awslogs", "--log-opt", "region=eu-west-1", "--log-opt", "group=/husk/test",
                     "--log-opt", "stream=web-1", "--log-opt", "create-group=true", "--log-opt", f"endpoint={cw.url}",
                     env=aws_env(AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET, AWS_SESSION_TOKEN="tok-1"))
        after = int(time.time() * 1000)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "first\n\nthird\n" and r.stderr == "second\n"
    finally:
        cw.close()
    # The stream first: the group is missing, so it is made, then the stream again.
    assert cw.calls == ["CreateLogStream", "CreateLogGroup", "CreateLogStream", "PutLogEvents"], cw.calls
    assert cw.token == "tok-1"
    [put] = cw.events
    assert (put["logGroupName"], put["logStreamName"]) == ("/husk/test", "web-1")
    messages = [e["message"] for e in put["logEvents"]]
    # No event for the empty line (CloudWatch takes none); stdout's in order.
    assert sorted(messages) == ["first", "second", "third"] and messages.index("first") < messages.index("third")
    stamps = [e["timestamp"] for e in put["logEvents"]]
    assert all(isinstance(t, int) and before <= t <= after for t in stamps), (before, stamps, after)
    assert stamps == sorted(stamps)


def test_awslogs_reads_the_shared_credentials_file_and_defaults_the_stream(husk, bundle, tmp_path):
    bundle.set_args("sh", "-c", "echo hello")
    creds = tmp_path / "credentials"
    creds.write_text(f"[other]\naws_access_key_id = AKIDOTHER\naws_secret_access_key = x\n\n"
                     f"[default]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n")
    cw = FakeCloudWatch(groups={"app"})
    cid = husk.new_id()
    try:
        r = husk.run("--log-driver", "awslogs", "--log-opt", "group=app", "--log-opt", f"endpoint={cw.url}", cid=cid,
                     env=aws_env(AWS_REGION="eu-west-1", AWS_SHARED_CREDENTIALS_FILE=str(creds)))
        assert r.returncode == 0, r.stderr
    finally:
        cw.close()
    assert cw.calls == ["CreateLogStream", "PutLogEvents"]
    assert cw.events[0]["logStreamName"] == cid  # docker's default stream: the container's id
    assert [e["message"] for e in cw.events[0]["logEvents"]] == ["hello"]


@pytest.mark.parametrize("opt", ["datetime-format=%Y-%m-%d %H:%M", "multiline-pattern=^\\d{4}-"])
def test_awslogs_multiline_events_start_at_a_matching_line(husk, bundle, opt):
    bundle.set_args("sh", "-c", "echo preamble; echo '2026-12-04 10:00 boom'; echo '  at a'; echo; "
                                "echo '  at b'; echo '2026-12-04 10:01 next'")
    cw = FakeCloudWatch(groups={"g"})
    try:
        r = husk.run("--log-driver", "awslogs", "--log-opt", "region=eu-west-1", "--log-opt", "group=g",
                     "--log-opt", f"endpoint={cw.url}", "--log-opt", opt,
                     env=aws_env(AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET))
        assert r.returncode == 0, r.stderr
    finally:
        cw.close()
    # docker's shape: each line of an event ends in '\n', an empty line too.
    assert [e["message"] for e in cw.events[0]["logEvents"]] == \
        ["preamble\n", "2026-12-04 10:00 boom\n  at a\n\n  at b\n", "2026-12-04 10:01 next\n"]


def test_awslogs_refused_signature_and_missing_group_are_errors_before_the_container_exists(husk, bundle, tmp_path):
    bundle.set_args("sh", "-c", "echo never")
    cw = FakeCloudWatch(secret="not-the-one")
    try:
        r = husk.run("--log-driver", "awslogs", "--log-opt", "region=eu-west-1", "--log-opt", "group=g",
                     "--log-opt", f"endpoint={cw.url}",
                     env=aws_env(AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET))
        assert r.returncode != 0
        assert "log driver awslogs: create the log stream" in r.stderr, r.stderr
        assert "CreateLogStream: InvalidSignatureException: The request signature does not match" in r.stderr
        cw.secret = SECRET
        r2 = husk.run("--log-driver", "awslogs", "--log-opt", "region=eu-west-1", "--log-opt", "group=g",
                      "--log-opt", f"endpoint={cw.url}",
                      env=aws_env(AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET))
        assert r2.returncode != 0
        assert "ResourceNotFoundException: The specified log group does not exist." in r2.stderr, r2.stderr
    finally:
        cw.close()
    assert "never" not in r.stdout + r2.stdout and cw.events == []
    assert os.listdir(husk.root) == []


def test_awslogs_bad_options_name_the_option(husk, bundle, tmp_path):
    bundle.set_args("true")
    env = aws_env(AWS_ACCESS_KEY_ID=KEY_ID, AWS_SECRET_ACCESS_KEY=SECRET)
    cases = [
        (["--log-opt", "group=g"], "--log-opt region: the awslogs log driver needs one", env),
        (["--log-opt", "region=r"], "--log-opt group: the awslogs log driver needs one", env),
        (["--log-opt", "region=r", "--log-opt", "group=g", "--log-opt", "create-stream=perhaps"],
         '--log-opt create-stream: "perhaps" is not a boolean', env),
        (["--log-opt", "region=r", "--log-opt", "group=g", "--log-opt", "endpoint=ftp://x"],
         '--log-opt endpoint: "ftp://x": expected http(s)://HOST[:PORT][/PATH]', env),
        (["--log-opt", "region=r", "--log-opt", "group=g", "--log-opt", "awslogs-group=g"],
         "--log-opt awslogs-group: not an option of the awslogs log driver", env),
        (["--log-opt", "region=r", "--log-opt", "group=g", "--log-opt", "multiline-pattern=("],
         '--log-opt multiline-pattern: "(" is not a regular expression', env),
        (["--log-opt", "region=r", "--log-opt", "group=g", "--log-opt", "multiline-pattern=x",
          "--log-opt", "datetime-format=%Y"], "--log-opt datetime-format: give datetime-format or multiline-pattern", env),
        (["--log-opt", "region=r", "--log-opt", "group=g"], "log driver awslogs: no AWS credentials",
         aws_env(HOME=str(tmp_path))),
    ]
    for extra, message, e in cases:
        r = husk.run("--log-driver", "awslogs", *extra, env=e)
        assert r.returncode != 0, extra
        assert message in r.stderr, (extra, r.stderr)
        assert os.listdir(husk.root) == [], extra


def in_netns(ns, make):
    """make() run in a thread that joined `ns`'s network namespace: the
    sockets it binds are that namespace's (serving threads may be anywhere)."""
    import ctypes
    out = {}

    def run():
        fd = os.open(ns.path, os.O_RDONLY)
        try:
            if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                raise OSError(ctypes.get_errno(), "setns")
        finally:
            os.close(fd)
        out["value"] = make()

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out["value"]


def test_awslogs_credentials_endpoint_keys_come_from_the_ecs_agent(husk, bundle, tmp_path, monkeypatch):
    """awslogs-credentials-endpoint: the keys are fetched from ECS's
    container credentials endpoint (169.254.170.2, here an address of a
    network namespace the test makes, with a fake agent on it), and fetched
    again when they are about to expire."""
    from test_network import NetNs, run_husk_in
    ns = NetNs(setup="ip addr add 169.254.170.2/32 dev lo")
    agent = cw = None
    try:
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 120))  # within 5 min: fetched again

        def creds(method, path, headers, body):
            if path != "/v2/credentials/task-1":
                return 404, {"code": "NotFound"}
            return 200, {"AccessKeyId": "ASIAECSKEY", "SecretAccessKey": "ecs-secret", "Token": "ecs-token",
                         "Expiration": expires, "RoleArn": "arn:aws:iam::1:role/task"}
        agent = in_netns(ns, lambda: HttpReceiver(creds, address=("169.254.170.2", 80)))
        cw = in_netns(ns, lambda: FakeCloudWatch(secret="ecs-secret", key_id="ASIAECSKEY", groups={"app"}))
        run_husk_in(ns, husk, tmp_path, monkeypatch)
        bundle.set_args("sh", "-c", "echo from-ecs")
        opts = ["--log-driver", "awslogs", "--log-opt", "region=eu-west-1", "--log-opt", "group=app",
                "--log-opt", f"endpoint={cw.url}"]
        # No keys in the environment: they are the agent's.
        r = husk.run(*opts, "--log-opt", "credentials-endpoint=/v2/credentials/task-1", env=aws_env())
        assert r.returncode == 0, r.stderr
        assert cw.calls == ["CreateLogStream", "PutLogEvents"], cw.calls
        assert cw.token == "ecs-token"
        assert [e["message"] for e in cw.events[0]["logEvents"]] == ["from-ecs"]
        gets = [req for req in agent.requests if req[0] == "GET"]
        assert len(gets) >= 2 and all(req[1] == "/v2/credentials/task-1" for req in gets), agent.requests
        # An endpoint the agent does not know is an error before the container exists.
        r = husk.run(*opts, "--log-opt", "credentials-endpoint=/v2/credentials/other", env=aws_env())
        assert r.returncode != 0
        assert ("log driver awslogs: credentials from http://169.254.170.2/v2/credentials/other: answered 404"
                in r.stderr), r.stderr
        r = husk.run(*opts, "--log-opt", "credentials-endpoint=v2/x", env=aws_env())
        assert r.returncode != 0 and '--log-opt credentials-endpoint: "v2/x" is not a path' in r.stderr, r.stderr
        assert os.listdir(husk.root) == []
    finally:
        for s in (cw, agent):
            if s:
                s.close()
        ns.close()


# ---- gcplogs -----------------------------------------------------------------------------------------
#
# docker's gcplogs has no endpoint option: the entries go to
# logging.googleapis.com and the service account's token comes from its
# token_uri (oauth2.googleapis.com). The tests run husk in a network and
# mount namespace of their own whose /etc/hosts sends both names to
# 127.0.0.1, where a fake Google with a test certificate listens on 443, and
# whose CA bundle is that certificate. The machine's DMI product name is
# made "not Google" there (where it has one), so that the tests are off GCE
# wherever they run.

def rsa_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return key, pem


def b64url_decode(s):
    import base64
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


USER_GRANT = ("1234.apps.googleusercontent.com", "s3cr&t=", "1//refresh+token")


class FakeGoogle:
    """OAuth's token endpoint and Cloud Logging's entries:write: the JWT's
    RS256 signature checked with the service account's public key, tokens
    handed out and required, the written requests kept."""
    EMAIL = "husk-logs@my-proj.iam.gserviceaccount.com"

    def __init__(self, key, cert, write_status=200):
        self.public = key.public_key()
        self.write_status = write_status
        self.tokens, self.writes, self.claims = [], [], []
        self.http = HttpReceiver(self.answer, cert=cert, address=("127.0.0.1", 443))

    def answer(self, method, path, headers, body):
        from urllib.parse import parse_qs
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        if method == "POST" and path == "/token":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            if form.get("grant_type") == "refresh_token":  # gcloud's authorized_user
                if (form.get("client_id"), form.get("client_secret"), form.get("refresh_token")) != USER_GRANT:
                    return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
                self.tokens.append("ya29.user")
                return 200, {"access_token": "ya29.user", "expires_in": 3599, "token_type": "Bearer"}
            if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
                return 400, {"error": "unsupported_grant_type"}
            head, claims, sig = form["assertion"].split(".")
            try:
                self.public.verify(b64url_decode(sig), f"{head}.{claims}".encode(), padding.PKCS1v15(),
                                   hashes.SHA256())
            except Exception:
                return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            self.claims.append((json.loads(b64url_decode(head)), json.loads(b64url_decode(claims))))
            token = f"ya29.test-{len(self.tokens)}"
            self.tokens.append(token)
            return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
        if method == "POST" and path == "/v2/entries:write":
            if headers.get("Authorization", "").removeprefix("Bearer ") not in self.tokens:
                return 401, {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                       "status": "UNAUTHENTICATED"}}
            if self.write_status != 200:
                return self.write_status, {"error": {"code": self.write_status, "status": "PERMISSION_DENIED",
                                                     "message": "Permission 'logging.logEntries.create' denied"}}
            self.writes.append(json.loads(body))
            return 200, {}
        return 404, {"error": {"code": 404, "message": f"no {method} {path}"}}

    def entries(self, log="gcplogs-docker-driver"):
        return [e for w in self.writes if w["logName"].endswith("/logs/" + log) for e in w["entries"]]

    def close(self):
        self.http.close()


@pytest.fixture
def google(husk, tmp_path, monkeypatch):
    """husk in a network and mount namespace where Google's API names are
    127.0.0.1 and a test certificate is the one the system trusts; yields
    (ns, cert, key, credentials file)."""
    from test_network import NetNs, run_husk_in
    cert = make_cert(tmp_path, "google", "DNS:logging.googleapis.com,DNS:oauth2.googleapis.com")
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost logging.googleapis.com oauth2.googleapis.com\n")
    product = tmp_path / "product_name"
    product.write_text("Standard PC (husk test)\n")
    setup = (f"mount --bind {hosts} /etc/hosts && mount --bind {cert[0]} /etc/ssl/certs/ca-certificates.crt && "
             f"{{ [ ! -e /sys/class/dmi/id/product_name ] || mount --bind {product} /sys/class/dmi/id/product_name; }}")
    ns = NetNs(setup=setup, mount=True)
    run_husk_in(ns, husk, tmp_path, monkeypatch, mount_ns=True)
    key, pem = rsa_key()
    creds = tmp_path / "service-account.json"
    creds.write_text(json.dumps({"type": "service_account", "project_id": "other-proj", "private_key_id": "kid-1",
                                 "private_key": pem, "client_email": FakeGoogle.EMAIL,
                                 "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}))
    yield ns, cert, key, str(creds)
    ns.close()


def gcp_env(tmp_path, **kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "GCE_", "CLOUDSDK_"))}
    env["HOME"] = str(tmp_path / "home")  # no gcloud application_default_credentials.json
    env.update(kw)
    return env


def test_gcplogs_writes_dockers_entries_with_a_service_accounts_token(husk, bundle, tmp_path, google):
    ns, cert, key, creds = google
    g = in_netns(ns, lambda: FakeGoogle(key, cert))
    try:
        bundle.set_args("sh", "-c", SCRIPT)
        r = husk.run("--log-driver", "gcplogs", "--log-opt", "project=my-proj", "--log-opt", "name=/web",
                     "--log-opt", "image-name=busybox:1.36", "--log-opt", "image-id=sha256:" + "ab" * 32,
                     "--log-opt", "log-cmd=true", "--log-opt", "command=sh -c echo",
                     "--log-opt", "field=team=payments", "--log-opt", "field=APP_MODE=prod",
                     cid="gcp-1", env=gcp_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=creds))
        assert r.returncode == 0, r.stderr
        assert "lines are lost" not in r.stderr
    finally:
        g.close()
    assert "out-one" in r.stdout and "err-one" in r.stderr  # Nomad's files get them as before
    # The token: one JWT signed with the account's key, for Cloud Logging's write scope, at its token_uri.
    assert len(g.claims) == 1, g.claims
    head, claims = g.claims[0]
    assert head == {"alg": "RS256", "typ": "JWT", "kid": "kid-1"}
    assert claims["iss"] == FakeGoogle.EMAIL and claims["aud"] == "https://oauth2.googleapis.com/token"
    assert claims["scope"] == "https://www.googleapis.com/auth/logging.write"
    assert claims["exp"] - claims["iat"] == 3600 and abs(claims["iat"] - time.time()) < 60
    # docker's ping first, then the entries in the log gcplogs-docker-driver of the project given.
    assert g.writes[0]["logName"] == "projects/my-proj/logs/ping"
    assert g.writes[0]["entries"] == [{"textPayload": "ping", "timestamp": "1970-01-01T00:00:00Z",
                                       "insertId": "ping"}]
    later = g.writes[1:]
    assert later and all(w["logName"] == "projects/my-proj/logs/gcplogs-docker-driver" for w in later)
    assert all(w["resource"] == {"type": "global", "labels": {"project_id": "my-proj"}} for w in later)
    entries = g.entries()
    messages = sorted(e["jsonPayload"].get("message", "") for e in entries)
    assert messages == ["", "err-one", "no-newline", "out-one"], entries
    for e in entries:
        assert time.strptime(e["timestamp"][:19], "%Y-%m-%dT%H:%M:%S") and e["timestamp"].endswith("Z")
        c = e["jsonPayload"]["container"]
        assert "instance" not in e["jsonPayload"]  # off GCE, no gcp-meta-*
        assert c.pop("created").endswith("Z")
        assert c == {"name": "/web", "id": "gcp-1", "imageName": "busybox:1.36", "imageId": "sha256:" + "ab" * 32,
                     "command": "sh -c echo", "metadata": {"team": "payments", "APP_MODE": "prod"}}, c
    assert os.listdir(husk.root) == []


def test_gcplogs_on_gce_reads_the_project_instance_and_token_from_the_metadata_server(husk, bundle, tmp_path,
                                                                                      google):
    """On GCE (GCE_METADATA_HOST, here a fake metadata server on
    169.254.169.254 in the test's namespace): the project, the instance
    the entries name (a gce_instance resource) and the access token are
    the metadata server's; a token about to expire is fetched again."""
    ns, cert, key, _ = google
    ns.run("ip", "addr", "add", "169.254.169.254/32", "dev", "lo")
    g = in_netns(ns, lambda: FakeGoogle(key, cert))
    asked = []

    def metadata(method, path, headers, body):
        asked.append(path)
        if headers.get("Metadata-Flavor") != "Google":
            return 403, b"Missing Metadata-Flavor:Google header.\n"
        values = {"/computeMetadata/v1/project/project-id": b"gce-proj",
                  "/computeMetadata/v1/instance/zone": b"projects/1234/zones/europe-west1-b",
                  "/computeMetadata/v1/instance/name": b"node-1",
                  "/computeMetadata/v1/instance/id": b"4242"}
        if path in values:
            return 200, values[path]
        if path == "/computeMetadata/v1/instance/service-accounts/default/token":
            token = f"ya29.meta-{len(g.tokens)}"
            g.tokens.append(token)
            return 200, {"access_token": token, "expires_in": 30, "token_type": "Bearer"}
        return 404, b"not found\n"
    server = in_netns(ns, lambda: HttpReceiver(metadata, address=("169.254.169.254", 80)))
    try:
        bundle.set_args("sh", "-c", "echo on-gce")
        r = husk.run("--log-driver", "gcplogs", "--log-opt", "meta-zone=ignored",
                     env=gcp_env(tmp_path, GCE_METADATA_HOST="169.254.169.254"))
        assert r.returncode == 0, r.stderr
    finally:
        server.close()
        g.close()
    assert g.writes[0]["logName"] == "projects/gce-proj/logs/ping"
    assert g.writes[0]["resource"] == {"type": "global", "labels": {"project_id": "gce-proj"}}
    later = g.writes[1:]
    assert [w["logName"] for w in later] == ["projects/gce-proj/logs/gcplogs-docker-driver"]
    assert later[0]["resource"] == {"type": "gce_instance",
                                    "labels": {"instance_id": "4242", "zone": "europe-west1-b"}}
    (entry,) = g.entries()
    assert entry["jsonPayload"]["message"] == "on-gce"
    # On GCE the instance is the metadata server's, whatever gcp-meta-* say (as docker).
    assert entry["jsonPayload"]["instance"] == {"zone": "europe-west1-b", "name": "node-1", "id": "4242"}
    # Tokens live 30 s, within the minute before expiry: a new one for each write.
    assert len(g.tokens) == 2, g.tokens
    assert not g.claims  # no service-account JWT on GCE


def test_gcplogs_off_gce_names_the_instance_of_the_meta_options(husk, bundle, tmp_path, google):
    ns, cert, key, creds = google
    g = in_netns(ns, lambda: FakeGoogle(key, cert))
    try:
        bundle.set_args("sh", "-c", "echo off-gce")
        r = husk.run("--log-driver", "gcplogs", "--log-opt", "project=my-proj", "--log-opt", "meta-zone=zone-a",
                     "--log-opt", "meta-id=77", env=gcp_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=creds))
        assert r.returncode == 0, r.stderr
    finally:
        g.close()
    (entry,) = g.entries()
    assert entry["jsonPayload"]["instance"] == {"zone": "zone-a", "id": "77"}
    assert "command" not in entry["jsonPayload"]["container"]  # no log-cmd
    assert g.writes[-1]["resource"] == {"type": "gce_instance", "labels": {"instance_id": "77", "zone": "zone-a"}}


def test_gcplogs_errors_come_before_the_container_exists(husk, bundle, tmp_path, google):
    ns, cert, key, creds = google
    _, other_pem = rsa_key()
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({"type": "service_account", "private_key": other_pem,
                                  "client_email": FakeGoogle.EMAIL}))
    keyless = tmp_path / "keyless.json"
    keyless.write_text(json.dumps({"type": "service_account", "client_email": FakeGoogle.EMAIL}))
    external = tmp_path / "external.json"
    external.write_text(json.dumps({"type": "external_account", "audience": "x"}))
    bundle.set_args("sh", "-c", "echo never")
    g = in_netns(ns, lambda: FakeGoogle(key, cert))
    try:
        cases = [
            ([], dict(GOOGLE_APPLICATION_CREDENTIALS=creds),
             "--log-opt project: no project was given (docker's gcp-project) and none could be read from a GCE "
             "metadata server (this is not a GCE instance)"),
            (["project=my-proj"], {},
             "log driver gcplogs: no Google credentials: GOOGLE_APPLICATION_CREDENTIALS is not set, "),
            (["project=my-proj"], dict(GOOGLE_APPLICATION_CREDENTIALS=str(forged)),
             "log driver gcplogs: unable to connect or authenticate with Google Cloud Logging: a token for "
             f"{forged}: https://oauth2.googleapis.com/token answered 400: invalid_grant: Invalid JWT Signature."),
            (["project=my-proj"], dict(GOOGLE_APPLICATION_CREDENTIALS=str(external)),
             f'log driver gcplogs: the credentials file {external}: "type": "external_account" is not credentials'),
            (["project=my-proj"], dict(GOOGLE_APPLICATION_CREDENTIALS=str(keyless)),
             f'log driver gcplogs: the credentials file {keyless}: a service_account has a "private_key"; '
             "this one has none"),
            (["project=my-proj"], dict(GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "nothing.json")),
             f"log driver gcplogs: open the credentials file {tmp_path / 'nothing.json'}"),
            (["project=my-proj", "tag=x"], dict(GOOGLE_APPLICATION_CREDENTIALS=creds),
             "--log-opt tag: not an option of the gcplogs log driver"),
            (["project=my-proj", "log-cmd=maybe"], dict(GOOGLE_APPLICATION_CREDENTIALS=creds), "--log-opt log-cmd"),
            (["project=a/b"], dict(GOOGLE_APPLICATION_CREDENTIALS=creds),
             '--log-opt project: "a/b" is not a Google Cloud project id'),
        ]
        for opts, env, message in cases:
            args = ["--log-driver", "gcplogs"] + [x for o in opts for x in ("--log-opt", o)]
            r = husk.run(*args, env=gcp_env(tmp_path, **env))
            assert r.returncode != 0, opts
            assert message in r.stderr, (opts, r.stderr)
            assert "never" not in r.stdout
            assert os.listdir(husk.root) == [], opts
        assert g.writes == []
        # A project the account may not write to: the ping is refused.
        g.write_status = 403
        r = husk.run("--log-driver", "gcplogs", "--log-opt", "project=my-proj",
                     env=gcp_env(tmp_path, GOOGLE_APPLICATION_CREDENTIALS=creds))
        assert r.returncode != 0
        assert ("log driver gcplogs: unable to connect or authenticate with Google Cloud Logging: "
                "https://logging.googleapis.com/v2/entries:write answered 403: "
                "Permission 'logging.logEntries.create' denied") in r.stderr, r.stderr
        assert os.listdir(husk.root) == []
    finally:
        g.close()


def test_gcplogs_takes_gclouds_application_default_credentials(husk, bundle, tmp_path, google):
    """Without GOOGLE_APPLICATION_CREDENTIALS: gcloud's
    application_default_credentials.json under $CLOUDSDK_CONFIG, an
    authorized_user whose refresh token (form-encoded) buys the token."""
    ns, cert, key, _ = google
    config = tmp_path / "gcloud"
    config.mkdir()
    client_id, secret, refresh = USER_GRANT
    (config / "application_default_credentials.json").write_text(json.dumps(
        {"type": "authorized_user", "client_id": client_id, "client_secret": secret, "refresh_token": refresh}))
    g = in_netns(ns, lambda: FakeGoogle(key, cert))
    try:
        bundle.set_args("sh", "-c", "echo as-user")
        r = husk.run("--log-driver", "gcplogs", "--log-opt", "project=my-proj",
                     env=gcp_env(tmp_path, CLOUDSDK_CONFIG=str(config)))
        assert r.returncode == 0, r.stderr
    finally:
        g.close()
    assert g.tokens == ["ya29.user"] and not g.claims
    assert [e["jsonPayload"]["message"] for e in g.entries()] == ["as-user"]
