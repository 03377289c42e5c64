#!/usr/bin/env python3
"""Seed the test bed's plain registry with the base images the tests and examples use.

Python 3 standard library only. Images are built locally, deterministically (sorted tar
entries, fixed mtimes and owners, gzip mtime 0, fixed `created`), and pushed with the
registry HTTP API (blob upload POST + monolithic PUT, manifest PUT):

  library/busybox:latest, :1.36   index: linux/amd64, 386, arm/v6, arm/v7, arm64, ppc64le,
                                  s390x, each from Debian's busybox-static of that arch
  library/golang:1.26, :latest    index: linux/amd64, this machine's Go toolchain at
                                  /usr/local/go over the busybox amd64 layer
  windows/nanoserver:ltsc2022     a STAND-IN for mcr.microsoft.com/windows/nanoserver:
                                  index with one windows/amd64 manifest (os.version
                                  10.0.20348.x) and one tiny layer in Windows layer layout
                                  (Files/..., Hives/); it contains no Windows binaries.

Usage:
  seed_images.py --registry 127.0.0.1:5000 --busybox-dir $KB_CACHE/busybox [--force]
  seed_images.py --print-key --busybox-dir ...   # version key of what would be seeded
Tags that already exist are left alone unless --force is given.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

MTIME = 1704067200  # 2024-01-01T00:00:00Z, for every tar entry
CREATED = "2024-01-01T00:00:00Z"
SEED_FORMAT = "3"  # bump when the produced images change in a way the inputs don't show

MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ACCEPT = ", ".join(
    [
        MT_INDEX,
        MT_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)

# Debian architecture -> OCI platform of the busybox image.
BUSYBOX_PLATFORMS = [
    ("amd64", {"architecture": "amd64", "os": "linux"}),
    ("i386", {"architecture": "386", "os": "linux"}),
    ("armel", {"architecture": "arm", "os": "linux", "variant": "v6"}),
    ("armhf", {"architecture": "arm", "os": "linux", "variant": "v7"}),
    ("arm64", {"architecture": "arm64", "os": "linux"}),
    ("ppc64el", {"architecture": "ppc64le", "os": "linux"}),
    ("s390x", {"architecture": "s390x", "os": "linux"}),
]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
GO_PATH = "PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NANOSERVER_OS_VERSION = "10.0.20348.2227"


def log(msg: str) -> None:
    print(f"[seed] {msg}", file=sys.stderr, flush=True)


def sha256_bytes(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def canonical_json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


# ---------------------------------------------------------------- deterministic layers


class _HashWriter(io.RawIOBase):
    """Write-through that hashes and counts what passes."""

    def __init__(self, inner):
        self.inner = inner
        self.h = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        b = bytes(b)
        self.h.update(b)
        self.size += len(b)
        if self.inner is not None:
            self.inner.write(b)
        return len(b)


class Entry:
    """One tar entry: dir, file (from bytes or a host path) or symlink."""

    def __init__(
        self,
        name: str,
        kind: str,
        mode: int,
        data: bytes | None = None,
        src: str | None = None,
        target: str | None = None,
    ):
        self.name, self.kind, self.mode = name.strip("/"), kind, mode
        self.data, self.src, self.target = data, src, target


def d(name: str, mode: int = 0o755) -> Entry:
    return Entry(name, "dir", mode)


def f(name: str, data: bytes, mode: int = 0o644) -> Entry:
    return Entry(name, "file", mode, data=data)


def s(name: str, target: str) -> Entry:
    return Entry(name, "symlink", 0o777, target=target)


class Layer:
    def __init__(self, path: Path, digest: str, size: int, diff_id: str):
        self.path, self.digest, self.size, self.diff_id = path, digest, size, diff_id

    def descriptor(self) -> dict:
        return {"mediaType": MT_LAYER, "digest": self.digest, "size": self.size}


def build_layer(entries: list[Entry], out: Path, level: int = 6) -> Layer:
    """Write a gzip'd tar of `entries` (sorted by name) to `out`; return its digests."""
    entries = sorted(entries, key=lambda e: e.name)
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ValueError("duplicate tar entries")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        comp = _HashWriter(fh)
        with gzip.GzipFile(filename="", mode="wb", fileobj=comp, mtime=0, compresslevel=level) as gz:
            raw = _HashWriter(gz)
            with tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for e in entries:
                    ti = tarfile.TarInfo(e.name)
                    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = MTIME, 0, 0, "", ""
                    ti.mode = e.mode
                    if e.kind == "dir":
                        ti.type = tarfile.DIRTYPE
                        tar.addfile(ti)
                    elif e.kind == "symlink":
                        ti.type, ti.linkname = tarfile.SYMTYPE, e.target
                        tar.addfile(ti)
                    elif e.src is not None:
                        ti.size = os.path.getsize(e.src)
                        with open(e.src, "rb") as src:
                            tar.addfile(ti, src)
                    else:
                        ti.size = len(e.data)
                        tar.addfile(ti, io.BytesIO(e.data))
    os.replace(tmp, out)
    return Layer(out, "sha256:" + comp.h.hexdigest(), comp.size, "sha256:" + raw.h.hexdigest())


