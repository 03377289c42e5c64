"""imagetools' pure parts: the listing and the --format templates."""

from __future__ import annotations

import hashlib
import json

import pytest

from kubectl_build.errors import UsageError
from kubectl_build.registry.client import Manifest
from kubectl_build.registry.imagetools import Inspected, check_template, render_template, render_text

INDEX = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "a" * 64, "size": 1,
     "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "b" * 64, "size": 1,
     "platform": {"os": "unknown", "architecture": "unknown"},
     "annotations": {"vnd.docker.reference.type": "attestation-manifest",
                     "vnd.docker.reference.digest": "sha256:" + "a" * 64}}]}


def _found(name: str = "reg.io/app:1") -> Inspected:
    body = json.dumps(INDEX).encode()
    manifest = Manifest(INDEX["mediaType"], body, "sha256:" + hashlib.sha256(body).hexdigest())
    return Inspected(name, manifest, {"linux/arm/v7": {"os": "linux", "architecture": "arm"}})


def test_the_listing_names_each_entry_with_its_platform_and_annotations() -> None:
    lines = render_text(_found()).splitlines()
    assert lines[0] == "Name:      reg.io/app:1"
    assert lines[4:8] == ["Manifests:", f"  Name:        reg.io/app@sha256:{'a' * 64}",
                          "  MediaType:   application/vnd.oci.image.manifest.v1+json",
                          "  Platform:    linux/arm/v7"]
    assert "    vnd.docker.reference.type:   attestation-manifest" in lines


def test_templates_take_fields_and_json() -> None:
    found = _found()
    assert render_template(found, "{{.Name}} is {{.Manifest.MediaType}}") == \
        "reg.io/app:1 is application/vnd.oci.image.index.v1+json"
    assert json.loads(render_template(found, "{{json .Manifest}}")) == INDEX
    assert json.loads(render_template(found, "{{json .Image}}")) == {"os": "linux", "architecture": "arm"}


@pytest.mark.parametrize(("template", "why"), [("{{.Nope}}", "unknown field .Nope"), ("{{.Name", "unclosed")])
def test_bad_templates_are_refused_before_any_request(template: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        check_template(template)
