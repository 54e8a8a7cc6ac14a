"""Helpers for the registry tests: OCI layouts built here (tiny layers made
with tarfile), a real docker-registry (distribution) process on a free
loopback port, pushes with skopeo, and an HTTP proxy in front of the
registry that counts requests and can cut or stall blob transfers once."""
import atexit
import gzip
import hashlib
import http.client
import http.server
import io
import json
import os
import socket
import socketserver
import subprocess
import tarfile
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HUSK_IMAGE = os.environ.get("HUSK_IMAGE_BIN", os.path.join(ROOT, "build", "src", "image", "husk-image"))
REGISTRY = "/usr/bin/docker-registry"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- OCI layouts ---------------------------------------------------------

def layer_tar(files):
    """A gzipped tar of {path: bytes}; returns (gz bytes, diff_id)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o755
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    return gzip.compress(plain, mtime=0), sha256(plain)


class Layout:
    """An OCI image layout directory that images are added to."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self.index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
        self._write_index()

    def blob(self, data):
        d = sha256(data)
        with open(os.path.join(self.path, "blobs", "sha256", d[7:]), "wb") as f:
            f.write(data)
        return d

    def _write_index(self):
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(self.index, f)

    def image(self, layers, arch="amd64", variant=None):
        """Writes config and manifest for `layers` (a list of {path: bytes});
        returns (manifest descriptor, [layer digests])."""
        descs, diff_ids = [], []
        for files in layers:
            gz, diff = layer_tar(files)
            descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                          "digest": self.blob(gz), "size": len(gz)})
            diff_ids.append(diff)
        config = {"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        if variant:
            config["variant"] = variant
        cbytes = json.dumps(config).encode()
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": self.blob(cbytes), "size": len(cbytes)},
                    "layers": descs}
        mbytes = json.dumps(manifest).encode()
        platform = {"architecture": arch, "os": "linux"}
        if variant:
            platform["variant"] = variant
        desc = {"mediaType": manifest["mediaType"], "digest": self.blob(mbytes), "size": len(mbytes),
                "platform": platform}
        return desc, [d["digest"] for d in descs]

    def tag(self, tag, desc):
        entry = dict(desc)
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self.index["manifests"].append(entry)
        self._write_index()

    def multiarch(self, tag, descs):
        """An image index of `descs`, tagged; returns its descriptor."""
        idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descs}
        ibytes = json.dumps(idx).encode()
        desc = {"mediaType": idx["mediaType"], "digest": self.blob(ibytes), "size": len(ibytes)}
        self.tag(tag, desc)
        return desc


# --- certificates and the registry process ---------------------------------

