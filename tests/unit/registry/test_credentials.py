"""docker config.json credentials: auths, credsStore, credHelpers and the helper protocol."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from kubectl_build._proto import session_pb2
from kubectl_build.buildkit.session.auth import AuthService, Credential, CredentialStore
from kubectl_build.errors import ExitCode, RegistryAuthError, UsageError
from kubectl_build.registry import credentials
from kubectl_build.registry.credentials import (
    HelperConfig,
    HelperCredentialStore,
    failure_detail,
    is_not_found,
    parse_helper_config,
    parse_helper_output,
    run_helper,
    server_url,
    store_from_config,
)

SECRET = "s3cr3t-never-shown"


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _doc(**fields: object) -> bytes:
    return json.dumps(fields).encode()


class Recorder:
    """A helper runner answering from a table and recording each call."""

    def __init__(self, answers: dict[tuple[str, str], Credential | None | Exception]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, name: str, host: str) -> Credential | None:
        with self.lock:
            self.calls.append((name, host))
        answer = self.answers[(name, server_url(host))]
        if isinstance(answer, Exception):
            raise answer
        return answer


# ------------------------------------------------------------------ configuration

def test_no_helpers_gives_the_plain_auths_store() -> None:
    store = store_from_config(_doc(auths={"reg.example.com": {"auth": _auth("u", "p")}}), "cfg")
    assert type(store) is CredentialStore
    assert store.lookup("reg.example.com") == Credential("u", "p")


def test_empty_creds_store_means_none() -> None:
    assert parse_helper_config(_doc(credsStore="", auths={}), "cfg").empty


def test_precedence_cred_helpers_then_creds_store_then_nothing() -> None:
    cfg = HelperConfig("desktop", {"https://gcr.io": "gcloud", "index.docker.io": "hub"})
    assert cfg.helper_for("gcr.io") == ("gcloud", "credHelpers[https://gcr.io]")
    assert cfg.helper_for("registry-1.docker.io") == ("hub", "credHelpers[index.docker.io]")
    assert cfg.helper_for("other.example.com") == ("desktop", "credsStore")
    assert HelperConfig(None, {"gcr.io": "gcloud"}).helper_for("quay.io") is None


def test_store_uses_helper_over_auths_and_auths_elsewhere() -> None:
    doc = _doc(credHelpers={"gcr.io": "gcloud"},
               auths={"gcr.io": {"auth": _auth("file", "x")},
                      "quay.io": {"auth": _auth("q", "qp")}})
    runner = Recorder({("gcloud", "gcr.io"): Credential("oauth2accesstoken", "tok")})
    store = HelperCredentialStore(CredentialStore.from_config_json(doc, "cfg"),
                                  parse_helper_config(doc, "cfg"), "cfg", runner)
    assert store.lookup("gcr.io") == Credential("oauth2accesstoken", "tok")
    assert store.lookup("quay.io") == Credential("q", "qp")  # no helper for it: auths
    assert store.lookup("ghcr.io") is None
    assert runner.calls == [("gcloud", "gcr.io")]
    assert store.hosts == ["gcr.io", "quay.io"]


def test_creds_store_serves_every_host_without_falling_back_to_auths() -> None:
    # docker: with credsStore set, a host the store has no entry for is anonymous
    doc = _doc(credsStore="desktop", auths={"reg.example.com": {"auth": _auth("file", "x")}})
    runner = Recorder({("desktop", "reg.example.com"): None,
                       ("desktop", "https://index.docker.io/v1/"): Credential("hub", "hp")})
    store = HelperCredentialStore(CredentialStore.from_config_json(doc, "cfg"),
                                  parse_helper_config(doc, "cfg"), "cfg", runner)
    assert store.lookup("reg.example.com") is None
    assert store.lookup("registry-1.docker.io") == Credential("hub", "hp")
    assert store.lookup("docker.io") == Credential("hub", "hp")  # alias: same cache entry
    assert runner.calls == [("desktop", "reg.example.com"), ("desktop", "registry-1.docker.io")]


def test_lookups_are_cached_per_host_and_run_once_under_concurrency() -> None:
    gate = threading.Event()

    class Slow(Recorder):
        def __call__(self, name: str, host: str) -> Credential | None:
            gate.wait(5)
            return super().__call__(name, host)

    runner = Slow({("s", "a.example"): Credential("u", "p"), ("s", "b.example"): None})
    store = HelperCredentialStore(CredentialStore(), HelperConfig("s"), "cfg", runner)
    results: list[Credential | None] = []
    threads = [threading.Thread(target=lambda: results.append(store.lookup("a.example")))
               for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(5)
    assert results == [Credential("u", "p")] * 4
    assert store.lookup("b.example") is None and store.lookup("b.example") is None
    assert runner.calls == [("s", "a.example"), ("s", "b.example")]


def test_failure_is_cached_and_names_the_config_key() -> None:
    err = RegistryAuthError("credential helper docker-credential-gone not found on PATH")
    runner = Recorder({("gone", "reg.example.com"): err})
    store = HelperCredentialStore(CredentialStore(), HelperConfig("gone"), "/cfg.json", runner)
    for _ in range(2):
        with pytest.raises(RegistryAuthError) as info:
            store.lookup("reg.example.com")
    assert info.value.one_line() == ("credential helper docker-credential-gone not found on PATH"
                                  " (credsStore in /cfg.json)")
    assert len(runner.calls) == 1


@pytest.mark.parametrize(("doc", "what"), [
    (_doc(credsStore=3), "credsStore"),
    (_doc(credsStore="../bin/evil"), "credsStore"),
    (_doc(credHelpers=["gcr.io"]), "credHelpers"),
    (_doc(credHelpers={"gcr.io": 1}), "credHelpers[gcr.io]"),
])
def test_malformed_helper_config(doc: bytes, what: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_helper_config(doc, "cfg")
    assert what in info.value.message and "cfg" in info.value.message


# ------------------------------------------------------------------ protocol parsing

def test_server_url_uses_the_hub_legacy_key() -> None:
    assert server_url("registry-1.docker.io") == "https://index.docker.io/v1/"
    assert server_url("127.0.0.1:5443") == "127.0.0.1:5443"
    assert server_url("https://reg.example.com/v2/") == "reg.example.com"


def test_parse_helper_output() -> None:
    out = _doc(ServerURL="r", Username="u", Secret=SECRET)
    assert parse_helper_output(out, "p") == Credential("u", SECRET)
    assert parse_helper_output(_doc(Username="<token>", Secret="idt"), "p") == Credential("", "idt")
    assert parse_helper_output(_doc(ServerURL="r", Username="", Secret=""), "p") is None


@pytest.mark.parametrize("out", [b"", b"not json", b"[1]", _doc(Username=1, Secret="x")])
def test_parse_helper_output_malformed(out: bytes) -> None:
    with pytest.raises(RegistryAuthError) as info:
        parse_helper_output(out, "docker-credential-x")
    assert "docker-credential-x" in info.value.message


def test_not_found_and_failure_detail() -> None:
    assert is_not_found(b"credentials not found in native keychain\n")
    assert not is_not_found(b"error: keychain locked")
    assert failure_detail(b"keychain locked\nmore") == "keychain locked"
    assert failure_detail(_doc(Username="u", Secret=SECRET)) == ""  # never echo JSON
    assert len(failure_detail(b"x" * 1000)) == 200


# ------------------------------------------------------------------ real helper processes

def _install_helper(bindir: Path, name: str, body: str) -> None:
    path = bindir / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def bindir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ.get('PATH', '')}")
    return d


def test_run_helper_passes_get_and_server_url(bindir: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    _install_helper(bindir, "t", f'echo "$1" > {log}; cat >> {log}\n'
                    f'printf \'{{"ServerURL":"x","Username":"u","Secret":"{SECRET}"}}\'\n')
    assert run_helper("t", "registry-1.docker.io") == Credential("u", SECRET)
    assert log.read_text() == "get\nhttps://index.docker.io/v1/"


def test_run_helper_not_found_is_anonymous(bindir: Path) -> None:
    _install_helper(bindir, "t", "echo 'credentials not found in native keychain'; exit 1\n")
    assert run_helper("t", "reg.example.com") is None


def test_run_helper_missing_from_path(bindir: Path) -> None:
    with pytest.raises(RegistryAuthError) as info:
        run_helper("absent-kb", "reg.example.com")
    assert info.value.exit_code == ExitCode.REGISTRY_AUTH
    assert "docker-credential-absent-kb not found on PATH" in info.value.one_line()


def test_run_helper_failure_names_helper_but_not_secret(bindir: Path) -> None:
    _install_helper(bindir, "t", f"echo 'keychain locked' >&2; echo '{{\"Secret\":\"{SECRET}\"}}'\n"
                    "exit 3\n")
    with pytest.raises(RegistryAuthError) as info:
        run_helper("t", "reg.example.com")
    line = info.value.one_line()
    assert "docker-credential-t failed for reg.example.com (exit code 3): keychain locked" in line
    assert SECRET not in line


def test_run_helper_timeout(bindir: Path) -> None:
    _install_helper(bindir, "t", "exec sleep 30\n")
    with pytest.raises(RegistryAuthError) as info:
        run_helper("t", "reg.example.com", timeout=0.3)
    assert "did not answer within 0.3s" in info.value.message


def test_docker_config_store_reads_docker_config_dir(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "kb-unit", "auths": {}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    store = credentials.docker_config_store()
    assert isinstance(store, HelperCredentialStore)
    assert store.hosts == []


# ------------------------------------------------------------------ the Auth service hook

class _AbortedError(Exception):
    pass


class _Context:
    def abort(self, code: object, details: str) -> None:
        self.details = details
        raise _AbortedError(details)


def test_auth_service_records_the_failure_and_aborts_without_secret() -> None:
    err = RegistryAuthError("credential helper docker-credential-gone not found on PATH")
    store = HelperCredentialStore(CredentialStore(), HelperConfig("gone"), "cfg",
                                  Recorder({("gone", "reg.example.com"): err}))
    service = AuthService(store)

    ctx = _Context()
    with pytest.raises(_AbortedError):
        service.credentials(session_pb2.CredentialsRequest(host="reg.example.com"), ctx)  # type: ignore[arg-type]
    assert service.failure is not None and service.failure.__cause__ is err  # the evolved copy of it
    assert service.failure.one_line() == f"{err.message} (credsStore in cfg)"
    assert "docker-credential-gone" in ctx.details
