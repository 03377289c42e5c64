"""Correctness oracle: our build and buildctl's, same inputs, same daemon, same digest.

Every case builds with --no-cache (so layers are really recreated from what each
client sent: names, order, modes, owners, mtimes, link targets, data) and a fixed
SOURCE_DATE_EPOCH, and exports an OCI tarball. Equal manifest digests mean our
FileSync sender produced exactly the tree Go's fsutil sender produced.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.helpers import Testbed, run_cli

pytestmark = pytest.mark.e2e
EPOCH = "1700000000"


def write(path: Path, data: bytes | str = b"x", mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mode is not None:
        path.chmod(mode)


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path], None]
    dockerfile: str = "FROM scratch\nCOPY . /\n"
    # Dockerfile path relative to the case dir; the context is always ./ctx.
    dockerfile_path: str = "ctx/Dockerfile"
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None


def basic(d: Path) -> None:
    write(d / "a.txt", "hello\n")
    write(d / "sub/b.txt", "b")
    write(d / "sub/deeper/c.bin", os.urandom(70_000))


def symlinks(d: Path) -> None:
    write(d / "target.txt", "t")
    (d / "rel").symlink_to("target.txt")
    (d / "abs").symlink_to("/etc/passwd")
    (d / "dangling").symlink_to("nowhere/at/all")
    (d / "dir").mkdir()
    (d / "dirlink").symlink_to("dir")


def empty_dirs(d: Path) -> None:
    for name in ("e1", "e2/e3/e4", "z"):
        (d / name).mkdir(parents=True)


def modes(d: Path) -> None:
    write(d / "exec.sh", "#!/bin/sh\n", 0o755)
    write(d / "private", "p", 0o600)
    write(d / "setuid", "s", 0o4755)
    write(d / "ro", "r", 0o444)
    (d / "sticky").mkdir()
    (d / "sticky").chmod(0o1777)
    (d / "closed").mkdir()
    (d / "closed").chmod(0o700)
    os.mkfifo(d / "fifo")


def unicode_names(d: Path) -> None:
    for name in ("café.txt", "日本語", "emoji-🚀", "Zed", "a b c", "ÅÄÖ", "ñ/ü.txt"):
        write(d / name, name)


def non_utf8_names(d: Path) -> None:
    write(d / "plain", "p")
    for raw in (b"latin1-\xe9", b"\xff\xfe", b"mixed-\xc3\xa9-\xe9"):
        with open(os.path.join(os.fsencode(d), raw), "wb") as fh:
            fh.write(raw)


def deep_tree(d: Path) -> None:
    path = d
    for level in range(40):
        path = path / f"level{level:02d}"
        write(path / "f", str(level))


def big_file(d: Path) -> None:
    write(d / "big.bin", os.urandom(48 << 20))
    write(d / "small", "s")


def mtimes(d: Path) -> None:
    write(d / "old", "o")
    os.utime(d / "old", ns=(1_000_000_123, 946_684_800_123_456_789))
    write(d / "future", "f")
    os.utime(d / "future", ns=(1, 4_102_444_800_999_999_999))


def hard_links(d: Path) -> None:
    write(d / "a/original", "shared data")
    os.link(d / "a/original", d / "b-link")
    os.link(d / "a/original", d / "a/z-link")


def dockerignore_rules(d: Path) -> None:
    for name in ("keep.txt", "drop.log", "sub/drop.log", "sub/keep.log", "node_modules/x/y.js",
                 "build/out", "build/keep/me", "docs/README.md", "docs/other.md", "#hash",
                 "root-only", "nested/root-only", "temp1", "temp22", "q/a1", "q/abc"):
        write(d / name, name)
    write(d / ".dockerignore", "\n".join([
        "# comment line", "*.log", "!sub/keep.log", "**/node_modules", "/build",
        "!build/keep", "docs/*", "!docs/README.md", "\\#hash", "/root-only", "temp?",
        "q/[a-b]1", "./sub/../ignored-by-clean", "  ", "**/*.tmp",
    ]) + "\n")


def dockerignore_excludes_dockerfile(d: Path) -> None:
    write(d / "a", "a")
    write(d / "b/c", "c")
    write(d / ".dockerignore", "Dockerfile\n.dockerignore\nb\n!b/c\n")


def dockerfile_outside(d: Path) -> None:
    write(d / "app/main.txt", "m")
    write(d / "other", "o")


def dockerfile_specific_ignore(d: Path) -> None:
    write(d / "keep", "k")
    write(d / "skip-by-specific", "s")
    write(d / "skip-by-generic", "g")
    write(d / ".dockerignore", "skip-by-generic\n")
    write(d.parent / "df/Dockerfile.dockerignore", "skip-by-specific\n")


def copy_paths(d: Path) -> None:
    write(d / "src/a.go", "package a")
    write(d / "src/vendor/v.go", "package v")
    write(d / "assets/img.png", os.urandom(2000))
    write(d / "unused/big", os.urandom(100_000))
    (d / "linked").symlink_to("src")


def build_args_case(d: Path) -> None:
    write(d / "one", "1")
    write(d / "two", "2")


def multistage(d: Path) -> None:
    write(d / "stage1/file", "s1")
    write(d / "stage2/file", "s2")


CASES = [
    Case("basic", basic),
    Case("symlinks", symlinks),
    Case("empty-dirs", empty_dirs),
    Case("modes", modes),
    Case("unicode", unicode_names),
    Case("non-utf8", non_utf8_names),
    Case("deep-tree", deep_tree),
    Case("big-file", big_file),
    Case("mtimes", mtimes),
    Case("hard-links", hard_links),
    Case("dockerignore", dockerignore_rules),
    Case("dockerignore-self", dockerignore_excludes_dockerfile),
    Case("dockerfile-outside", dockerfile_outside, dockerfile_path="df/Dockerfile"),
    Case("dockerfile-specific-ignore", dockerfile_specific_ignore,
         dockerfile_path="df/Dockerfile"),
    Case("copy-paths", copy_paths,
         # COPY into an existing or new directory stamps it with the daemon's clock,
         # which differs between runs: copy whole trees and top-level files only.
         "FROM scratch\nCOPY src/a.go /\nCOPY linked/ /linked/\nCOPY assets /assets\n"),
    Case("build-args", build_args_case,
         "FROM scratch\nARG WHICH=one\nARG LABEL=none\nLABEL x=$LABEL\nCOPY $WHICH /picked\n",
         build_args={"WHICH": "two", "LABEL": "set"}),
    Case("target", multistage,
         "FROM scratch AS first\nCOPY stage1 /s\n\nFROM scratch AS second\nCOPY stage2 /s\n",
         target="first"),
    Case("multistage-copy-from", multistage,
         "FROM busybox AS base\nCOPY stage1 /data\n\n"
         "FROM scratch\nCOPY --from=base /data /from-base\nCOPY stage2 /own\n"),
]


def _buildctl(testbed: Testbed, case: Case, ctx: Path, df: Path, out: Path) -> str:
    meta = out.with_suffix(".json")
    cmd = [testbed.buildctl, "--addr", testbed.buildkit_host, "build",
           "--frontend", "dockerfile.v0", "--local", f"context={ctx}",
           "--local", f"dockerfile={df.parent}", "--opt", f"filename={df.name}",
           "--opt", f"build-arg:SOURCE_DATE_EPOCH={EPOCH}", "--no-cache",
           "--output", f"type=oci,dest={out},oci-mediatypes=true",
           "--metadata-file", str(meta), "--progress", "plain"]
    for key, value in case.build_args.items():
        cmd += ["--opt", f"build-arg:{key}={value}"]
    if case.target:
        cmd += ["--opt", f"target={case.target}"]
    done = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return str(json.loads(meta.read_text())["containerimage.digest"])


def _ours(testbed: Testbed, case: Case, ctx: Path, df: Path, out: Path) -> str:
    meta = out.with_suffix(".json")
    args = [str(ctx), "-f", str(df), "--no-cache", "--buildkit-host", testbed.buildkit_host,
            "--output", f"type=oci,dest={out}", "--metadata-file", str(meta),
            "--progress", "plain"]
    for key, value in case.build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    if case.target:
        args += ["--target", case.target]
    run = run_cli(*args, env={"SOURCE_DATE_EPOCH": EPOCH})
    assert run.code == 0, run.stderr[-3000:]
    digest = str(json.loads(meta.read_text())["containerimage.digest"])
    assert run.stdout.strip() == digest
    return digest


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_digest_as_buildctl(case: Case, testbed: Testbed, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    df = tmp_path / case.dockerfile_path
    write(df, case.dockerfile)
    case.make(ctx)
    theirs = _buildctl(testbed, case, ctx, df, tmp_path / "buildctl.tar")
    ours = _ours(testbed, case, ctx, df, tmp_path / "ours.tar")
    assert ours == theirs
