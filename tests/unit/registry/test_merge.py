"""Merging the builders' pushes into one index, and reaching the registry (kubectl_build.registry.merge)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kubectl_build.errors import RegistryError
from kubectl_build.registry.client import OCI_INDEX, Manifest
from kubectl_build.registry.merge import is_loopback, merged_response, pushed_digest, registry_ca
from kubectl_build.run import results


def test_pushed_digest_and_merged_response() -> None:
    assert pushed_digest({"containerimage.digest": "sha256:" + "a" * 64}, "x") == "sha256:" + "a" * 64
    with pytest.raises(RegistryError) as info:
        pushed_digest({}, "builder b (linux/arm64)")
    assert "builder b (linux/arm64) reported no pushed digest" in info.value.message
    index = Manifest(OCI_INDEX, b'{"schemaVersion":2}', "sha256:" + "b" * 64)
    response = merged_response(index, ["r.example.com/a:1", "r.example.com/a:2"])
    assert results.image_id(response) == index.digest
    meta = results.metadata(response)
    assert meta["containerimage.descriptor"] == {"mediaType": OCI_INDEX, "digest": index.digest,
                                                 "size": len(index.body)}
    assert meta["image.name"] == "r.example.com/a:1,r.example.com/a:2"
    assert json.loads(base64.b64decode(response["containerimage.descriptor"]))["size"] == 19


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost:5000", True), ("127.0.0.1:5443", True), ("127.0.0.1", True), ("[::1]:5000", True),
    ("reg.example.com", False), ("10.0.0.1:5000", False), ("docker.io", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_registry_ca_from_docker_certs_d(tmp_path: Path) -> None:
    folder = tmp_path / "certs.d" / "reg.example.com:5443"
    folder.mkdir(parents=True)
    (folder / "ca.crt").write_text("x")
    env = {"DOCKER_CONFIG": str(tmp_path)}
    assert registry_ca("reg.example.com:5443", env) == str(folder / "ca.crt")
    assert registry_ca("other.example.com", env) is None
