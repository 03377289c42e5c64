"""Small, stdlib-only helpers to assemble OCI images for the test-bed cluster.

- ``Layer.from_tree(dir)``: a deterministic gzip'd tar layer of a directory.
- ``Image``: config + layers; ``write_archive`` writes a tarball that both
  ``ctr images import`` and ``docker load`` understand (OCI layout plus
  ``manifest.json``); ``push`` uploads it to a registry over the
  distribution HTTP API (plain HTTP, or HTTPS with a CA file and basic auth).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import ssl
import stat
import tarfile
import time
import urllib.parse
from dataclasses import dataclass, field

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Layer:
    blob: bytes  # gzip'd tar
    diff_id: str  # digest of the uncompressed tar

    @property
    def digest(self) -> str:
        return sha256(self.blob)

    @classmethod
    def from_tar_bytes(cls, raw: bytes) -> Layer:
        blob = gzip.compress(raw, compresslevel=6, mtime=0)
        return cls(blob=blob, diff_id=sha256(raw))

    @classmethod
    def from_tree(
        cls, root: str, uid: int = 0, gid: int = 0, owners: dict[str, tuple[int, int]] | None = None
    ) -> Layer:
        """Tar ``root``'s content (paths relative to it) with fixed mtime/owner.

        ``owners`` maps image-relative paths (no leading slash) to (uid, gid)."""
        owners = owners or {}
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                rel_dir = os.path.relpath(dirpath, root)
                names = sorted(dirnames + filenames)
                if rel_dir != ".":
                    _add(tar, dirpath, rel_dir, uid, gid, owners)
                for name in names:
                    full = os.path.join(dirpath, name)
                    rel = os.path.normpath(os.path.join(rel_dir, name))
                    if os.path.isdir(full) and not os.path.islink(full):
                        continue  # added when walked
                    _add(tar, full, rel, uid, gid, owners)
        return cls.from_tar_bytes(buf.getvalue())


def _add(tar: tarfile.TarFile, full: str, rel: str, uid: int, gid: int, owners) -> None:
    st = os.lstat(full)
    info = tarfile.TarInfo(rel)
    info.mtime = 0
    info.uid, info.gid = owners.get(rel, (uid, gid))
    info.uname = info.gname = ""
    info.mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(full)
        tar.addfile(info)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif stat.S_ISREG(st.st_mode):
        info.size = st.st_size
        with open(full, "rb") as f:
            tar.addfile(info, f)


@dataclass
class Image:
    layers: list[Layer]
    config: dict = field(default_factory=dict)  # the "config" part (Entrypoint, Env, ...)
    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None

    def config_blob(self) -> bytes:
        doc = {
            "architecture": self.architecture,
            "os": self.os,
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]},
            "history": [
                {"created": "1970-01-01T00:00:00Z", "created_by": "kubectl-build test bed"}
                for _ in self.layers
            ],
            "created": "1970-01-01T00:00:00Z",
        }
        if self.variant:
            doc["variant"] = self.variant
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def manifest_blob(self) -> bytes:
        cfg = self.config_blob()
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(cfg), "size": len(cfg)},
            "layers": [
                {"mediaType": OCI_LAYER_GZIP, "digest": layer.digest, "size": len(layer.blob)}
                for layer in self.layers
            ],
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def platform(self) -> dict:
        p = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            p["variant"] = self.variant
        return p

    def write_archive(self, path: str, names: list[str]) -> None:
        """OCI image layout tarball (+ docker manifest.json) tagged with ``names``."""
        cfg = self.config_blob()
        man = self.manifest_blob()
        blobs = {sha256(cfg): cfg, sha256(man): man}
        for layer in self.layers:
            blobs[layer.digest] = layer.blob
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": sha256(man),
                    "size": len(man),
                    "platform": self.platform(),
                    "annotations": {
                        "io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1],
                    },
                }
                for name in names
            ],
        }
        docker_manifest = [
            {
                "Config": "blobs/sha256/" + sha256(cfg)[7:],
                "RepoTags": list(names),
                "Layers": ["blobs/sha256/" + layer.digest[7:] for layer in self.layers],
            }
        ]
        tmp = path + ".tmp"
        with tarfile.open(tmp, "w") as tar:
            _tar_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            _tar_bytes(tar, "index.json", json.dumps(index).encode())
            _tar_bytes(tar, "manifest.json", json.dumps(docker_manifest).encode())
            for digest, data in blobs.items():
                _tar_bytes(tar, "blobs/sha256/" + digest[7:], data)
        os.replace(tmp, path)

    def push(
        self,
        registry: str,
        repo: str,
        tag: str,
        *,
        scheme: str = "http",
        cafile: str | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> str:
        """Upload blobs and the manifest; returns the manifest digest."""
        reg = Registry(registry, scheme=scheme, cafile=cafile, user=user, password=password)
        cfg = self.config_blob()
        for blob in [layer.blob for layer in self.layers] + [cfg]:
            reg.put_blob(repo, blob)
        man = self.manifest_blob()
        reg.put_manifest(repo, tag, man, OCI_MANIFEST)
        return sha256(man)


def _tar_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


class Registry:
    def __init__(
        self,
        host: str,
        *,
        scheme: str = "http",
        cafile: str | None = None,
        user: str | None = None,
        password: str | None = None,
    ):
        self.host, self.scheme = host, scheme
        self.ctx = ssl.create_default_context(cafile=cafile) if scheme == "https" else None
        self.headers = {}
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self.headers["Authorization"] = "Basic " + token

    def _conn(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, context=self.ctx, timeout=120)
        return http.client.HTTPConnection(self.host, timeout=120)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        h = dict(self.headers)
        h.update(headers or {})
        for attempt in range(5):
            conn = self._conn()
            try:
                conn.request(method, path, body=body, headers=h)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, dict(resp.getheaders()), data
            except (ConnectionError, OSError):
                if attempt == 4:
                    raise
                time.sleep(0.5 * (attempt + 1))
            finally:
                conn.close()
        raise AssertionError("unreachable")

    def put_blob(self, repo: str, blob: bytes) -> str:
        digest = sha256(blob)
        status, _, _ = self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        if status == 200:
            return digest
        status, headers, data = self.request(
            "POST", f"/v2/{repo}/blobs/uploads/", b"", {"Content-Length": "0"}
        )
        if status != 202:
            raise RuntimeError(f"blob upload start failed for {repo}: {status} {data[:200]!r}")
        loc = {k.lower(): v for k, v in headers.items()}["location"]
        u = urllib.parse.urlsplit(loc)
        path = u.path + "?" + (u.query + "&" if u.query else "") + "digest=" + urllib.parse.quote(digest)
        status, _, data = self.request(
            "PUT", path, blob, {"Content-Type": "application/octet-stream", "Content-Length": str(len(blob))}
        )
        if status != 201:
            raise RuntimeError(f"blob upload failed for {repo}: {status} {data[:200]!r}")
        return digest

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> None:
        status, _, data = self.request(
            "PUT", f"/v2/{repo}/manifests/{ref}", body, {"Content-Type": media_type}
        )
        if status != 201:
            raise RuntimeError(f"manifest upload failed for {repo}:{ref}: {status} {data[:300]!r}")

    def has_manifest(self, repo: str, ref: str) -> bool:
        status, _, _ = self.request(
            "HEAD", f"/v2/{repo}/manifests/{ref}", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}
        )
        return status == 200
