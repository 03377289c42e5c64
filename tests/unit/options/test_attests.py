"""``--attest``, ``--sbom``, ``--provenance``: buildx's spellings and its default provenance."""

from __future__ import annotations

import pytest

from kubectl_build.errors import UsageError
from kubectl_build.options.attests import DEFAULT_PROVENANCE, canonical, frontend_attrs, parse_attests


@pytest.mark.parametrize(("kind", "value", "attest"), [
    ("sbom", "true", "type=sbom,disabled=false"), ("sbom", "false", "type=sbom,disabled=true"),
    ("sbom", "generator=reg/gen:1", "type=sbom,generator=reg/gen:1"),
    ("provenance", "mode=max", "type=provenance,mode=max"),
    ("provenance", "1", "type=provenance,disabled=false"),
])
def test_shorthands_are_attest_values(kind: str, value: str, attest: str) -> None:
    assert canonical(kind, value) == attest


def test_frontend_attributes_carry_the_whole_csv_and_disabled_ones_are_not_sent() -> None:
    attests = parse_attests(["type=sbom,scan-stage=true,generator=g"], None, "mode=max")
    assert frontend_attrs(attests, default_provenance=True, environ={}) == {
        "attest:sbom": "type=sbom,generator=g,scan-stage=true",
        "attest:provenance": "type=provenance,mode=max"}
    off = parse_attests([], None, "false")
    assert frontend_attrs(off, default_provenance=True, environ={}) == {}  # and no default


def test_the_default_provenance_is_buildxs() -> None:
    assert frontend_attrs((), default_provenance=True, environ={}) == {
        "attest:provenance": DEFAULT_PROVENANCE}
    assert frontend_attrs((), default_provenance=False, environ={}) == {}
    assert frontend_attrs((), default_provenance=True, environ={"BUILDX_NO_DEFAULT_ATTESTATIONS": "1"}) == {}


@pytest.mark.parametrize(("attest", "sbom", "why"), [
    (["mode=max"], None, 'invalid --attest "mode=max": attestation type not specified'),
    (["type=sbom,bare"], None, 'invalid --attest "type=sbom,bare": invalid value bare'),
    (["type=sbom,disabled=maybe"], None,
     'invalid --attest "type=sbom,disabled=maybe": disabled= must be true or false'),
    (["type=sbom"], "true", "duplicate attestation field sbom"),
])
def test_bad_attestations(attest: list[str], sbom: str | None, why: str) -> None:
    with pytest.raises(UsageError) as failed:
        parse_attests(attest, sbom, None)
    assert failed.value.message == why
