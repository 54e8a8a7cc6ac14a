"""Building image layers and OCI image layouts for the image store tests:
layer tarballs from python's tarfile (hostile ones included), and layouts
that skopeo turns into oci-archive and docker-archive files."""
import gzip
import hashlib
import io
import json
import os
import tarfile


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def tar_bytes(entries):
    """entries: list of (TarInfo fields dict, data bytes or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for fields, data in entries:
            ti = tarfile.TarInfo(fields.pop("name"))
            ti.mtime = 1_600_000_000
            for k, v in fields.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    return buf.getvalue()


def f(name, data=b"", mode=0o644, **kw):
    return (dict(name=name, mode=mode, **kw), data)


def d(name, mode=0o755, **kw):
    return (dict(name=name, type=tarfile.DIRTYPE, mode=mode, **kw), None)


def sym(name, target, **kw):
    return (dict(name=name, type=tarfile.SYMTYPE, linkname=target, **kw), None)


def hard(name, target, **kw):
    return (dict(name=name, type=tarfile.LNKTYPE, linkname=target, **kw), None)


def dev(name, major, minor, char=True, mode=0o666, **kw):
    return (dict(name=name, type=tarfile.CHRTYPE if char else tarfile.BLKTYPE, devmajor=major, devminor=minor,
                 mode=mode, **kw), None)


def tree_entries(root):
    """A directory tree as layer entries (for the busybox rootfs)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        if rel != ".":
            out.append(d(rel, mode=os.stat(dirpath).st_mode & 0o7777))
        for n in sorted(filenames):
            p = os.path.join(dirpath, n)
            r = os.path.normpath(os.path.join(rel, n))
            if os.path.islink(p):
                out.append(sym(r, os.readlink(p)))
            else:
                with open(p, "rb") as fh:
                    out.append(f(r, fh.read(), mode=os.stat(p).st_mode & 0o7777))
        for n in dirnames:
            p = os.path.join(dirpath, n)
            if os.path.islink(p):
                out.append(sym(os.path.normpath(os.path.join(rel, n)), os.readlink(p)))
    return out


def write_blob(layout, data):
    dg = sha(data)
    p = os.path.join(layout, "blobs", "sha256", dg[7:])
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as fh:
        fh.write(data)
    return dg


def make_layout(layout, layers, ref="latest", config=None, compress="gzip", diff_ids=None):
    """An OCI image layout at `layout` with `layers` (lists of entries or raw
    tar bytes, bottom first). Returns dict(manifest=, config=, diff_ids=, blobs=)."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    descs, ids = [], []
    for layer in layers:
        raw = layer if isinstance(layer, bytes) else tar_bytes([(dict(e[0]), e[1]) for e in layer])
        ids.append(sha(raw))
        blob = gzip.compress(raw, mtime=0) if compress == "gzip" else raw
        mt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress == "gzip" else "")
        descs.append({"mediaType": mt, "digest": write_blob(layout, blob), "size": len(blob)})
    cfg = {"architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
           "config": config or {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids or ids}}
    cfg_bytes = json.dumps(cfg).encode()
    cfg_desc = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": write_blob(layout, cfg_bytes),
                "size": len(cfg_bytes)}
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": cfg_desc, "layers": descs}).encode()
    mdg = write_blob(layout, manifest)
    with open(os.path.join(layout, "oci-layout"), "w") as fh:
        json.dump({"imageLayoutVersion": "1.0.0"}, fh)
    with open(os.path.join(layout, "index.json"), "w") as fh:
        json.dump({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdg, "size": len(manifest),
             "annotations": {"org.opencontainers.image.ref.name": ref}}]}, fh)
    return {"manifest": mdg, "config": cfg_desc["digest"], "diff_ids": ids, "blobs": [x["digest"] for x in descs]}
