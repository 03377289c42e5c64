"""Golden data recorded from the real Go code (fsutil, patternmatcher, ignorefile).

The files in golden/ were produced by running Go's sender pipeline, matcher and
ignore-file parser on random inputs; these tests replay them against ours.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from kubectl_build.context._gosyntax import PatternSyntaxError
from kubectl_build.context.dockerignore import read_ignore_file
from kubectl_build.context.patterns import PatternMatcher
from kubectl_build.context.walk import MODE_TYPE, WalkFilter, walk
from kubectl_build.errors import ContextError

from .tree import build_tree, describe

_GOLDEN = Path(__file__).parent / "golden"


def _load(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((_GOLDEN / name).read_text("utf-8"))["cases"]
    return cases


_WALKS = _load("go_walk_cases.json")
_PATTERNS = _load("go_pattern_cases.json")
_IGNORES = _load("go_ignore_cases.json")


@pytest.mark.parametrize("case", _WALKS, ids=[c["id"] for c in _WALKS])
def test_walk_matches_go(case: dict[str, Any], tmp_path: Path) -> None:
    build_tree(tmp_path, case["tree"])
    flt = WalkFilter(
        include_patterns=tuple(case.get("include", ())),
        exclude_patterns=tuple(case.get("exclude", ())),
        follow_paths=tuple(case.get("follow", ())),
    )

    entries = list(walk(tmp_path, flt))

    assert [describe(e) for e in entries] == case["expected"]
    empty = [
        e.path.decode()
        for e in entries
        if e.mode & MODE_TYPE == 0 and not e.linkname and not e.source
    ]
    assert empty == case.get("empty_data", [])


def _outcome(matcher: PatternMatcher, path: str) -> str:
    try:
        or_parent = str(matcher.matches_or_parent_matches(path)).lower()
    except PatternSyntaxError:
        or_parent = "error"
    try:
        parts = path.split("/")
        info = None
        for i in range(len(parts)):
            hit, info = matcher.matches_using_parent_results("/".join(parts[: i + 1]), info)
        walker = str(hit).lower()
    except PatternSyntaxError:
        walker = "error"
    return f"{or_parent} {walker}"


@pytest.mark.parametrize("case", _PATTERNS, ids=[str(i) for i in range(len(_PATTERNS))])
def test_patterns_match_go(case: dict[str, Any]) -> None:
    if case.get("new_error"):
        with pytest.raises(PatternSyntaxError):
            PatternMatcher(case["patterns"])
        return
    matcher = PatternMatcher(case["patterns"])
    got = {path: _outcome(matcher, path) for path in case["results"]}
    assert got == case["results"]


@pytest.mark.parametrize("case", _IGNORES, ids=[str(i) for i in range(len(_IGNORES))])
def test_ignore_file_matches_go(case: dict[str, Any]) -> None:
    data = base64.b64decode(case["data_b64"])
    if "!" in case["patterns"]:
        # Go keeps a bare "!" and fails later in patternmatcher.New; we fail early.
        with pytest.raises(ContextError, match="illegal exclusion"):
            read_ignore_file(data)
        return
    assert read_ignore_file(data) == case["patterns"]
