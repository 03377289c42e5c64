from __future__ import annotations

import base64
import json

import pytest

from kubectl_build.buildkit.session.auth import Credential, CredentialStore
from kubectl_build.errors import UsageError


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def test_config_json_hosts_and_hub_alias() -> None:
    doc = {"auths": {
        "https://index.docker.io/v1/": {"auth": _auth("hubuser", "hubpass")},
        "reg.example.com": {"auth": _auth("u", "p:with:colons")},
        "https://other.example.com/v2/": {"username": "a", "password": "b"},
        "tok.example.com": {"auth": _auth("x", "y"), "identitytoken": "tok"},
    }}
    store = CredentialStore.from_config_json(json.dumps(doc).encode(), "test")
    assert store.lookup("registry-1.docker.io") == Credential("hubuser", "hubpass")
    assert store.lookup("docker.io") == Credential("hubuser", "hubpass")
    assert store.lookup("reg.example.com") == Credential("u", "p:with:colons")
    assert store.lookup("other.example.com") == Credential("a", "b")
    assert store.lookup("tok.example.com") == Credential("", "tok")
    assert store.lookup("unknown.example.com") is None


def test_legacy_dockercfg() -> None:
    doc = {"reg.example.com": {"auth": _auth("u", "p")}}
    store = CredentialStore.from_config_json(json.dumps(doc).encode(), "test", legacy=True)
    assert store.lookup("reg.example.com") == Credential("u", "p")


def test_secret_never_in_repr() -> None:
    assert "hunter2" not in repr(Credential("u", "hunter2"))


@pytest.mark.parametrize("doc", [b"not json", b'{"auths": []}'])
def test_malformed_config(doc: bytes) -> None:
    with pytest.raises(UsageError) as info:
        CredentialStore.from_config_json(doc, "secret ns/buildkit")
    assert "secret ns/buildkit" in info.value.message
