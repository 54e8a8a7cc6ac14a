"""husk-image pull against real registries on loopback: Debian's
docker-registry (distribution 2.8) started per module, plain HTTP, htpasswd
basic auth, token auth (tests/integration/token_server.py) and TLS with a
self-signed certificate. Images are pushed with skopeo from OCI layouts
built here."""
import base64
import json
import os
import subprocess
import time

import pytest

from registryfix import (HUSK_IMAGE, Layout, Proxy, Registry, free_port, pull, pull_env, self_signed, sha256,
                         store_blobs, store_partials)
from token_server import TokenServer

pytestmark = pytest.mark.skipif(not os.path.exists(HUSK_IMAGE), reason="husk-image not built")

BUSYBOX = "/bin/busybox"


class Images:
    pass


def push_images(reg, workdir, creds=None):
    """small:1 (busybox + a file), multi:1 (amd64 + arm64 index), layers:1
    (three layers), corrupt:1 (its own layer, to be damaged)."""
    im = Images()
    lay = Layout(os.path.join(workdir, "layout"))
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    im.small, im.small_layers = lay.image([{"bin/busybox": busybox, "etc/hello": b"hello\n"}])
    lay.tag("small", im.small)
    amd, im.amd_layers = lay.image([{"arch": b"amd64\n"}], arch="amd64")
    arm, im.arm_layers = lay.image([{"arch": b"arm64\n"}], arch="arm64", variant="v8")
    im.amd, im.arm = amd, arm
    im.index = lay.multiarch("multi", [amd, arm])
    im.layers, im.layers_layers = lay.image([{"a": os.urandom(300000)}, {"b": os.urandom(300000)},
                                             {"c": b"c" * 1000}])
    lay.tag("layers", im.layers)
    im.corrupt, im.corrupt_layers = lay.image([{"c": os.urandom(50000)}])
    lay.tag("corrupt", im.corrupt)
    im.layout = lay
    reg.push(lay, "small", "test/small", creds=creds)
    if creds is None:
        reg.push(lay, "multi", "test/multi", all_images=True)
        reg.push(lay, "layers", "test/layers")
        reg.push(lay, "corrupt", "test/corrupt")
    return im


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("plain"))
    reg = Registry(work)
    try:
        reg.images = push_images(reg, work)
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def proxy(plain):
    p = Proxy(plain.port)
    yield p
    p.close()


@pytest.fixture
def store(tmp_path):
    return str(tmp_path / "store")


def ok(r):
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


# --- plain HTTP ------------------------------------------------------------

def test_pull_by_tag_leaves_verified_manifest_config_and_layers(plain, store):
    im = plain.images
    digest = ok(pull(store, plain.host + "/test/small:small", "--tls-verify=false"))
    assert digest == im.small["digest"]
    blobs = store_blobs(store)
    manifest = json.loads(open(os.path.join(store, "blobs", "sha256", digest[7:]), "rb").read())
    assert manifest["config"]["digest"] in blobs
    for layer in im.small_layers:
        assert layer in blobs
        assert sha256(open(os.path.join(store, "blobs", "sha256", layer[7:]), "rb").read()) == layer
    assert store_partials(store) == []
    # Again: everything is there, nothing is fetched.
    r = pull(store, plain.host + "/test/small:small", "--tls-verify=false")
    assert ok(r) == digest
    assert "already present" in r.stderr


def test_pull_by_digest_and_by_tag_plus_digest(plain, store):
    d = plain.images.small["digest"]
    assert ok(pull(store, "%s/test/small@%s" % (plain.host, d), "--tls-verify=false")) == d
    assert ok(pull(store, "%s/test/small:small@%s" % (plain.host, d), "--tls-verify=false")) == d
    missing = "sha256:" + "0" * 64
    r = pull(store, "%s/test/small@%s" % (plain.host, missing), "--tls-verify=false")
    assert r.returncode == 1
    assert "registry " + plain.host in r.stderr and "not found" in r.stderr and "MANIFEST_UNKNOWN" in r.stderr