# ---------------------------------------------------------------- registry client


class Registry:
    def __init__(self, host: str):
        self.base = f"http://{host}"

    def _req(self, method: str, url: str, data=None, headers=None, ok=(200,)):
        if not url.startswith("http"):
            url = self.base + url
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        for attempt in range(3):
            try:
                with urllib.request.urlopen(req, timeout=300) as resp:
                    return resp.status, resp.headers, resp.read()
            except urllib.error.HTTPError as e:
                if e.code in ok:
                    return e.code, e.headers, e.read()
                body = e.read()[:500]
                if e.code >= 500 and attempt < 2 and not hasattr(data, "read"):
                    time.sleep(1 + attempt)
                    continue
                raise RuntimeError(f"{method} {url}: HTTP {e.code}: {body!r}") from None
            except (urllib.error.URLError, ConnectionError) as e:
                if attempt < 2 and not hasattr(data, "read"):
                    time.sleep(1 + attempt)
                    continue
                raise RuntimeError(f"{method} {url}: {e}") from None
        raise AssertionError("unreachable")

    def ping(self, timeout_s: float = 15) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(self.base + "/v2/", timeout=2) as r:
                    if r.status == 200:
                        return
            except Exception as e:  # noqa: BLE001
                if time.monotonic() > deadline:
                    raise RuntimeError(f"registry {self.base} not answering /v2/: {e}") from None
            time.sleep(0.2)

    def has_manifest(self, repo: str, ref: str) -> bool:
        st, _, _ = self._req("HEAD", f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT}, ok=(200, 404))
        return st == 200

    def has_blob(self, repo: str, digest: str) -> bool:
        st, _, _ = self._req("HEAD", f"/v2/{repo}/blobs/{digest}", ok=(200, 404))
        return st == 200

    def put_blob(
        self, repo: str, digest: str, size: int, data: bytes | None = None, path: Path | None = None
    ) -> None:
        if self.has_blob(repo, digest):
            return
        st, hdrs, _ = self._req("POST", f"/v2/{repo}/blobs/uploads/", data=b"", ok=(202,))
        loc = hdrs["Location"]
        loc = urllib.parse.urljoin(self.base + "/", loc)
        loc += ("&" if "?" in loc else "?") + "digest=" + urllib.parse.quote(digest)
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        if path is not None:
            with open(path, "rb") as fh:
                self._req("PUT", loc, data=fh, headers=headers, ok=(201,))
        else:
            self._req("PUT", loc, data=data, headers=headers, ok=(201,))

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> None:
        self._req(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            data=body,
            headers={"Content-Type": media_type},
            ok=(201,),
        )


# ---------------------------------------------------------------- images


def push_image(reg: Registry, repo: str, layers: list[Layer], config: dict) -> dict:
    """Push layers, config and manifest of one platform image; return its descriptor."""
    for ly in layers:
        reg.put_blob(repo, ly.digest, ly.size, path=ly.path)
    cfg = canonical_json(config)
    cfg_digest = sha256_bytes(cfg)
    reg.put_blob(repo, cfg_digest, len(cfg), data=cfg)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": cfg_digest, "size": len(cfg)},
        "layers": [ly.descriptor() for ly in layers],
    }
    body = canonical_json(manifest)
    digest = sha256_bytes(body)
    reg.put_manifest(repo, digest, body, MT_MANIFEST)
    plat = {k: config[k] for k in ("architecture", "os", "variant", "os.version") if k in config}
    return {"mediaType": MT_MANIFEST, "digest": digest, "size": len(body), "platform": plat}


def push_index(reg: Registry, repo: str, tags: list[str], descs: list[dict]) -> str:
    body = canonical_json({"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": descs})
    for t in tags:
        reg.put_manifest(repo, t, body, MT_INDEX)
    return sha256_bytes(body)


