"""index.json of an OCI layout, written the way BuildKit's Go client writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubectl_build.ocilayout.index import Name, go_json, lookup, put, reference_name

MANIFEST = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + "a" * 64, "size": 480}
OTHER = {**MANIFEST, "digest": "sha256:" + "b" * 64}


def test_a_tag_names_the_descriptor_and_writes_the_layout_file(tmp_path: Path) -> None:
    put(tmp_path, MANIFEST, [Name("latest", is_tag=True)])
    assert (tmp_path / "oci-layout").read_bytes() == b'{"imageLayoutVersion":"1.0.0"}'
    assert (tmp_path / "index.json").read_bytes() == (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":'
        b'[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:' + b"a" * 64
        + b'","size":480,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}')


def test_the_same_name_is_replaced_and_others_kept(tmp_path: Path) -> None:
    put(tmp_path, MANIFEST, [Name("latest", is_tag=True)])
    put(tmp_path, MANIFEST, [Name("v1", is_tag=True)])
    put(tmp_path, OTHER, [Name("latest", is_tag=True)])
    index = json.loads((tmp_path / "index.json").read_text())
    names = [(m["digest"][7:8], m["annotations"]["org.opencontainers.image.ref.name"])
             for m in index["manifests"]]
    assert names == [("a", "v1"), ("b", "latest")]
    assert lookup(tmp_path, "latest") == {**OTHER, "annotations": {
        "org.opencontainers.image.ref.name": "latest"}}
    assert lookup(tmp_path, "missing") is None


def test_an_image_name_keeps_the_full_name_and_its_tag_as_ref_name(tmp_path: Path) -> None:
    pinned = "reg.io:5000/ns/app@sha256:" + "c" * 64
    put(tmp_path, MANIFEST, [Name("docker.io/library/app:1.2"), Name(pinned)])
    manifests = json.loads((tmp_path / "index.json").read_text())["manifests"]
    assert [m["annotations"] for m in manifests] == [
        {"io.containerd.image.name": "docker.io/library/app:1.2", "org.opencontainers.image.ref.name": "1.2"},
        {"io.containerd.image.name": "reg.io:5000/ns/app@sha256:" + "c" * 64,
         "org.opencontainers.image.ref.name": "@sha256:" + "c" * 64},
    ]
    assert lookup(tmp_path, "docker.io/library/app:1.2") == manifests[0]  # image name first
    assert lookup(tmp_path, "1.2") == manifests[0]


def test_no_name_appends_the_descriptor_as_it_is(tmp_path: Path) -> None:
    put(tmp_path, MANIFEST, [])
    put(tmp_path, MANIFEST, [])
    assert json.loads((tmp_path / "index.json").read_text())["manifests"] == [MANIFEST, MANIFEST]


@pytest.mark.parametrize(("name", "ref"), [
    ("docker.io/library/app:1", "1"), ("reg:5000/a/b:v@sha256:" + "d" * 64, "v@sha256:" + "d" * 64),
    ("reg/app", ""), ("app:1", ""), ("/odd", "/odd"),
])
def test_reference_names_follow_containerds_parse(name: str, ref: str) -> None:
    assert reference_name(name) == ref


def test_descriptors_are_marshalled_in_gos_field_order_with_its_escaping(tmp_path: Path) -> None:
    scrambled = {"platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                 "annotations": {"z": "<&>", "a": "1"}, "size": 5, "digest": "sha256:" + "e" * 64,
                 "mediaType": "m"}
    put(tmp_path, scrambled, [])
    assert (tmp_path / "index.json").read_bytes().endswith(
        b'{"mediaType":"m","digest":"sha256:' + b"e" * 64 + b'","size":5,"annotations":{"a":"1",'
        b'"z":"\\u003c\\u0026\\u003e"},"platform":{"architecture":"arm64","os":"linux","variant":"v8"}}]}')
    assert go_json({"k": "\u2028é"}) == b'{"k":"\\u2028\xc3\xa9"}'
