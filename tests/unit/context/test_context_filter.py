"""Filtering behaviour beyond the reference cases: pruning, followpaths, speed."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubectl_build.context.walk import WalkFilter, walk

from .tree import build_tree, describe


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Record every directory the walk lists, relative to the test's tmp dir."""
    seen: list[str] = []
    real = os.scandir

    def scandir(path: bytes) -> Any:
        seen.append(os.fsdecode(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    yield seen


def _listed(root: Path, seen: list[str]) -> list[str]:
    base = str(root.resolve())
    return sorted(p[len(base) :].lstrip("/") or "." for p in seen if p.startswith(base))


TREE = ["node_modules/keep/k", "node_modules/other/o.go", "src/app/a", "src/lib/l", "docs/d"]


@pytest.mark.parametrize(
    ("flt", "expected_scans"),
    [
        (WalkFilter(exclude_patterns=("node_modules",)),
         [".", "docs", "src", "src/app", "src/lib"]),
        (WalkFilter(exclude_patterns=("node_modules", "!node_modules/keep")),
         [".", "docs", "node_modules", "node_modules/keep", "src", "src/app", "src/lib"]),
        (WalkFilter(exclude_patterns=("node_modules", "!**/*.go")),
         [".", "docs", "node_modules", "node_modules/keep", "node_modules/other", "src",
          "src/app", "src/lib"]),
        (WalkFilter(include_patterns=("src/app",)), [".", "src", "src/app"]),
        (WalkFilter(include_patterns=("src/app/**",)), [".", "src", "src/app"]),
        (WalkFilter(include_patterns=("src/*/a",)),
         [".", "docs", "node_modules", "node_modules/keep", "node_modules/other", "src",
          "src/app", "src/lib"]),
    ],
)
def test_pruned_directories_are_never_read(
    tmp_path: Path, scanned: list[str], flt: WalkFilter, expected_scans: list[str]
) -> None:
    build_tree(tmp_path, TREE)
    list(walk(tmp_path, flt))
    assert _listed(tmp_path, scanned) == expected_scans


FOLLOW_CASES: list[tuple[str, list[str], dict[str, list[str]], list[str]]] = [
    ("cycle", ["a -> b", "b -> a", "c"], {"follow": ["a"]}, ["a -> b", "b -> a"]),
    ("through-dir-link", ["link -> realdir", "realdir/x", "realdir/y", "z"],
     {"follow": ["link/x"]}, ["link -> realdir", "realdir/", "realdir/x"]),
    ("exclude-beats-follow", ["link -> realdir", "realdir/x"],
     {"follow": ["link/x"], "exclude": ["realdir"]}, ["link -> realdir"]),
    ("absolute-target-is-context-relative", ["abs -> /etc", "etc/passwd", "etc/other"],
     {"follow": ["abs/passwd"]}, ["abs -> /etc", "etc/", "etc/passwd"]),
    ("escaping-target-is-clamped", ["d/up -> ../../../x", "x", "y"],
     {"follow": ["d/up"]}, ["d/", "d/up -> ../../../x", "x"]),
    ("missing-is-harmless", ["a", "b"], {"follow": ["missing", "a"]}, ["a"]),
    ("dot-sends-everything", ["a", "b/c"], {"follow": ["."]}, ["a", "b/", "b/c"]),
    ("top-level-wildcard", ["a.txt", "b.md", "d/c.txt"], {"follow": ["*.txt"]}, ["a.txt"]),
    ("results-are-patterns", ["a1", "a[1]"], {"follow": ["a[1]"]}, ["a1"]),
    ("escaped-wildcard", ["a*", "ab"], {"follow": ["a\\*"]}, ["a*"]),
    ("with-includes", ["Dockerfile", "src/x", "other"],
     {"follow": ["Dockerfile"], "include": ["src"]}, ["Dockerfile", "src/", "src/x"]),
]


@pytest.mark.parametrize(
    ("tree", "opts", "expected"),
    [c[1:] for c in FOLLOW_CASES],
    ids=[c[0] for c in FOLLOW_CASES],
)
def test_followpaths(
    tmp_path: Path, tree: list[str], opts: dict[str, list[str]], expected: list[str]
) -> None:
    build_tree(tmp_path, tree)
    flt = WalkFilter(
        include_patterns=tuple(opts.get("include", ())),
        exclude_patterns=tuple(opts.get("exclude", ())),
        follow_paths=tuple(opts.get("follow", ())),
    )
    assert [describe(e) for e in walk(tmp_path, flt)] == expected


def test_open_check_uses_or_parent_semantics_for_includes(tmp_path: Path) -> None:
    # The walker includes d/x ("!d" was skipped at d, so it does not carry over),
    # but MatchesOrParentMatches, which guards reading the data, rejects it.
    build_tree(tmp_path, ["d/x", "d/y"])
    entries = list(walk(tmp_path, WalkFilter(include_patterns=("d/x", "!d"))))
    assert [describe(e) for e in entries] == ["d/", "d/x"]
    assert entries[1].source == b""


def test_open_check_allows_plain_includes(tmp_path: Path) -> None:
    build_tree(tmp_path, ["d/x", "e"])
    entries = list(walk(tmp_path, WalkFilter(include_patterns=("d",))))
    assert [describe(e) for e in entries] == ["d/", "d/x"]
    assert entries[1].source.endswith(b"/d/x")


def test_five_thousand_files_walk_fast(tmp_path: Path, scanned: list[str]) -> None:
    for d in range(50):
        sub = tmp_path / "src" / f"pkg{d:03d}"
        sub.mkdir(parents=True)
        for f in range(100):
            os.close(os.open(sub / f"f{f}.py", os.O_CREAT | os.O_WRONLY, 0o644))
    for d in range(10):
        sub = tmp_path / "node_modules" / f"m{d}"
        sub.mkdir(parents=True)
        for f in range(100):
            os.close(os.open(sub / f"i{f}.js", os.O_CREAT | os.O_WRONLY, 0o644))
    flt = WalkFilter(exclude_patterns=("node_modules", "**/*.pyc"))

    start = time.perf_counter()
    count = sum(1 for _ in walk(tmp_path, flt))
    elapsed = time.perf_counter() - start

    assert count == 1 + 50 + 50 * 100
    assert not any("node_modules" in p for p in scanned)
    # About 0.05 s here; the bound only catches accidental quadratic behaviour.
    assert elapsed < 2.0, f"walking 5k files took {elapsed:.2f}s"
