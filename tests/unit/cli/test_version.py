"""``kubectl build --version`` and ``kubectl buildkit version``: client line, builder line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from kubectl_build import __main__ as entry
from kubectl_build import __version__
from kubectl_build.cli import version
from kubectl_build.errors import ExitCode


@pytest.mark.parametrize(
    ("args", "environ", "expected"),
    [
        (["--version"], {}, None),
        (["--version"], {"BUILDKIT_HOST": "unix:///env"}, "unix:///env"),
        (["--version", "--buildkit-host", "tcp://h:1"], {"BUILDKIT_HOST": "x"}, "tcp://h:1"),
        (["--buildkit-host=unix:///s", "--version"], {}, "unix:///s"),
        (["--version", "--", "--buildkit-host", "tcp://h:1"], {}, None),
    ],
)
def test_address_from_args(args: list[str], environ: dict[str, str], expected: str | None) -> None:
    assert version.address_from_args(args, environ) == expected


def _run(main: object, *args: str, env: dict[str, str | None]) -> tuple[int, str, str]:
    with CliRunner().isolation(env=env) as (out, err, _):
        code = main(list(args))  # type: ignore[operator]
    return code, out.getvalue().decode(), err.getvalue().decode()


def test_client_version_needs_no_builder() -> None:
    assert _run(entry.build_main, "--version", env={"BUILDKIT_HOST": None}) == (
        0, f"kubectl-build {__version__}\n", "")  # fmt: skip
    assert _run(entry.buildkit_main, "version", env={"BUILDKIT_HOST": None}) == (
        0, f"kubectl-build {__version__}\n", "")  # fmt: skip


def test_unreachable_builder_is_one_error_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(version, "CONNECT_TIMEOUT", 0.5)
    for main, args in ((entry.build_main, ["--version"]), (entry.buildkit_main, ["version"])):
        code, out, err = _run(main, *args, env={"BUILDKIT_HOST": "unix:///nonexistent/buildkitd.sock"})
        assert code == ExitCode.DAEMON_UNREACHABLE
        assert out == f"kubectl-build {__version__}\n"
        assert err.startswith("error: cannot reach buildkitd at unix:///nonexistent/buildkitd.sock")
        assert len(err.splitlines()) == 1
