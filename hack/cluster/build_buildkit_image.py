#!/usr/bin/env python3
"""Assemble the BuildKit images the plugin deploys by default and push them to the
local plain registry, where the test-bed node pulls them under their public names
(containerd mirrors docker.io to that registry):

  moby/buildkit:<ver>           busybox-static base, buildkitd, buildctl,
                                buildkit-runc (Debian's runc + the shared libraries
                                it needs), buildkit-qemu-<arch>; ENTRYPOINT buildkitd
  moby/buildkit:<ver>-rootless  the same + rootlesskit (Go-built), newuidmap/newgidmap
                                (Debian's uidmap), uid 1000; ENTRYPOINT rootlesskit buildkitd

  build_buildkit_image.py [--registry 127.0.0.1:5000] [--ensure] [--archive DIR]

--ensure: do nothing when both tags are already in the registry.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import oci  # noqa: E402
import small_images  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("KB_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kubectl-build"
)
BUILDKIT_VERSION = os.environ.get("KB_BUILDKIT_VERSION", "v0.34.2")
ROOTLESSKIT_VERSION = "v2.3.6"
QEMU_ARCHES = ["aarch64", "arm", "riscv64", "ppc64le", "s390x", "mips64el", "loongarch64"]
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log(msg: str) -> None:
    print(f"[buildkit-image] {msg}", file=sys.stderr, flush=True)


def buildkit_bin() -> str:
    out = subprocess.run(
        [os.path.join(REPO, "hack/build-buildkit.sh")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, KB_CACHE=CACHE, BUILDKIT_VERSION=BUILDKIT_VERSION),
    ).stdout
    return out.strip().splitlines()[-1]


def rootlesskit_bin() -> str:
    d = os.path.join(CACHE, f"rootlesskit-{ROOTLESSKIT_VERSION}", "bin")
    exe = os.path.join(d, "rootlesskit")
    if not os.access(exe, os.X_OK):
        log(f"building rootlesskit {ROOTLESSKIT_VERSION}")
        os.makedirs(d, exist_ok=True)
        env = dict(os.environ, GOBIN=d, CGO_ENABLED="0")
        env["PATH"] = "/usr/local/go/bin:" + env.get("PATH", "")
        subprocess.run(
            [
                "go",
                "install",
                "-trimpath",
                "-ldflags",
                "-s -w",
                f"github.com/rootless-containers/rootlesskit/v2/cmd/rootlesskit@{ROOTLESSKIT_VERSION}",
            ],
            check=True,
            env=env,
            cwd=d,
        )
    return exe


def uidmap_root() -> str:
    """Debian's uidmap package extracted (not installed) into the cache."""
    top = os.path.join(CACHE, "debs", "uidmap")
    root = os.path.join(top, "root")
    if os.path.exists(os.path.join(root, "usr/bin/newuidmap")):
        return root
    os.makedirs(top, exist_ok=True)
    for f in glob.glob(os.path.join(top, "*.deb")):
        os.unlink(f)
    cmd = ["apt-get", "-o", "APT::Sandbox::User=root", "-qq", "download", "uidmap"]
    if subprocess.run(cmd, cwd=top).returncode != 0:  # fresh machine: package lists not fetched yet
        subprocess.run(["apt-get", "-qq", "update"], check=True)
        subprocess.run(cmd, check=True, cwd=top)
    deb = glob.glob(os.path.join(top, "uidmap_*.deb"))[0]
    shutil.rmtree(root, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
    return root


def copy_with_libs(src: str, root: str, dest: str, mode: int = 0o755) -> None:
    """Copy a dynamically linked program to root/dest plus every library ldd names
    (at the same absolute paths, so the image's loader finds them)."""
    full = os.path.join(root, dest.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    shutil.copyfile(src, full)
    os.chmod(full, mode)
    out = subprocess.run(["ldd", src], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        path = None
        if "=>" in parts:
            i = parts.index("=>")
            if i + 1 < len(parts) and parts[i + 1].startswith("/"):
                path = parts[i + 1]
        elif parts and parts[0].startswith("/"):
            path = parts[0]
        if not path:
            if "not found" in line:
                raise RuntimeError(f"{src}: {line.strip()}")
            continue
        for p in {path, os.path.realpath(path)}:
            tgt = os.path.join(root, p.lstrip("/"))
            if not os.path.exists(tgt):
                os.makedirs(os.path.dirname(tgt), exist_ok=True)
                shutil.copyfile(os.path.realpath(path), tgt)
                os.chmod(tgt, 0o755)


def base_layer(tmp: str) -> oci.Layer:
    root = os.path.join(tmp, "base")
    small_images.busybox_rootfs(root)
    runc = shutil.which("runc") or "/usr/sbin/runc"
    copy_with_libs(runc, root, "/usr/bin/buildkit-runc")
    for arch in QEMU_ARCHES:
        q = f"/usr/bin/qemu-{arch}-static"
        if os.path.exists(q):
            dst = os.path.join(root, f"usr/bin/buildkit-qemu-{arch}")
            shutil.copyfile(q, dst)
            os.chmod(dst, 0o755)
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    if os.path.exists(bundle):
        os.makedirs(os.path.join(root, "etc/ssl/certs"), exist_ok=True)
        shutil.copyfile(bundle, os.path.join(root, "etc/ssl/certs/ca-certificates.crt"))
    for d in ("var/lib/buildkit", "etc/buildkit", "run/buildkit"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    return oci.Layer.from_tree(root)


def buildkit_layer(tmp: str, bindir: str) -> oci.Layer:
    root = os.path.join(tmp, "bk")
    os.makedirs(os.path.join(root, "usr/bin"))
    for name in ("buildkitd", "buildctl"):
        shutil.copyfile(os.path.join(bindir, name), os.path.join(root, "usr/bin", name))
        os.chmod(os.path.join(root, "usr/bin", name), 0o755)
    return oci.Layer.from_tree(root)


def rootless_layer(tmp: str) -> oci.Layer:
    root = os.path.join(tmp, "rootless")
    os.makedirs(os.path.join(root, "usr/bin"))
    shutil.copyfile(rootlesskit_bin(), os.path.join(root, "usr/bin/rootlesskit"))
    os.chmod(os.path.join(root, "usr/bin/rootlesskit"), 0o755)
    um = uidmap_root()
    for name in ("newuidmap", "newgidmap"):
        copy_with_libs(os.path.join(um, "usr/bin", name), root, f"/usr/bin/{name}", 0o4755)
    os.makedirs(os.path.join(root, "etc"))
    for f in ("subuid", "subgid"):
        with open(os.path.join(root, "etc", f), "w") as fh:
            fh.write("user:100000:65536\n")
    owned = {}
    for d in (
        "home/user",
        "home/user/.local",
        "home/user/.local/share",
        "home/user/.local/share/buildkit",
        "home/user/.config",
        "home/user/.config/buildkit",
        "run/user",
        "run/user/1000",
    ):
        os.makedirs(os.path.join(root, d), exist_ok=True)
        owned[d] = (1000, 1000)
    owned["run/user"] = (0, 0)
    os.chmod(os.path.join(root, "run/user/1000"), 0o700)
    return oci.Layer.from_tree(root, owners=owned)


def build(registry: str, archive: str | None) -> None:
    bindir = buildkit_bin()
    with tempfile.TemporaryDirectory(prefix="kb-bkimg-") as tmp:
        log("assembling layers")
        base = base_layer(tmp)
        bk = buildkit_layer(tmp, bindir)
        rl = rootless_layer(tmp)
    labels = {
        "org.opencontainers.image.version": BUILDKIT_VERSION,
        "org.opencontainers.image.description": "BuildKit assembled locally by the kubectl-build test bed",
    }
    rootful = oci.Image(
        layers=[base, bk],
        config={
            "Entrypoint": ["buildkitd"],
            "Env": [PATH_ENV],
            "Volumes": {"/var/lib/buildkit": {}},
            "Labels": labels,
        },
    )
    rootless = oci.Image(
        layers=[base, bk, rl],
        config={
            "Entrypoint": ["rootlesskit", "buildkitd"],
            "User": "1000:1000",
            "Env": [
                PATH_ENV,
                "HOME=/home/user",
                "USER=user",
                "XDG_RUNTIME_DIR=/run/user/1000",
                "BUILDKIT_HOST=unix:///run/user/1000/buildkit/buildkitd.sock",
            ],
            "Volumes": {"/home/user/.local/share/buildkit": {}},
            "WorkingDir": "/home/user",
            "Labels": labels,
        },
    )
    for tag, img in ((BUILDKIT_VERSION, rootful), (BUILDKIT_VERSION + "-rootless", rootless)):
        if archive:
            os.makedirs(archive, exist_ok=True)
            path = os.path.join(archive, f"buildkit-{tag}.tar")
            img.write_archive(path, [f"docker.io/moby/buildkit:{tag}"])
            log(f"wrote {path}")
        if registry:
            digest = img.push(registry, "moby/buildkit", tag)
            log(f"pushed {registry}/moby/buildkit:{tag} {digest}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--registry", default="127.0.0.1:5000", help="plain-HTTP registry to push to ('' for none)"
    )
    ap.add_argument("--ensure", action="store_true", help="skip when both tags are already pushed")
    ap.add_argument("--archive", help="also write ctr/docker-loadable archives into this directory")
    a = ap.parse_args()
    if a.ensure and a.registry:
        reg = oci.Registry(a.registry)
        try:
            if all(
                reg.has_manifest("moby/buildkit", t)
                for t in (BUILDKIT_VERSION, BUILDKIT_VERSION + "-rootless")
            ):
                log(f"{a.registry}/moby/buildkit:{BUILDKIT_VERSION}{{,-rootless}} already present")
                return 0
        except OSError as e:
            log(f"registry {a.registry} not reachable: {e}")
            return 1
    build(a.registry, a.archive)
    return 0


if __name__ == "__main__":
    sys.exit(main())