def test_multiarch_index_picks_the_host_or_the_asked_platform(plain, store):
    im = plain.images
    ref = plain.host + "/test/multi:multi"
    assert ok(pull(store, ref, "--tls-verify=false")) == im.amd["digest"]
    assert im.amd_layers[0] in store_blobs(store) and im.arm_layers[0] not in store_blobs(store)
    assert ok(pull(store, ref, "--tls-verify=false", "--platform", "linux/arm64")) == im.arm["digest"]
    assert im.arm_layers[0] in store_blobs(store)
    r = pull(store, ref, "--tls-verify=false", "--platform", "linux/s390x")
    assert r.returncode == 1
    assert "no image for platform linux/s390x" in r.stderr and "linux/amd64" in r.stderr and "linux/arm64/v8" in r.stderr


def test_corrupted_blob_is_rejected_and_nothing_is_trusted(plain, store):
    im = plain.images
    layer = im.corrupt_layers[0]
    path = plain.blob_path(layer)
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(data)
    r = pull(store, plain.host + "/test/corrupt:corrupt", "--tls-verify=false")
    assert r.returncode == 1
    assert "digest mismatch" in r.stderr and layer in r.stderr
    assert layer not in store_blobs(store)
    assert im.corrupt["digest"] not in store_blobs(store)  # no manifest: the image is not there
    assert not [p for p in store_partials(store) if layer[7:] in p]


def test_cut_transfer_resumes_with_a_range_request(plain, proxy, store):
    layer = plain.images.small_layers[0]
    proxy.cut_once.add(layer)
    digest = ok(pull(store, proxy.host + "/test/small:small", "--tls-verify=false"))
    assert digest == plain.images.small["digest"]
    gets = proxy.blob_gets(layer)
    assert len(gets) == 2
    assert gets[0][2] is None
    assert gets[1][2] and gets[1][2].startswith("bytes=") and gets[1][3] == 206
    assert int(gets[1][2][6:].rstrip("-")) > 0
    assert layer in store_blobs(store)


def test_resume_from_a_server_that_ignores_range(plain, proxy, store):
    layer = plain.images.small_layers[0]
    proxy.cut_once.add(layer)
    proxy.ignore_range = True
    ok(pull(store, proxy.host + "/test/small:small", "--tls-verify=false"))
    gets = proxy.blob_gets(layer)
    assert len(gets) == 2 and gets[1][2].startswith("bytes=") and gets[1][3] == 200
    assert layer in store_blobs(store)


def test_pull_timeout_bounds_a_stalled_pull(plain, proxy, store):
    layer = plain.images.small_layers[0]
    proxy.stall.add(layer)
    start = time.monotonic()
    r = pull(store, proxy.host + "/test/small:small", "--tls-verify=false", "--timeout", "3s")
    took = time.monotonic() - start
    assert r.returncode == 1
    assert "did not finish within its timeout of 3s" in r.stderr
    assert 2.5 < took < 8
    assert layer not in store_blobs(store)
    # The next pull resumes the partial file the stalled one left.
    ok(pull(store, proxy.host + "/test/small:small", "--tls-verify=false"))
    assert proxy.blob_gets(layer)[-1][2:] == ("bytes=100-", 206)
    assert layer in store_blobs(store) and store_partials(store) == []


def test_blobs_follow_redirects_to_storage(plain, proxy, store):
    proxy.redirect = True
    layer = plain.images.small_layers[0]
    ok(pull(store, proxy.host + "/test/small:small", "--tls-verify=false"))
    assert ("GET", "/v2/test/small/blobs/" + layer, None, 307) in proxy.requests
    assert ("GET", "/_storage/v2/test/small/blobs/" + layer, None, 200) in proxy.requests
    assert layer in store_blobs(store)


def test_terminal_gets_a_progress_bar_and_pipes_get_lines(plain, store):
    import pty
    master, slave = pty.openpty()
    p = subprocess.Popen([HUSK_IMAGE, "pull", "--root", store, "--tls-verify=false", plain.host + "/test/small:small"],
                         stdout=subprocess.PIPE, stderr=slave, env=pull_env())
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    p.wait(30)
    os.close(master)
    assert p.returncode == 0
    text = out.decode()
    assert "\r" in text and "[" + "#" * 30 + "]" in text and "1/1 layers" in text
    r = pull(store + "2", plain.host + "/test/small:small", "--tls-verify=false")
    assert "\r" not in r.stderr and "blob %s: done" % plain.images.small_layers[0][7:19] in r.stderr