def self_signed(dirpath, name, cn):
    key, cert = os.path.join(dirpath, name + ".key"), os.path.join(dirpath, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + cn, "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return key, cert


class Registry:
    """docker-registry serving a storage dir in `workdir` on a free port."""

    def __init__(self, workdir, auth=None, tls=None):
        self.workdir = workdir
        self.storage = os.path.join(workdir, "storage")
        os.makedirs(self.storage, exist_ok=True)
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        lines = ["version: 0.1", "log:", "  level: info", "storage:", "  filesystem:",
                 "    rootdirectory: " + self.storage, "  delete:", "    enabled: true",
                 "http:", "  addr: " + self.host]
        if tls:
            lines += ["  tls:", "    certificate: " + tls[1], "    key: " + tls[0]]
        if auth:
            lines += ["auth:"] + ["  " + l for l in auth]
        self.config = os.path.join(workdir, "config.yml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.log = open(os.path.join(workdir, "registry.log"), "w")
        self.proc = subprocess.Popen([REGISTRY, "serve", self.config], stdout=self.log, stderr=subprocess.STDOUT)
        scheme = "https" if tls else "http"
        deadline = time.time() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("docker-registry did not start: " + open(self.log.name).read())
                time.sleep(0.05)
        self.scheme = scheme

    def blob_path(self, digest):
        hexd = digest.split(":", 1)[1]
        return os.path.join(self.storage, "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd, "data")

    def push(self, layout, tag, name, all_images=False, creds=None):
        cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if all_images:
            cmd.append("--all")
        if creds:
            cmd.append("--dest-creds=" + creds)
        cmd += ["oci:%s:%s" % (layout.path, tag), "docker://%s/%s:%s" % (self.host, name, tag)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120,
                       env=dict(os.environ, TMPDIR=self.workdir))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# --- a proxy in front of the registry ---------------------------------------

class _ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Proxy:
    """Forwards to a plain-HTTP registry; records (method, path, range,
    status) per request. Blob GETs of a digest in `cut_once` get half their
    body and a closed connection the first time; of one in `stall` their
    headers and then nothing for `stall_seconds`; `delay` seconds are spent
    before each blob answer (to make concurrent pulls overlap)."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.requests = []
        self.cut_once = set()
        self.stall = set()
        self.stall_seconds = 30
        self.delay = 0
        self.redirect = False  # blob GETs answered 307 to /_storage/...
        self.ignore_range = False  # Range headers dropped: full answers
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                proxy._forward(self)

        self.server = _ThreadingServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.host = "127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def blob_gets(self, digest):
        """The GETs of a blob that reached the registry (not redirects)."""
        with self.lock:
            return [r for r in self.requests if r[1].endswith("/blobs/" + digest) and r[3] != 307]

    def _forward(self, h):
        path = h.path
        if self.redirect and "/blobs/" in path and not path.startswith("/_storage"):
            # Like a registry that serves blobs from object storage.
            with self.lock:
                self.requests.append(("GET", path, h.headers.get("Range"), 307))
            h.send_response(307)
            h.send_header("Location", "http://%s/_storage%s" % (self.host, path))
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if path.startswith("/_storage"):
            path = path[len("/_storage"):]
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=30)
        drop = ("host", "connection") + (("range",) if self.ignore_range else ())
        headers = {k: v for k, v in h.headers.items() if k.lower() not in drop}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        digest = path.rsplit("/", 1)[-1] if "/blobs/" in path else None
        with self.lock:
            self.requests.append(("GET", h.path, h.headers.get("Range"), resp.status))
            cut = digest in self.cut_once
            self.cut_once.discard(digest)
            stall = digest in self.stall
            self.stall.discard(digest)
        if digest and self.delay:
            time.sleep(self.delay)
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if cut:
            h.wfile.write(body[:len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        if stall:
            h.wfile.write(body[:100])
            h.wfile.flush()
            self.stop_event.wait(self.stall_seconds)
            h.close_connection = True
            return
        h.wfile.write(body)

    def close(self):
        self.stop_event.set()
        self.server.shutdown()
        self.server.server_close()


_NO_AUTH_HOME = tempfile.mkdtemp(prefix="husk-registry-test-home.")
atexit.register(os.rmdir, _NO_AUTH_HOME)


def pull_env(env=None):
    """The environment for husk-image: the user's own auth files out of
    sight (HOME and the XDG dirs point at an empty directory), plus `env`."""
    base = {k: v for k, v in os.environ.items() if k != "REGISTRY_AUTH_FILE"}
    base.update(HOME=_NO_AUTH_HOME, XDG_RUNTIME_DIR=_NO_AUTH_HOME, XDG_CONFIG_HOME=_NO_AUTH_HOME)
    base.update(env or {})
    return base


def pull(root, ref, *args, env=None, timeout=120, input=None):
    """Runs husk-image pull (`input` on its stdin); returns the CompletedProcess."""
    cmd = [HUSK_IMAGE, "pull", "--root", root] + list(args) + [ref]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=pull_env(env), input=input)


def store_blobs(root):
    d = os.path.join(root, "blobs", "sha256")
    return sorted("sha256:" + n for n in os.listdir(d)) if os.path.isdir(d) else []


def store_partials(root):
    d = os.path.join(root, "tmp")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []
