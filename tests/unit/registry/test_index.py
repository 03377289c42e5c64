"""Unit tests for merging per-builder pushes into one index, and the registry helpers."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from kubectl_build.registry.client import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    RegistryClient,
    fetch_pushed,
    push_index,
)
from kubectl_build.registry.index import (
    IndexMergeError,
    by_digest_attrs,
    config_digest,
    config_platform,
    merge_index,
    platform_key,
    push_targets,
)

GOLDEN = Path(__file__).parent / "golden"
ATTESTATION = {"vnd.docker.reference.type": "attestation-manifest"}
UNKNOWN = {"architecture": "unknown", "os": "unknown"}


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _doc(media_type: str, doc: dict[str, Any]) -> Manifest:
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type, **doc}, indent=2).encode()
    return Manifest(media_type, body, _digest(body))


def _config(**platform: str) -> bytes:
    return json.dumps({**platform, "rootfs": {"type": "layers", "diff_ids": []}}).encode()


def _image(media_type: str, config: bytes, name: str) -> Manifest:
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "digest": _digest(name.encode()), "size": len(name)}
    return _doc(media_type, {"config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                        "digest": _digest(config), "size": len(config)},
                             "layers": [layer]})


def _descriptor(manifest: Manifest, platform: dict[str, str],
                annotations: dict[str, str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"mediaType": manifest.media_type, "digest": manifest.digest,
                             "size": len(manifest.body), "platform": platform}
    if annotations:
        entry["annotations"] = annotations
    return entry


def _attested_index(platforms: list[dict[str, str]]) -> Manifest:
    """An OCI index as BuildKit pushes it: images, then one attestation per image."""
    images = [_image(OCI_MANIFEST, _config(**p), json.dumps(p)) for p in platforms]
    attestations = [_image(OCI_MANIFEST, b"{}", "att" + m.digest) for m in images]
    return _doc(OCI_INDEX, {"manifests": [
        *(_descriptor(m, p) for m, p in zip(images, platforms, strict=True)),
        *(_descriptor(a, UNKNOWN, {**ATTESTATION, "vnd.docker.reference.digest": m.digest})
          for a, m in zip(attestations, images, strict=True))]})


def _check_golden(merged: Manifest, name: str) -> dict[str, Any]:
    assert merged.body == (GOLDEN / name).read_bytes()
    assert merged.digest == _digest(merged.body)
    doc: dict[str, Any] = json.loads(merged.body)
    assert doc["mediaType"] == merged.media_type
    return doc


AMD64 = {"architecture": "amd64", "os": "linux"}
ARM64 = {"architecture": "arm64", "os": "linux"}
ARMV7 = {"architecture": "arm", "os": "linux", "variant": "v7"}


def test_oci_indexes_merge_with_attestations_kept() -> None:
    first, second = _attested_index([AMD64]), _attested_index([ARM64, ARMV7])
    doc = _check_golden(merge_index([first, second], {}), "oci_two_builders.json")
    assert merge_index([first, second], {}).media_type == OCI_INDEX
    entries = doc["manifests"]
    assert [platform_key(e["platform"]) for e in entries] == [
        "linux/amd64", "linux/arm64", "linux/arm/v7", "unknown/unknown", "unknown/unknown",
        "unknown/unknown"]
    images = [e["digest"] for e in entries[:3]]
    assert [e["annotations"]["vnd.docker.reference.digest"] for e in entries[3:]] == images


def test_docker_manifests_merge_into_a_docker_list_without_annotations() -> None:
    amd_config = _config(architecture="amd64", os="linux")
    single = _image(DOCKER_MANIFEST, amd_config, "amd64")
    arm = _image(DOCKER_MANIFEST, _config(architecture="arm64", os="linux", variant="v8"), "arm64")
    listed = _doc(DOCKER_LIST, {"manifests": [
        _descriptor(arm, {"architecture": "arm64", "os": "linux", "variant": "v8"}, {"x": "y"})]})
    merged = merge_index([single, listed], {_digest(amd_config): amd_config})
    assert merged.media_type == DOCKER_LIST
    doc = _check_golden(merged, "docker_single_and_list.json")
    assert all("annotations" not in e for e in doc["manifests"])
    assert doc["manifests"][0] == {"mediaType": DOCKER_MANIFEST, "digest": single.digest,
                                   "size": len(single.body), "platform": AMD64}


def test_any_oci_child_makes_an_oci_index_and_config_gives_windows_version() -> None:
    win_config = _config(architecture="amd64", os="windows", **{"os.version": "10.0.20348.2700"})
    windows = _image(OCI_MANIFEST, win_config, "windows")
    linux = _image(DOCKER_MANIFEST, _config(architecture="amd64", os="linux"), "linux")
    listed = _doc(DOCKER_LIST, {"manifests": [_descriptor(linux, AMD64)]})
    merged = merge_index([listed, windows], {_digest(win_config): win_config})
    assert merged.media_type == OCI_INDEX
    doc = _check_golden(merged, "mixed_oci_and_docker.json")
    assert doc["manifests"][1]["platform"] == {"architecture": "amd64", "os": "windows",
                                               "os.version": "10.0.20348.2700"}


def test_duplicate_platforms_are_rejected() -> None:
    first = _attested_index([ARM64])
    second = _attested_index([{"architecture": "arm64", "os": "linux", "variant": "v8"}])
    with pytest.raises(IndexMergeError, match="platform linux/arm64 was pushed twice") as err:
        merge_index([first, second], {})
    assert err.value.hint == "each platform must be built by exactly one builder"


def test_same_manifest_twice_is_one_entry() -> None:
    index = _attested_index([AMD64])
    assert merge_index([index, index], {}).body == merge_index([index], {}).body


def test_attestation_for_a_missing_image_is_an_error() -> None:
    image, attestation = _image(OCI_MANIFEST, _config(**AMD64), "x"), _image(OCI_MANIFEST, b"{}", "a")
    index = _doc(OCI_INDEX, {"manifests": [
        _descriptor(image, AMD64),
        _descriptor(attestation, UNKNOWN,
                    {**ATTESTATION, "vnd.docker.reference.digest": "sha256:" + "0" * 64})]})
    with pytest.raises(IndexMergeError, match="not in the merged index"):
        merge_index([index], {})


@pytest.mark.parametrize(("manifest", "configs", "message"), [
    (Manifest("text/plain", b"{}", "sha256:1"), {}, "not an image manifest or index"),
    (_image(OCI_MANIFEST, b"{}", "x"), {}, "was not read"),
    (_doc(OCI_INDEX, {"manifests": [{"mediaType": OCI_MANIFEST, "digest": "sha256:2", "size": 1}]}), {},
     "has no platform"),
    (_doc(OCI_INDEX, {"manifests": [{"digest": "sha256:2"}]}), {}, "has no mediaType"),
    (_doc(OCI_MANIFEST, {"layers": []}), {}, "has no config digest"),
])
def test_malformed_inputs(manifest: Manifest, configs: dict[str, bytes], message: str) -> None:
    with pytest.raises(IndexMergeError, match=message):
        merge_index([manifest], configs)


def test_config_platform_errors_and_digest() -> None:
    with pytest.raises(IndexMergeError, match="not JSON"):
        config_platform(b"nope")
    with pytest.raises(IndexMergeError, match="no os/architecture"):
        config_platform(b'{"os": "linux"}')
    image = _image(OCI_MANIFEST, b"{}", "x")
    assert config_digest(image) == _digest(b"{}")
    assert config_digest(_attested_index([AMD64])) is None


class _FakeRegistry(RegistryClient):
    """Serves stored manifests and blobs, records PUTs."""

    def __init__(self, manifests: list[Manifest], blobs: dict[str, bytes]) -> None:
        super().__init__("registry.example.com")
        self.manifests = {m.digest: m for m in manifests}
        self.blobs = blobs
        self.puts: list[tuple[str, str, Manifest]] = []

    def manifest(self, repository: str, reference: str) -> Manifest:
        return self.manifests[reference]

    def blob(self, repository: str, digest: str) -> bytes:
        return self.blobs[digest]

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        self.puts.append((repository, reference, manifest))
        return manifest.digest


def test_fetch_pushed_reads_configs_of_single_manifests_then_push_under_every_tag() -> None:
    config = _config(**ARM64)
    single, index = _image(OCI_MANIFEST, config, "arm"), _attested_index([AMD64])
    registry = _FakeRegistry([single, index], {_digest(config): config})
    manifests, configs = fetch_pushed(registry, "team/app", [index.digest, single.digest])
    assert manifests == (index, single) and configs == {_digest(config): config}
    merged = merge_index(manifests, configs)
    assert push_index(registry, "team/app", ["1.0", "latest"], merged) == merged.digest
    assert [(r, t) for r, t, _ in registry.puts] == [("team/app", "1.0"), ("team/app", "latest")]
    push_index(registry, "team/app", [], merged)
    assert registry.puts[-1][1] == merged.digest


def test_fetch_pushed_checks_digests() -> None:
    index = _attested_index([AMD64])
    registry = _FakeRegistry([index], {})
    registry.manifests["sha256:other"] = index
    with pytest.raises(Exception, match="came back with digest"):
        fetch_pushed(registry, "team/app", ["sha256:other"])


def test_push_targets_group_tags_by_repository() -> None:
    targets = push_targets(["127.0.0.1:5443/team/app:1.0", "alpine:3", "127.0.0.1:5443/team/app",
                            "127.0.0.1:5443/team/app@sha256:" + "a" * 64, "127.0.0.1:5443/team/app:1.0"])
    assert [(t.name, t.repository, t.tags) for t in targets] == [
        ("127.0.0.1:5443/team/app", "team/app", ("1.0", "latest")),
        ("docker.io/library/alpine", "library/alpine", ("3",))]


def test_by_digest_attrs_strip_tags_and_push_by_digest() -> None:
    attrs = {"name": "r.example.com/a:1, r.example.com/a:2,r.example.com/b", "oci-mediatypes": "true"}
    assert by_digest_attrs(attrs) == {"name": "r.example.com/a,r.example.com/b",
                                      "oci-mediatypes": "true", "push-by-digest": "true",
                                      "push": "true"}


def test_annotations_go_on_the_merged_index_and_its_image_entries() -> None:
    from kubectl_build.options.annotations import for_index, parse_annotations

    first, second = _attested_index([AMD64]), _attested_index([ARM64, ARMV7])
    wanted = parse_annotations(["index:org.opencontainers.image.title=app", "manifest:ignored=here",
                                "manifest-descriptor:team=core",
                                "manifest-descriptor[linux/arm64]:arch.note=arm"])
    doc = json.loads(merge_index([first, second], {}, for_index(wanted)).body)
    assert doc["annotations"] == {"org.opencontainers.image.title": "app"}
    entries = doc["manifests"]
    assert [e.get("annotations") for e in entries[:3]] == [
        {"team": "core"}, {"arch.note": "arm", "team": "core"}, {"team": "core"}]
    assert all("team" not in e["annotations"] for e in entries[3:])  # attestations untouched
    assert "annotations" not in json.loads(merge_index([first, second], {}).body)
