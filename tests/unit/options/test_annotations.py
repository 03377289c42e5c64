"""``--annotation``: buildx's syntax, BuildKit's exporter attribute names."""

from __future__ import annotations

import pytest

from kubectl_build.errors import UsageError
from kubectl_build.options.annotations import exporter_attrs, parse_annotation, parse_annotations


@pytest.mark.parametrize(("value", "attr"), [
    ("org.opencontainers.image.title=app", "annotation.org.opencontainers.image.title"),
    ("manifest:k=v", "annotation-manifest.k"), ("index:k=v", "annotation-index.k"),
    ("manifest-descriptor:k=v", "annotation-manifest-descriptor.k"),
    ("index-descriptor:k=v", "annotation-index-descriptor.k"),
    ("manifest[linux/arm64]:k=v", "annotation-manifest[linux/arm64].k"),
    ("manifest[linux/aarch64]:k=v", "annotation-manifest[linux/arm64].k"),
    ("index[linux/arm64]:k=v", "annotation-index.k"),  # an index has no platform
])
def test_attribute_names(value: str, attr: str) -> None:
    assert [a.attr for a in parse_annotation(value)] == [attr]


def test_several_levels_before_one_key() -> None:
    assert [a.attr for a in parse_annotation("index,manifest[linux/arm64],manifest-descriptor:k=v")] == [
        "annotation-index.k", "annotation-manifest[linux/arm64].k", "annotation-manifest-descriptor.k"]


def test_values_keep_everything_after_the_first_equals_and_the_last_wins() -> None:
    assert exporter_attrs(parse_annotations(["k=a=b", "index:k=1", "k=c"])) == {
        "annotation.k": "c", "annotation-index.k": "1"}


@pytest.mark.parametrize(("value", "why"), [
    ("novalue", "expected KEY=VALUE"), ("layer:k=v", 'unknown type "layer"'),
    ("manifest[linux/zz]:k=v", 'invalid platform "linux/zz"'), ("=v", "expected [TYPE[PLATFORM]:]KEY=VALUE"),
    ("index,:k=v", "expected [TYPE[PLATFORM]:]KEY=VALUE"), ("index,layer:k=v", 'unknown type "layer"'),
    (":k=v", "expected [TYPE[PLATFORM]:]KEY=VALUE"),
])
def test_bad_annotations(value: str, why: str) -> None:
    with pytest.raises(UsageError) as failed:
        parse_annotation(value)
    assert failed.value.message == f'invalid --annotation "{value}": {why}'
