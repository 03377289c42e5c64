from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from kubectl_build.agent import server, wire


def _request(**changes: object) -> wire.Request:
    base: dict[str, object] = {"argv": ("ctx", "-t", "x"), "cwd": "/src", "env": {"A": "1"},
                               "umask": 0o022, "encoding": "utf-8", "errors": "strict"}
    base.update(changes)
    return wire.Request(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("value,expected", [("", True), ("1", True), ("on", True), ("0", False),
                                            ("off", False), (" False ", False), ("no", False)])
def test_switch(value: str, expected: bool) -> None:
    assert wire.enabled({wire.SWITCH: value}) is expected


@pytest.mark.parametrize("argv,env,expected", [
    (["."], {}, True),
    (["./ctx", "-t", "a:b", "--push"], {}, True),
    ([], {}, False),
    (["--help"], {}, False),
    (["-h"], {}, False),
    (["completion", "bash"], {}, False),
    ([".", "--version"], {}, False),
    ([".", "--buildkit-host", "unix:///run/b.sock"], {}, True),
    ([".", "--buildkit-host=tcp://h:1"], {}, True),
    (["."], {"BUILDKIT_HOST": "unix:///run/b.sock"}, True),
    (["."], {"_KUBECTL_BUILD_COMPLETE": "bash_complete"}, False),
    (["."], {wire.SWITCH: "0"}, False),
    # After "--" nothing is an option of ours.
    (["-f", "D", "--", "--version"], {}, True),
])
def test_wants_agent(argv: list[str], env: dict[str, str], expected: bool) -> None:
    assert wire.wants_agent(argv, env) is expected


def test_socket_path_per_folder_and_installation(tmp_path: Path) -> None:
    explicit = wire.socket_path({wire.FOLDER: str(tmp_path)}, "/venv/bin/python")
    assert os.path.dirname(explicit) == str(tmp_path)
    runtime = wire.socket_path({"XDG_RUNTIME_DIR": "/run/user/7"}, "/venv/bin/python")
    assert runtime.startswith(f"/run/user/7/kubectl-build-{os.getuid()}/agent-")
    fallback = wire.socket_path({}, "/venv/bin/python")
    assert fallback.startswith(f"/tmp/kubectl-build-{os.getuid()}/agent-")
    other = wire.socket_path({}, "/other/bin/python")
    assert other != fallback and len(fallback) <= wire.MAX_SOCKET_PATH


def test_env_digest_ignores_what_shells_change() -> None:
    env = {"KUBECONFIG": "/k", "PATH": "/bin"}
    assert wire.env_digest(env) == wire.env_digest({**env, "PWD": "/x", "OLDPWD": "/y", "_": "z",
                                                    "SHLVL": "3"})
    assert wire.env_digest(env) != wire.env_digest({**env, "KUBECONFIG": "/other"})
    assert wire.env_digest(env) != wire.env_digest({**env, "HTTPS_PROXY": "http://p"})


def test_request_round_trip() -> None:
    request = _request(env={"A": "1", "B": "é"}, umask=0o077, argv=("-", "-t", "ünï"))
    encoded = wire.encode_request(request)
    assert wire.request_length(encoded[:4]) == len(encoded) - 4
    assert wire.decode_request(encoded[4:]) == request


@pytest.mark.parametrize("body", [
    b"[]", b'{"argv": "x"}', b'{"argv": [1], "env": {}}',
    b'{"argv": [], "env": {"A": 1}, "cwd": "/", "umask": 18, "encoding": "u", "errors": "s"}',
    b'{"argv": [], "env": {}, "cwd": "/", "umask": true, "encoding": "u", "errors": "s"}',
    b'{"argv": [], "env": {}, "cwd": "/", "umask": 18, "encoding": null, "errors": "s"}',
    b"not json",
])
def test_bad_requests_are_refused(body: bytes) -> None:
    with pytest.raises((ValueError, AttributeError)):
        wire.decode_request(body)


def test_oversized_request_is_refused() -> None:
    with pytest.raises(ValueError):
        wire.request_length((wire.MAX_REQUEST + 1).to_bytes(4, "big"))


@pytest.mark.parametrize("code", [0, 1, 5, 130, -15])
def test_exit_code_round_trip(code: int) -> None:
    reply = wire.encode_code(code)
    assert reply[:1] == wire.CODE and wire.decode_code(reply[1:]) == code


@pytest.mark.parametrize("value,expected", [("", wire.IDLE_SECONDS), ("2.5", 2.5), ("-1", wire.IDLE_SECONDS),
                                            ("soon", wire.IDLE_SECONDS)])
def test_idle_seconds(value: str, expected: float) -> None:
    assert wire.idle_seconds({wire.IDLE: value}) == expected


def test_fingerprint_follows_code_on_disk(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    (tmp_path / "notes.txt").write_text("ignored\n")
    before = server.fingerprint(tmp_path)
    assert server.fingerprint(tmp_path) == before
    (tmp_path / "notes.txt").write_text("still ignored\n")
    assert server.fingerprint(tmp_path) == before
    stat = (tmp_path / "sub" / "b.py").stat()
    os.utime(tmp_path / "sub" / "b.py", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert server.fingerprint(tmp_path) != before


def test_frozen_fingerprint_follows_the_executable(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    executable = tmp_path / "kubectl-build"
    executable.write_bytes(b"\x7fELF v1")
    package = tmp_path / "pkg"
    package.mkdir()
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(executable))
    before = server.fingerprint(package)
    executable.write_bytes(b"\x7fELF v2, upgraded")
    assert server.fingerprint(package) != before