def image_config(
    platform: dict,
    env: list[str],
    cmd: list[str],
    layers: list[Layer],
    history: list[str],
    workdir: str | None = None,
) -> dict:
    cfg: dict = {"Env": env, "Cmd": cmd}
    if workdir:
        cfg["WorkingDir"] = workdir
    out = dict(platform)
    out.update(
        {
            "created": CREATED,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [ly.diff_id for ly in layers]},
            "history": [
                {"created": CREATED, "created_by": h, "comment": "kubectl-build test bed seed"}
                for h in history
            ],
        }
    )
    return out


def busybox_applets(busybox_dir: Path) -> list[str]:
    """Applet names, from the host-native amd64 binary (Debian builds every arch from the
    same config); the applet named `busybox` is skipped (it would link to itself)."""
    out = subprocess.run(
        [str(busybox_dir / "amd64/bin/busybox"), "--list"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    names = sorted({a.strip() for a in out.split() if a.strip() and a.strip() != "busybox"})
    if "sh" not in names:
        raise RuntimeError("busybox has no sh applet")
    return names


def busybox_entries(binary: Path, applets: list[str]) -> list[Entry]:
    ents = [
        d("bin"),
        d("etc"),
        d("root", 0o700),
        d("tmp", 0o1777),
        d("usr"),
        d("usr/bin"),
        d("usr/sbin"),
        d("sbin"),
        d("var"),
        d("var/tmp", 0o1777),
        f(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        f("etc/group", b"root:x:0:\nnogroup:x:65534:\n"),
        Entry("bin/busybox", "file", 0o755, src=str(binary)),
    ]
    ents += [s(f"bin/{a}", "busybox") for a in applets]
    return ents


def build_busybox_layers(busybox_dir: Path, work: Path) -> dict[str, Layer]:
    applets = busybox_applets(busybox_dir)
    layers = {}
    for deb_arch, _ in BUSYBOX_PLATFORMS:
        binary = busybox_dir / deb_arch / "bin/busybox"
        if not binary.is_file():
            raise RuntimeError(f"missing {binary} (run hack/install-deps.sh)")
        layers[deb_arch] = build_layer(
            busybox_entries(binary, applets), work / f"busybox-{deb_arch}.tar.gz", 9
        )
    return layers


def seed_busybox(reg: Registry, layers: dict[str, Layer], version: str) -> str:
    descs = []
    for deb_arch, plat in BUSYBOX_PLATFORMS:
        ly = layers[deb_arch]
        cfg = image_config(
            plat,
            [DEFAULT_PATH],
            ["sh"],
            [ly],
            [f"busybox-static {version} ({deb_arch}) from Debian"],
        )
        descs.append(push_image(reg, "library/busybox", [ly], cfg))
    return push_index(reg, "library/busybox", ["latest", "1.36"], descs)


def go_info(go: str) -> tuple[str, str]:
    out = subprocess.run(
        [go, "env", "GOROOT", "GOVERSION"], check=True, capture_output=True, text=True
    ).stdout.split()
    return out[0], out[1]


def goroot_entries(goroot: Path) -> list[Entry]:
    """The toolchain under usr/local/go, without GOROOT/test and src/**/testdata
    (only `go test` of the standard library needs them)."""
    ents = [
        d("usr"),
        d("usr/local"),
        d("usr/local/go"),
        d("go", 0o777),
        d("go/bin", 0o777),
        d("go/src", 0o777),
    ]
    for dirpath, dirnames, filenames in os.walk(goroot):
        rel = os.path.relpath(dirpath, goroot)
        keep = []
        for dn in sorted(dirnames):
            relp = os.path.normpath(os.path.join(rel, dn))
            if relp == "test" or dn == "testdata" or dn == ".git":
                continue
            full = os.path.join(dirpath, dn)
            if os.path.islink(full):
                ents.append(s(f"usr/local/go/{relp}", os.readlink(full)))
                continue
            keep.append(dn)
            ents.append(d(f"usr/local/go/{relp}"))
        dirnames[:] = keep
        for fn in filenames:
            full = os.path.join(dirpath, fn)
            relp = os.path.normpath(os.path.join(rel, fn))
            if os.path.islink(full):
                ents.append(s(f"usr/local/go/{relp}", os.readlink(full)))
            elif os.path.isfile(full):
                mode = 0o755 if os.stat(full).st_mode & 0o111 else 0o644
                ents.append(Entry(f"usr/local/go/{relp}", "file", mode, src=full))
    return ents


def seed_golang(reg: Registry, bb_amd64: Layer, goroot: str, goversion: str, work: Path) -> str:
    t0 = time.monotonic()
    go_layer = build_layer(goroot_entries(Path(goroot)), work / "golang.tar.gz", 6)
    log(f"golang layer {go_layer.size >> 20} MiB built in {time.monotonic() - t0:.1f}s")
    plat = {"architecture": "amd64", "os": "linux"}
    env = [
        GO_PATH,
        "GOLANG_VERSION=" + goversion.removeprefix("go"),
        "GOPATH=/go",
        "GOTOOLCHAIN=local",
    ]
    cfg = image_config(
        plat,
        env,
        ["sh"],
        [bb_amd64, go_layer],
        ["busybox-static (amd64) from Debian", f"Go toolchain {goversion} of the test-bed host"],
        workdir="/go",
    )
    desc = push_image(reg, "library/golang", [bb_amd64, go_layer], cfg)
    return push_index(reg, "library/golang", ["1.26", "latest"], [desc])


def seed_nanoserver(reg: Registry, work: Path) -> str:
    # STAND-IN for mcr.microsoft.com/windows/nanoserver:ltsc2022 (the real one cannot be
    # pulled here): right platform and Windows layer layout, no Windows content.
    note = b"kubectl-build test bed: stand-in for mcr.microsoft.com/windows/nanoserver:ltsc2022\r\n"
    ents = [
        d("Files"),
        d("Files/Windows"),
        d("Files/Windows/System32"),
        f("Files/License.txt", note),
        f("Files/Windows/System32/standin.txt", note),
        d("Hives"),
    ]
    ly = build_layer(ents, work / "nanoserver.tar.gz", 9)
    plat = {"architecture": "amd64", "os": "windows", "os.version": NANOSERVER_OS_VERSION}
    cfg = image_config(
        plat,
        [r"PATH=C:\Windows\system32;C:\Windows"],
        [r"c:\windows\system32\cmd.exe"],
        [ly],
        ["stand-in for mcr.microsoft.com/windows/nanoserver:ltsc2022"],
    )
    desc = push_image(reg, "windows/nanoserver", [ly], cfg)
    return push_index(reg, "windows/nanoserver", ["ltsc2022"], [desc])


def seed_key(busybox_dir: Path, go: str) -> str:
    goroot, goversion = go_info(go)
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update(SEED_FORMAT.encode())
    for deb_arch, _ in BUSYBOX_PLATFORMS:
        v = busybox_dir / deb_arch / "VERSION"
        h.update(f"{deb_arch}={v.read_text().strip() if v.exists() else '?'}\n".encode())
    h.update(f"{goroot} {goversion}\n".encode())
    return f"{goversion}-{h.hexdigest()[:16]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", default=os.environ.get("KB_REGISTRY", "127.0.0.1:5000"))
    ap.add_argument("--busybox-dir", type=Path, required=True)
    ap.add_argument("--go", default=shutil.which("go") or "go")
    ap.add_argument("--work", type=Path, help="scratch dir for layer files (default: a temp dir)")
    ap.add_argument("--force", action="store_true", help="re-push even if the tags exist")
    ap.add_argument("--print-key", action="store_true")
    a = ap.parse_args()
    if a.print_key:
        print(seed_key(a.busybox_dir, a.go))
        return 0
    reg = Registry(a.registry)
    reg.ping()
    wanted = {
        "library/busybox": ["latest", "1.36"],
        "library/golang": ["1.26", "latest"],
        "windows/nanoserver": ["ltsc2022"],
    }
    todo = {r for r, tags in wanted.items() if a.force or not all(reg.has_manifest(r, t) for t in tags)}
    if not todo:
        log("all images present")
        return 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kb-seed-", dir=a.work) as tmp:
        work = Path(tmp)
        version = (a.busybox_dir / "amd64/VERSION").read_text().strip()
        bb_layers = None
        if todo & {"library/busybox", "library/golang"}:
            bb_layers = build_busybox_layers(a.busybox_dir, work)
        if "library/busybox" in todo:
            log(f"library/busybox {seed_busybox(reg, bb_layers, version)}")
        if "windows/nanoserver" in todo:
            log(f"windows/nanoserver {seed_nanoserver(reg, work)}")
        if "library/golang" in todo:
            goroot, goversion = go_info(a.go)
            log(f"library/golang {seed_golang(reg, bb_layers['amd64'], goroot, goversion, work)}")
    log(f"seeded {', '.join(sorted(todo))} in {time.monotonic() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
