"""``--build-context`` values: names in their familiar form, values classified as buildx does."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubectl_build.errors import ContextError, UsageError
from kubectl_build.options.contexts import (
    NamedContext,
    familiar_name,
    parse_build_context,
    parse_oci_layout,
    unique_names,
)

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(("name", "familiar"), [
    ("alpine", "alpine"), ("alpine:latest", "alpine"), ("docker.io/library/alpine:3.20", "alpine:3.20"),
    ("docker.io/foo/bar", "foo/bar"), ("library/alpine", "alpine"),
    ("docker.io/library/foo/bar", "library/foo/bar"), ("reg.io:5000/app:latest", "reg.io:5000/app"),
    (f"alpine@{DIGEST}", f"alpine@{DIGEST}"),
])
def test_names_take_their_familiar_form(name: str, familiar: str) -> None:
    assert familiar_name(name) == familiar


@pytest.mark.parametrize(("path", "parts"), [
    ("/l", ("/l", "latest", "")), ("/l:v1", ("/l", "v1", "")), (f"/l@{DIGEST}", ("/l", "latest", DIGEST)),
    (f"/l:v1@{DIGEST}", ("/l", "v1", DIGEST)), ("C:/l", ("C:/l", "latest", "")),
    ("/a@b/l", ("/a@b/l", "latest", "")),
])
def test_oci_layout_paths_split_like_buildx(path: str, parts: tuple[str, str, str]) -> None:
    assert parse_oci_layout(path) == parts


def test_values_are_classified(tmp_path: Path) -> None:
    assert parse_build_context(f"src={tmp_path}") == NamedContext("src", "local", str(tmp_path))
    assert parse_build_context("context=.").local_name == "_context"
    assert parse_build_context("b=docker-image://busybox:1.36") == \
        NamedContext("b", "passed", "docker-image://busybox:1.36")
    assert parse_build_context("g=https://github.com/a/b.git#main").kind == "passed"
    assert parse_build_context("t=target:base").kind == "passed"
    assert parse_build_context(f"o=oci-layout://{tmp_path}:v2") == \
        NamedContext("o", "oci-layout", str(tmp_path), "v2", "")


def test_the_last_value_of_a_name_wins(tmp_path: Path) -> None:
    contexts = (parse_build_context("a=docker-image://x"), parse_build_context(f"a={tmp_path}"))
    assert unique_names(contexts) == (NamedContext("a", "local", str(tmp_path)),)


@pytest.mark.parametrize(("value", "message"), [
    ("noequals", 'invalid --build-context "noequals": expected NAME=VALUE'),
    ("=x", 'invalid --build-context "=x": expected NAME=VALUE'),
    ("Upper=x", 'invalid --build-context name "Upper": not an image reference'),
])
def test_bad_values_are_usage_errors(value: str, message: str) -> None:
    with pytest.raises(UsageError) as failed:
        parse_build_context(value)
    assert failed.value.message == message


def test_a_missing_or_file_directory_is_a_context_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    cases = ((tmp_path / "none", "does not exist"), (tmp_path / "f", "is a file, not a directory"))
    for target, why in cases:
        with pytest.raises(ContextError) as failed:
            parse_build_context(f"x={target}")
        assert failed.value.message == f'build context "x": {target} {why}'
