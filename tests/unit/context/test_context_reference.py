"""The worked cases of the fsutil sender reference, as golden tests.

Each case was run through the real Go sender; the walk must list the same
entries, in the same order, with the same types and link names.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from kubectl_build.context.walk import MODE_TYPE, WalkFilter, walk
from kubectl_build.errors import ContextError

from .tree import build_tree, describe, is_socket

_GOLDEN = Path(__file__).parent / "golden" / "reference_cases.json"
_CASES: list[dict[str, Any]] = json.loads(_GOLDEN.read_text(encoding="utf-8"))["cases"]


def _filter(case: dict[str, Any]) -> WalkFilter:
    return WalkFilter(
        include_patterns=tuple(case.get("include", ())),
        exclude_patterns=tuple(case.get("exclude", ())),
        follow_paths=tuple(case.get("follow", ())),
    )


@pytest.mark.parametrize("case", _CASES, ids=[c["id"] for c in _CASES])
def test_reference_case(case: dict[str, Any], tmp_path: Path) -> None:
    build_tree(tmp_path, case["tree"])

    entries = list(walk(tmp_path, _filter(case)))

    assert [describe(e) for e in entries] == case["expected"]
    empty = set(case.get("empty_data", ()))
    for entry in entries:
        name = entry.path.decode()
        if entry.mode & MODE_TYPE == 0 and not entry.linkname:
            assert (entry.source == b"") == (name in empty), name
            if entry.source:
                assert entry.source == os.fsencode(tmp_path.resolve() / name)


def test_case_24_hardlink_keeps_real_size(tmp_path: Path) -> None:
    build_tree(tmp_path, ["a", "b => a", "c => a", "d"])

    entries = {e.path: e for e in walk(tmp_path, WalkFilter(exclude_patterns=("a",)))}

    assert entries[b"b"].linkname == b""
    assert entries[b"c"].linkname == b"b"
    assert entries[b"c"].size == entries[b"b"].size == len(b"data:a")


def test_case_25_socket_is_a_plain_file(tmp_path: Path) -> None:
    build_tree(tmp_path, ["s |socket"])
    assert is_socket(tmp_path / "s")

    (entry,) = walk(tmp_path, WalkFilter())

    assert entry.mode == (tmp_path / "s").lstat().st_mode & 0o777
    assert entry.source == b""


def _deny_scandir(monkeypatch: pytest.MonkeyPatch, denied: bytes) -> None:
    real = os.scandir

    def scandir(path: bytes) -> Any:
        if path.endswith(denied):
            raise PermissionError(13, "Permission denied", path)
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_case_27_unreadable_dir_descended_for_exception_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_tree(tmp_path, ["foo/bar/baz"])
    _deny_scandir(monkeypatch, b"/foo/bar")
    flt = WalkFilter(exclude_patterns=("**/bar", "!foo/bar/baz"))

    sent = []
    with pytest.raises(ContextError, match="foo/bar"):
        for entry in walk(tmp_path, flt):
            sent.append(entry.path)

    assert sent == [b"foo"]


def test_case_27_unreadable_dir_pruned_is_fine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_tree(tmp_path, ["foo/bar/baz"])
    _deny_scandir(monkeypatch, b"/foo/bar")

    entries = list(walk(tmp_path, WalkFilter(exclude_patterns=("**/bar",))))

    assert [e.path for e in entries] == [b"foo"]


_AS_NOBODY = """
import sys
from kubectl_build.context.walk import WalkFilter, walk
from kubectl_build.errors import ContextError
flt = WalkFilter(exclude_patterns=tuple(sys.argv[2:]))
try:
    print([e.path.decode() for e in walk(sys.argv[1], flt)])
except ContextError as err:
    print("ContextError", err.message)
"""


def _nobody_copy() -> Path:
    """The context package and the host layer under it (stdlib-only), where uid 65534 reads them."""
    source = Path(__file__).resolve().parents[3] / "kubectl_build"
    target = Path(tempfile.mkdtemp())
    target.chmod(0o755)
    package = target / "kubectl_build"
    for subpackage in ("context", "host"):
        shutil.copytree(source / subpackage, package / subpackage,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("__init__.py", "errors.py"):
        shutil.copy(source / name, package / name)
    for path in [target, *target.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def _walk_as_nobody(root: Path, *patterns: str) -> str:
    """Run a walk as uid 65534, since root reads any directory."""
    package_root = _nobody_copy()
    try:
        proc = _run_as_nobody(root, package_root, patterns)
    finally:
        shutil.rmtree(package_root, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _run_as_nobody(
    root: Path, package_root: Path, patterns: tuple[str, ...]
) -> subprocess.CompletedProcess[str]:
    # The test venv may live in a private home directory: use an interpreter that
    # every user can run (the system one, else this one).
    python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3")
                   if os.access(p, os.X_OK)), sys.executable)
    return subprocess.run(
        [python, "-c", _AS_NOBODY, str(root), *patterns],
        capture_output=True,
        text=True,
        cwd="/",
        env={"PYTHONPATH": str(package_root)},
        user=65534,
        group=65534,
        extra_groups=[],
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_case_27_real_permissions() -> None:
    root = Path(tempfile.mkdtemp())
    try:
        root.chmod(0o755)
        build_tree(root, ["foo/bar/baz"])
        (root / "foo" / "bar").chmod(0)

        failed = _walk_as_nobody(root, "**/bar", "!foo/bar/baz")
        pruned = _walk_as_nobody(root, "**/bar")
    finally:
        (root / "foo" / "bar").chmod(0o755)
        shutil.rmtree(root)

    assert failed.startswith("ContextError") and "Permission denied" in failed
    assert pruned == "['foo']"
