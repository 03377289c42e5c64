#!/usr/bin/env python3
"""Assemble the test bed's stand-in for docker.io/tonistiigi/binfmt:latest (the binfmt_misc
installer kubectl-build runs in a privileged pod to add QEMU emulators) and push it to the
local plain registry, where the test-bed node pulls docker.io/* from (containerd mirror):

  tonistiigi/binfmt:latest      busybox-static base, binfmt-install.sh as /usr/bin/binfmt
  tonistiigi/binfmt:kb-<recipe> (ENTRYPOINT), Debian's static qemu-user binaries (the
                                qemu-user-static package the core test bed installs for
                                the host's own registrations) as /usr/bin/qemu-<name>

  build_binfmt_image.py [--registry 127.0.0.1:5000] [--ensure] [--archive DIR]

--ensure: do nothing when the image of this recipe (installer script, handler table,
qemu version) is already pushed; prints "pushed" on stdout when it pushed, so the caller
knows to drop a stale copy from the node's image store.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import oci  # noqa: E402
import small_images  # noqa: E402

REPO_NAME = "tonistiigi/binfmt"
TAG = "latest"
INSTALLER = os.path.join(HERE, "binfmt-install.sh")


def _elf(ident: str, machine: str, big_endian: bool = False) -> tuple[str, str]:
    """binfmt_misc magic and mask for ELF executables of one machine: the first 20 header
    bytes (ident, e_type, e_machine; `machine` as the bytes appear in the file).

    OS ABI and ABI version (bytes 7 and 8) are not compared: Go-built programs, BuildKit's
    own emulator checks among them, carry an ABI version that Debian's /usr/share/binfmts
    masks reject (so BuildKit would never report the platform). e_type may be EXEC (2) or
    DYN (3): its low bit is masked.
    """
    etype, etype_mask = ("0002", "fffe") if big_endian else ("0200", "feff")
    magic = "7f454c46" + ident + "00" * 9 + etype + machine
    mask = "ff" * 7 + "00" * 2 + "ff" * 7 + etype_mask + "ffff"
    assert len(magic) == len(mask) == 40

    def escaped(hexa: str) -> str:
        return "".join(f"\\x{hexa[i:i + 2]}" for i in range(0, len(hexa), 2))

    return escaped(magic), escaped(mask)


# GOARCH, binfmt_misc handler name (as tonistiigi/binfmt registers it), (magic, mask),
# platforms it adds. ident: class (01 32-bit, 02 64-bit), data (01 LE, 02 BE), version 01.
HANDLERS = [
    ("amd64", "qemu-x86_64", _elf("020101", "3e00"), ["linux/amd64"]),
    ("arm64", "qemu-aarch64", _elf("020101", "b700"), ["linux/arm64"]),
    ("arm", "qemu-arm", _elf("010101", "2800"), ["linux/arm/v7", "linux/arm/v6"]),
    ("386", "qemu-i386", _elf("010101", "0300"), ["linux/386"]),
    ("riscv64", "qemu-riscv64", _elf("020101", "f300"), ["linux/riscv64"]),
    ("ppc64le", "qemu-ppc64le", _elf("020101", "1500"), ["linux/ppc64le"]),
    ("s390x", "qemu-s390x", _elf("020201", "0016", big_endian=True), ["linux/s390x"]),
    ("mips64le", "qemu-mips64el", _elf("020101", "0800"), ["linux/mips64le"]),
    ("mips64", "qemu-mips64", _elf("020201", "0008", big_endian=True), ["linux/mips64"]),
    ("loong64", "qemu-loongarch64", _elf("020101", "0201"), ["linux/loong64"]),
]
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def log(msg: str) -> None:
    print(f"[binfmt-image] {msg}", file=sys.stderr, flush=True)


def qemu_version() -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "qemu-user-static"],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0 or not out.stdout:
        raise SystemExit("qemu-user-static is not installed (hack/install-deps.sh installs it)")
    return out.stdout.strip()


def handler_table() -> tuple[str, list[str]]:
    """The installer's table (one line per handler Debian ships a static binary for; not
    the host's own architecture) and the handler names in it."""
    lines, names = [], []
    for arch, name, (magic, mask), platforms in HANDLERS:
        if not os.path.exists(f"/usr/bin/{name}-static"):
            continue
        lines.append(" ".join([arch, name, "0", magic, mask, *platforms]))
        names.append(name)
    return "\n".join(lines) + "\n", names


def recipe(table: str, version: str) -> str:
    with open(INSTALLER, "rb") as f:
        script = f.read()
    return hashlib.sha256(script + table.encode() + version.encode()).hexdigest()[:16]


def image(table: str, names: list[str], version: str, digest: str) -> oci.Image:
    with tempfile.TemporaryDirectory(prefix="kb-binfmt-") as tmp:
        root = os.path.join(tmp, "root")
        small_images.busybox_rootfs(root)
        os.makedirs(os.path.join(root, "etc/binfmt"), exist_ok=True)
        with open(os.path.join(root, "etc/binfmt/handlers"), "w") as f:
            f.write(table)
        with open(os.path.join(root, "etc/binfmt/qemu-version"), "w") as f:
            f.write(version + "\n")
        shutil.copyfile(INSTALLER, os.path.join(root, "usr/bin/binfmt"))
        os.chmod(os.path.join(root, "usr/bin/binfmt"), 0o755)
        for name in names:
            dst = os.path.join(root, "usr/bin", name)
            shutil.copyfile(f"/usr/bin/{name}-static", dst)
            os.chmod(dst, 0o755)
        layer = oci.Layer.from_tree(root)
    return oci.Image(layers=[layer], config={
        "Entrypoint": ["/usr/bin/binfmt"],
        "Env": [PATH_ENV],
        "Labels": {"org.opencontainers.image.description":
                   "tonistiigi/binfmt stand-in assembled by the kubectl-build test bed",
                   "dev.kubectl-build.testbed.recipe": digest},
    })


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", default="127.0.0.1:5000", help="plain-HTTP registry to push to ('' for none)")
    ap.add_argument("--ensure", action="store_true", help="skip when this recipe is already pushed")
    ap.add_argument("--archive", help="also write a ctr/docker-loadable archive into this directory")
    a = ap.parse_args()
    version = qemu_version()
    table, names = handler_table()
    digest = recipe(table, version)
    recipe_tag = f"kb-{digest}"
    if a.ensure and a.registry:
        try:
            reg = oci.Registry(a.registry)
            if reg.has_manifest(REPO_NAME, recipe_tag) and reg.has_manifest(REPO_NAME, TAG):
                log(f"{a.registry}/{REPO_NAME}:{TAG} ({recipe_tag}) already present")
                return 0
        except OSError as e:
            log(f"registry {a.registry} not reachable: {e}")
            return 1
    log(f"assembling ({len(names)} emulators: {' '.join(names)}; qemu {version})")
    img = image(table, names, version, digest)
    if a.archive:
        os.makedirs(a.archive, exist_ok=True)
        path = os.path.join(a.archive, f"binfmt-{recipe_tag}.tar")
        img.write_archive(path, [f"docker.io/{REPO_NAME}:{TAG}"])
        log(f"wrote {path}")
    if a.registry:
        for tag in (recipe_tag, TAG):
            pushed = img.push(a.registry, REPO_NAME, tag)
            log(f"pushed {a.registry}/{REPO_NAME}:{tag} {pushed}")
        print("pushed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
