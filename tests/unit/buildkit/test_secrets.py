"""The Secrets session service: values read when asked, never cached or echoed."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from kubectl_build._proto import secrets_pb2
from kubectl_build.buildkit.session.h2stream import AbortError, RpcStream
from kubectl_build.buildkit.session.secrets import MAX_SECRET, SecretSource, SecretsService

VALUE = "s3cr3t-value"


def _ask(service: SecretsService, secret_id: str) -> bytes:
    request = secrets_pb2.GetSecretRequest(id=secret_id)
    context = RpcStream(1, [])
    return service.get_secret(request, context).data  # type: ignore[arg-type]


def _refusal(service: SecretsService, secret_id: str) -> AbortError:
    with pytest.raises(AbortError) as info:
        _ask(service, secret_id)
    return info.value


def test_a_file_secret_is_read_at_each_request(tmp_path: Path) -> None:
    src = tmp_path / "token"
    src.write_text(VALUE)
    service = SecretsService({"token": SecretSource(file=str(src))})
    assert _ask(service, "token") == VALUE.encode()
    src.write_text("rotated")
    assert _ask(service, "token") == b"rotated"


def test_an_env_secret_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    service = SecretsService({"api": SecretSource(env="KB_TEST_API_TOKEN")})
    monkeypatch.setenv("KB_TEST_API_TOKEN", VALUE)
    assert _ask(service, "api") == VALUE.encode()
    monkeypatch.delenv("KB_TEST_API_TOKEN")
    refused = _refusal(service, "api")
    assert (refused.code, refused.details) == (grpc.StatusCode.NOT_FOUND, "secret api not found")


def test_unknown_ids_and_unreadable_files_are_not_found(tmp_path: Path) -> None:
    service = SecretsService({"gone": SecretSource(file=str(tmp_path / "missing"))})
    for secret_id in ("gone", "never-declared"):
        refused = _refusal(service, secret_id)
        assert (refused.code, refused.details) == (grpc.StatusCode.NOT_FOUND,
                                                   f"secret {secret_id} not found")


def test_an_oversized_secret_is_refused_without_its_value(tmp_path: Path) -> None:
    src = tmp_path / "big"
    src.write_bytes(VALUE.encode() * (MAX_SECRET // len(VALUE) + 1))
    refused = _refusal(SecretsService({"big": SecretSource(file=str(src))}), "big")
    assert (refused.code, refused.details) == (grpc.StatusCode.INVALID_ARGUMENT,
                                               "secret big too large")
    src.write_bytes(b"x" * MAX_SECRET)  # exactly the limit still goes through
    assert len(_ask(SecretsService({"big": SecretSource(file=str(src))}), "big")) == MAX_SECRET


def test_a_source_with_neither_file_nor_env_has_no_value() -> None:
    assert SecretSource().read() is None


def test_the_service_advertises_get_secret() -> None:
    assert list(SecretsService({}).handlers()) == ["GetSecret"]
    assert SecretsService.name == "moby.buildkit.secrets.v1.Secrets"
