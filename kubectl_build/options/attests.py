"""``--attest``, ``--sbom`` and ``--provenance``: attestations, with buildx's syntax and defaults.

``--sbom VALUE`` and ``--provenance VALUE`` are shorthands: ``true``/``false`` enable or
disable, anything else is attributes (``generator=IMAGE``, ``mode=max``), exactly as
buildx's CanonicalizeAttest turns them into ``--attest type=...`` values. One attestation
per type (two are a usage error, as in buildx). Each enabled one becomes the frontend
attribute ``attest:<type>`` with the whole CSV as its value, as buildx sends it; a disabled
one is not sent, but still keeps the default away.

The default is buildx's: ``attest:provenance=mode=min,inline-only=true`` (provenance only
where the exporter can carry it) unless provenance was set or
``BUILDX_NO_DEFAULT_ATTESTATIONS`` is set. It is left out for a build that only loads the
image into the cluster's image store, where buildx drops attestations too.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kubectl_build.errors import UsageError
from kubectl_build.options.specs import GO_FALSE, GO_TRUE

DEFAULT_PROVENANCE = "mode=min,inline-only=true"
_FORMS = "use type=sbom|provenance[,disabled=true][,KEY=VALUE...]"


@dataclass(frozen=True)
class Attest:
    """One requested attestation."""

    type: str
    disabled: bool
    csv: str
    """The value buildx sends as ``attest:<type>``: ``type=...`` first, then the rest by key."""


def canonical(kind: str, value: str) -> str:
    """``--sbom``/``--provenance`` VALUE as the ``--attest`` value buildx makes of it."""
    if value in GO_TRUE or value in GO_FALSE:
        return f"type={kind},disabled={'false' if value in GO_TRUE else 'true'}"
    return f"type={kind},{value}"


def parse_attest(value: str, flag: str = "--attest") -> Attest:
    """One ``--attest`` value."""
    try:
        fields = next(csv.reader([value], skipinitialspace=False))
    except (csv.Error, StopIteration):
        raise UsageError(f'invalid {flag} "{value}": not CSV', _FORMS) from None
    kind, disabled, rest = "", False, {}
    for item in fields:
        key, sep, text = item.partition("=")
        if not sep:
            raise UsageError(f'invalid {flag} "{value}": invalid value {item}', _FORMS)
        name = key.strip().lower()
        if name == "type":
            kind = text
        elif name == "disabled":
            if text not in GO_TRUE and text not in GO_FALSE:
                raise UsageError(f'invalid {flag} "{value}": disabled= must be true or false', _FORMS)
            disabled = text in GO_TRUE
        else:
            rest[key] = text
    if not kind:
        raise UsageError(f'invalid {flag} "{value}": attestation type not specified', _FORMS)
    head = [f"type={kind}"] + (["disabled=true"] if disabled else [])
    # buildx writes the other attributes from a map, sorted by key
    return Attest(kind, disabled, ",".join(head + [f"{k}={v}" for k, v in sorted(rest.items())]))


def parse_attests(attest: Iterable[str], sbom: str | None, provenance: str | None) -> tuple[Attest, ...]:
    """Every attestation asked for, one per type."""
    values = [(v, "--attest") for v in attest]
    values += [(canonical("provenance", provenance), "--provenance")] if provenance else []
    values += [(canonical("sbom", sbom), "--sbom")] if sbom else []
    found: dict[str, Attest] = {}
    for value, flag in values:
        parsed = parse_attest(value, flag)
        if parsed.type in found:
            raise UsageError(f"duplicate attestation field {parsed.type}",
                             "give each attestation type once (--attest, --sbom, --provenance)")
        found[parsed.type] = parsed
    return tuple(found.values())


def frontend_attrs(attests: Iterable[Attest], *, default_provenance: bool,
                   environ: Mapping[str, str]) -> dict[str, str]:
    """The ``attest:<type>`` frontend attributes, buildx's default provenance included."""
    chosen = list(attests)
    attrs = {f"attest:{a.type}": a.csv for a in chosen if not a.disabled}
    if default_provenance and not any(a.type == "provenance" for a in chosen) \
            and not environ.get("BUILDX_NO_DEFAULT_ATTESTATIONS"):
        attrs["attest:provenance"] = DEFAULT_PROVENANCE
    return attrs