def test_progress_timeout_retries_a_stalled_transfer(plain, proxy, store):
    layer = plain.images.small_layers[0]
    proxy.stall.add(layer)
    start = time.monotonic()
    ok(pull(store, proxy.host + "/test/small:small", "--tls-verify=false", "--progress-timeout", "1s"))
    assert time.monotonic() - start < 15
    gets = proxy.blob_gets(layer)
    assert len(gets) == 2 and gets[1][2] == "bytes=100-"


def test_activity_timeout_fails_a_stalled_pull_without_retrying(plain, proxy, store):
    # The docker flavor's pull_activity_timeout: no byte for that long fails the pull.
    layer = plain.images.small_layers[0]
    proxy.stall.add(layer)
    start = time.monotonic()
    r = pull(store, proxy.host + "/test/small:small", "--tls-verify=false", "--activity-timeout", "1s")
    took = time.monotonic() - start
    assert r.returncode == 1
    assert "blob " + layer in r.stderr and "no data for 1s" in r.stderr and "not retried" in r.stderr, r.stderr
    assert took < 10  # the stall lasts 30 s: neither waited out nor retried
    assert len(proxy.blob_gets(layer)) == 1
    assert layer not in store_blobs(store)
    r = pull(store, proxy.host + "/test/small:small", "--progress-timeout", "1s", "--activity-timeout", "1s")
    assert r.returncode == 2 and "exclude each other" in r.stderr


def test_progress_json_bytes_grow_to_the_image_total(plain, store):
    im = plain.images
    r = pull(store, plain.host + "/test/layers:layers", "--tls-verify=false", "--progress", "json")
    ok(r)
    events = [json.loads(line) for line in r.stderr.splitlines()]
    assert events[0]["event"] == "resolved" and events[0]["blob"] == im.layers["digest"]
    sizes = {d: os.path.getsize(plain.blob_path(d)) for d in im.layers_layers}
    assert events[0]["layers"] == 3 and events[0]["bytes_total"] == sum(sizes.values())
    # Per blob: its bytes never go back, and the last report is its size.
    per_blob = {}
    for e in events[1:]:
        if e["event"] in ("progress", "done"):
            per_blob.setdefault(e["blob"], []).append(e["done"])
    for d, size in sizes.items():
        seen = per_blob[d]
        assert seen == sorted(seen) and seen[-1] == size, (d, seen)
    assert max(len(per_blob[d]) for d in im.layers_layers[:2]) > 2  # 300 kB layers report on the way
    # The image's: bytes_done only grows, to the total, with every layer pulled.
    done = [e["bytes_done"] for e in events]
    assert done == sorted(done) and done[-1] == events[-1]["bytes_total"] == sum(sizes.values())
    assert events[-1]["layers_pulled"] == 3
    # Pulled again: every blob is in the store, and counts as done at once.
    again = [json.loads(line) for line in pull(store, plain.host + "/test/layers:layers", "--tls-verify=false",
                                                 "--progress", "json").stderr.splitlines()]
    assert [e["event"] for e in again] == ["resolved"] + ["exists"] * 4
    assert again[-1]["bytes_done"] == again[-1]["bytes_total"] and again[-1]["layers_pulled"] == 3


def test_concurrent_pulls_fetch_each_blob_once(plain, proxy, store):
    im = plain.images
    proxy.delay = 0.5  # both pulls are inside a blob transfer at once
    cmd = [HUSK_IMAGE, "pull", "--root", store, "--tls-verify=false", proxy.host + "/test/layers:layers"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=pull_env())
             for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.strip() == im.layers["digest"]
    manifest = json.loads(open(os.path.join(store, "blobs", "sha256", im.layers["digest"][7:])).read())
    for d in [manifest["config"]["digest"]] + im.layers_layers:
        assert len(proxy.blob_gets(d)) == 1, proxy.blob_gets(d)
        assert d in store_blobs(store)


def test_pull_timeout_bounds_the_wait_for_another_pull(plain, store):
    import fcntl
    layer = plain.images.small_layers[0]
    os.makedirs(os.path.join(store, "locks"))
    # Another puller holds the layer's lock, as BlobStore::lock takes it.
    with open(os.path.join(store, "locks", "sha256-%s.lock" % layer[7:]), "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        start = time.monotonic()
        r = pull(store, plain.host + "/test/small:small", "--tls-verify=false", "--timeout", "2s", timeout=30)
        assert r.returncode == 1 and time.monotonic() - start < 6
        assert "blob %s: the deadline passed while another pull held its lock" % layer in r.stderr
    assert layer not in store_blobs(store)


def test_bad_reference_and_unreachable_registry(store, tmp_path):
    r = pull(store, "127.0.0.1:5000/Test/Upper:1")
    assert r.returncode == 1 and "must be lower case" in r.stderr
    port = free_port()
    r = pull(store, "127.0.0.1:%d/x:1" % port, "--tls-verify=false", "--timeout", "20s")
    assert r.returncode == 1 and "registry 127.0.0.1:%d" % port in r.stderr
    assert not os.path.exists(store)  # the failed pull made it, and took it away again


# --- htpasswd basic auth ---------------------------------------------------

@pytest.fixture(scope="module")
def basic(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("basic"))
    htpasswd = os.path.join(work, "htpasswd")
    subprocess.run(["htpasswd", "-Bbc", htpasswd, "alice", "s3cret"], check=True, capture_output=True)
    reg = Registry(work, auth=["htpasswd:", "  realm: husk-test", "  path: " + htpasswd])
    try:
        reg.images = push_images(reg, work, creds="alice:s3cret")
        yield reg
    finally:
        reg.stop()


def test_progress_summary_and_policy_missing(plain, proxy, store):
    """--progress summary: the docker driver's progress line and a final
    "pulled:" line (what a rootless driver's pull child reports); --policy
    missing takes the store's image without asking the registry."""
    ref = plain.host + "/test/layers:layers"
    r = pull(store, ref, "--tls-verify=false", "--progress", "summary", "--policy", "missing")
    ok(r)
    lines = r.stderr.splitlines()
    assert lines[0].startswith("progress: Pulled ") and "/3 (" in lines[0], lines
    with open(os.path.join(plain.images.layout.path, "blobs", "sha256", plain.images.layers["digest"][7:])) as fh:
        cfg_id = json.load(fh)["config"]["digest"][7:]
    assert lines[-1] == f"pulled: fetched 3 0 {cfg_id} {ref}", lines
    # Through the proxy (another name, so another pull: its blobs are there),
    # then in the store: --policy missing does not ask the registry.
    pref = proxy.host + "/test/layers:layers"
    r = pull(store, pref, "--tls-verify=false", "--progress", "summary", "--policy", "missing")
    ok(r)
    assert r.stderr.splitlines()[-1] == f"pulled: fetched 0 3 {cfg_id} {pref}", r.stderr
    asked = len(proxy.requests)
    r = pull(store, pref, "--tls-verify=false", "--progress", "summary", "--policy", "missing")
    ok(r)
    assert r.stderr.splitlines() == [f"pulled: present 0 0 {cfg_id} {pref}"], r.stderr
    assert len(proxy.requests) == asked
    r = pull(store, pref, "--policy", "newer")
    assert r.returncode == 2 and "--policy wants always or missing" in r.stderr, r.stderr


def test_basic_auth_with_creds_and_its_failures(basic, store):
    ref = basic.host + "/test/small:small"
    assert ok(pull(store, ref, "--tls-verify=false", "--creds", "alice:s3cret")) == basic.images.small["digest"]
    r = pull(store + "2", ref, "--tls-verify=false", "--creds", "alice:wrong")
    assert r.returncode == 1
    assert 'registry %s: authentication failed: the registry rejected user "alice"' % basic.host in r.stderr
    assert "401" in r.stderr
    r = pull(store + "2", ref, "--tls-verify=false")
    assert r.returncode == 1
    assert "registry %s: authentication required" % basic.host in r.stderr
    # --creds-stdin: off the command line, named in errors by --creds-source.
    cmd = [HUSK_IMAGE, "pull", "--root", store + "3", "--tls-verify=false", "--creds-stdin", ref]
    r = subprocess.run(cmd, input="alice:s3cret\n", capture_output=True, text=True, timeout=120, env=pull_env())
    assert ok(r) == basic.images.small["digest"]
    cmd = [HUSK_IMAGE, "pull", "--root", store + "4", "--tls-verify=false", "--creds-stdin", "--creds-source",
           "the task's auth block", ref]
    r = subprocess.run(cmd, input="alice:wrong", capture_output=True, text=True, timeout=120, env=pull_env())
    assert r.returncode == 1
    assert 'rejected user "alice" (credentials from the task\'s auth block)' in r.stderr, r.stderr
    # --auth-soft-fail: refused credentials are tried anonymously, and the
    # error says both (this registry wants them).
    cmd = [HUSK_IMAGE, "pull", "--root", store + "4", "--tls-verify=false", "--creds", "alice:wrong",
           "--auth-soft-fail", ref]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=pull_env())
    assert r.returncode == 1 and "also without credentials: " in r.stderr, r.stderr


def test_auth_file_and_credential_helper(basic, store, tmp_path):
    ref = basic.host + "/test/small:small"
    authfile = tmp_path / "auth.json"
    token = base64.b64encode(b"alice:s3cret").decode()
    authfile.write_text(json.dumps({"auths": {"http://" + basic.host: {"auth": token}}}))
    assert ok(pull(store, ref, "--tls-verify=false", env={"REGISTRY_AUTH_FILE": str(authfile)}))

    bindir = tmp_path / "bin"
    bindir.mkdir()
    asked = tmp_path / "asked"
    helper = bindir / "docker-credential-test"
    helper.write_text("#!/bin/sh\n"
                      "read -r server\n"
                      "echo \"$1 $server\" >> %s\n"
                      "if [ \"$server\" = \"%s\" ]; then\n"
                      "  printf '{\"ServerURL\":\"%%s\",\"Username\":\"alice\",\"Secret\":\"s3cret\"}' \"$server\"\n"
                      "else echo 'credentials not found in native keychain'; exit 1; fi\n" % (asked, basic.host))
    helper.chmod(0o755)
    authfile.write_text(json.dumps({"auths": {basic.host: {"auth": base64.b64encode(b"alice:wrong").decode()}},
                                    "credHelpers": {basic.host: "test"}}))
    env = {"PATH": "%s:%s" % (bindir, os.environ["PATH"])}
    assert ok(pull(store + "2", ref, "--tls-verify=false", "--authfile", str(authfile), env=env))
    assert asked.read_text() == "get %s\n" % basic.host
    # A helper that is missing is named in the error.
    authfile.write_text(json.dumps({"credsStore": "nosuchhelper"}))
    r = pull(store + "3", ref, "--tls-verify=false", "--authfile", str(authfile), env=env)
    assert r.returncode == 1 and "docker-credential-nosuchhelper" in r.stderr and str(authfile) in r.stderr


# --- token auth --------------------------------------------------------------

@pytest.fixture(scope="module")
def token(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("token"))
    key, cert = self_signed(work, "issuer", "husk-test-token-issuer")
    ts = TokenServer(key, cert, issuer="husk-test-issuer", service="husk-test-registry",
                     users={"bob": "hunter2"}, refresh_tokens={"rt-of-bob": "bob"})
    reg = Registry(work, auth=["token:", "  realm: " + ts.realm, "  service: husk-test-registry",
                               "  issuer: husk-test-issuer", "  rootcertbundle: " + cert])
    try:
        reg.images = push_images(reg, work, creds="bob:hunter2")
        reg.token_server = ts
        yield reg
    finally:
        reg.stop()
        ts.close()


def test_token_auth_pull_and_its_failures(token, store):
    ref = token.host + "/test/small:small"
    ts = token.token_server
    del ts.requests[:]
    assert ok(pull(store, ref, "--tls-verify=false", "--creds", "bob:hunter2")) == token.images.small["digest"]
    # One token for the repository's pull scope, reused for every request.
    assert ts.requests == [("bob", "repository:test/small:pull")]
    r = pull(store + "2", ref, "--tls-verify=false", "--creds", "bob:wrong")
    assert r.returncode == 1
    assert "registry %s: authentication failed: the token server %s refused" % (token.host, ts.realm) in r.stderr
    assert "invalid username or password" in r.stderr
    r = pull(store + "2", ref, "--tls-verify=false")
    assert r.returncode == 1
    assert "registry %s: authentication required: test/small cannot be pulled with anonymous access" % token.host \
        in r.stderr


