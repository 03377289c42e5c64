#!/usr/bin/env python3
"""Tiny images the test-bed cluster needs, built locally (nothing is pulled).

small_images.py pause OUT.tar NAME        static pause program -> archive for `ctr import`
small_images.py busybox-rootfs DIR        busybox-static applet tree (host arch)
small_images.py busybox REGISTRY REPO:TAG [--https --cafile F --user U --password P]
                                         push a busybox image (plain or TLS+auth registry)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oci  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
BUSYBOX = "/bin/busybox"


def build_pause(out_tar: str, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        subprocess.run(
            ["gcc", "-static", "-Os", "-s", "-o", os.path.join(root, "pause"), os.path.join(HERE, "pause.c")],
            check=True,
        )
        img = oci.Image(
            layers=[oci.Layer.from_tree(root)],
            config={"Entrypoint": ["/pause"], "User": "65535:65535", "WorkingDir": "/"},
        )
        img.write_archive(out_tar, [name])


def busybox_rootfs(root: str, busybox: str = BUSYBOX) -> None:
    """A minimal root filesystem: static busybox + applet links + /etc basics."""
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "tmp",
        "root",
        "var",
        "proc",
        "sys",
        "dev",
        "run",
        "home",
    ):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    shutil.copy2(busybox, os.path.join(root, "bin/busybox"))
    os.chmod(os.path.join(root, "bin/busybox"), 0o755)
    out = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True).stdout
    for applet in out.split():
        applet = applet.strip("/")
        if not applet or os.path.basename(applet) == "busybox":
            continue  # a link named busybox would point at itself
        dest = os.path.join(root, applet)
        if os.path.lexists(dest):
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.symlink("/bin/busybox", dest)
    with open(os.path.join(root, "etc/passwd"), "w") as f:
        f.write(
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        )
    with open(os.path.join(root, "etc/group"), "w") as f:
        f.write("root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n")
    with open(os.path.join(root, "etc/nsswitch.conf"), "w") as f:
        f.write("hosts: files dns\n")


def busybox_image(marker: str = "") -> oci.Image:
    with tempfile.TemporaryDirectory() as tmp:
        busybox_rootfs(tmp)
        if marker:
            with open(os.path.join(tmp, "etc/testbed-marker"), "w") as f:
                f.write(marker + "\n")
        layer = oci.Layer.from_tree(tmp)
    return oci.Image(layers=[layer], config={"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]})


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pause")
    p.add_argument("out")
    p.add_argument("name")
    r = sub.add_parser("busybox-rootfs")
    r.add_argument("dir")
    b = sub.add_parser("busybox")
    b.add_argument("registry")
    b.add_argument("ref")
    b.add_argument("--https", action="store_true")
    b.add_argument("--cafile")
    b.add_argument("--user")
    b.add_argument("--password")
    b.add_argument("--marker", default="")
    a = ap.parse_args()
    if a.cmd == "pause":
        build_pause(a.out, a.name)
    elif a.cmd == "busybox-rootfs":
        busybox_rootfs(a.dir)
    else:
        repo, tag = a.ref.rsplit(":", 1)
        digest = busybox_image(a.marker).push(
            a.registry,
            repo,
            tag,
            scheme="https" if a.https else "http",
            cafile=a.cafile,
            user=a.user,
            password=a.password,
        )
        print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