def test_identity_token_is_exchanged_at_the_token_server(token, store):
    # docker's identity tokens (config.json identitytoken, or a credential
    # helper's user "<token>"): an OAuth2 refresh token POSTed to the realm.
    ref = token.host + "/test/small:small"
    ts = token.token_server
    del ts.requests[:]
    assert ok(pull(store, ref, "--tls-verify=false", "--creds", "<token>:rt-of-bob")) == token.images.small["digest"]
    assert ts.requests == [("bob", "repository:test/small:pull", "refresh_token")]
    # The same through --creds-stdin, as the rootless driver hands them over.
    ok(pull(store + "2", ref, "--tls-verify=false", "--creds-stdin", input="<token>:rt-of-bob\n"))
    assert ts.requests[-1] == ("bob", "repository:test/small:pull", "refresh_token")
    r = pull(store + "3", ref, "--tls-verify=false", "--creds", "<token>:stolen")
    assert r.returncode == 1
    assert "registry %s: authentication failed: the token server %s refused" % (token.host, ts.realm) in r.stderr
    assert "invalid refresh token" in r.stderr


def test_identity_token_in_an_auth_file(token, store, tmp_path):
    authfile = tmp_path / "auth.json"
    authfile.write_text(json.dumps({"auths": {token.host: {"identitytoken": "rt-of-bob"}}}))
    ts = token.token_server
    del ts.requests[:]
    ok(pull(store, token.host + "/test/small:small", "--tls-verify=false", "--authfile", str(authfile)))
    assert ts.requests == [("bob", "repository:test/small:pull", "refresh_token")]


# --- TLS ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    work = str(tmp_path_factory.mktemp("tls"))
    reg = Registry(work, tls=self_signed(work, "server", "127.0.0.1"))
    try:
        reg.images = push_images(reg, work, creds="")
        yield reg
    finally:
        reg.stop()


def test_tls_self_signed_needs_tls_verify_false(tls, store):
    ref = tls.host + "/test/small:small"
    r = pull(store, ref)
    assert r.returncode == 1
    assert "registry " + tls.host in r.stderr and "certificate" in r.stderr and "--tls-verify=false" in r.stderr
    assert ok(pull(store, ref, "--tls-verify=false")) == tls.images.small["digest"]


def test_tls_verified_with_the_ca_from_a_cert_dir(tls, store, tmp_path):
    certs = tmp_path / "certs.d"
    certs.mkdir()
    (certs / "ca.crt").write_bytes(open(os.path.join(tls.workdir, "server.crt"), "rb").read())
    ref = tls.host + "/test/small:small"
    assert ok(pull(store, ref, "--cert-dir", str(certs))) == tls.images.small["digest"]
    (certs / "bad.crt").write_text("not a certificate\n")
    r = pull(store, ref, "--cert-dir", str(certs))
    assert r.returncode == 1 and "CA certificate %s/bad.crt: no PEM certificate" % certs in r.stderr


# --- the store commands after a pull ----------------------------------------

def husk_image(*args):
    return subprocess.run([HUSK_IMAGE, *args], capture_output=True, text=True, timeout=120, env=pull_env())


def test_pulled_image_is_listed_inspected_removed_and_pruned(plain, store):
    im = plain.images
    ref = plain.host + "/test/layers:layers"
    ok(pull(store, ref, "--tls-verify=false"))
    listing = ok(husk_image("list", "--root", store))
    assert ref in listing and "1 images" in listing
    info = json.loads(ok(husk_image("inspect", "--root", store, ref)))
    assert [layer["Blob"] for layer in info["Layers"]] == im.layers_layers
    assert info["Platform"] == "linux/amd64"
    # Layers are unpacked once, under the store's layers/ by diff_id.
    assert all(os.path.isdir(os.path.join(store, "layers", layer["DiffID"][7:])) for layer in info["Layers"])
    # An image a task holds is not removed.
    with open(os.path.join(store, "leases", "task-1"), "w") as f:
        f.write(info["Id"])
    r = husk_image("rm", "--root", store, ref)
    assert r.returncode != 0 and "in use by task task-1" in r.stderr
    os.unlink(os.path.join(store, "leases", "task-1"))
    ok(husk_image("rm", "--root", store, ref))
    assert ok(husk_image("list", "--root", store, "-q")) == ""
    # prune takes the layers and blobs no image references.
    assert "removed 0 images, 3 layers" in ok(husk_image("prune", "--root", store))
    assert store_blobs(store) == []
    r = husk_image("inspect", "--root", store, ref)
    assert r.returncode != 0 and ref in r.stderr
