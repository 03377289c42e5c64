"""select_display: one renderer per --progress mode, chosen once."""

from __future__ import annotations

import io

import pytest

from kubectl_build.console import Console
from kubectl_build.errors import UsageError
from kubectl_build.progress import MODES, QuietDisplay, select_display
from kubectl_build.progress.display import resolve_mode
from kubectl_build.progress.plain import PlainDisplay
from kubectl_build.progress.rawjson import RawJsonDisplay
from kubectl_build.progress.tty import TtyDisplay
from tests.unit.progress.progress_streams import failing_build


class TtyStream(io.StringIO):
    """A stderr that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def console(tty: bool = False, quiet: bool = False) -> Console:
    stderr = TtyStream() if tty else io.StringIO()
    return Console(stdout=io.StringIO(), stderr=stderr, quiet=quiet)


@pytest.fixture(autouse=True)
def _term(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")


def test_auto_is_tty_on_a_terminal() -> None:
    assert isinstance(select_display("auto", console(tty=True)), TtyDisplay)


def test_auto_is_plain_on_a_pipe() -> None:
    assert isinstance(select_display("auto", console(tty=False)), PlainDisplay)


def test_auto_is_plain_on_a_dumb_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    assert resolve_mode("auto", console(tty=True)) == "plain"


def test_auto_is_quiet_when_the_console_is_quiet() -> None:
    assert isinstance(select_display("auto", console(quiet=True)), QuietDisplay)


@pytest.mark.parametrize(
    ("mode", "kind"),
    [
        ("tty", TtyDisplay),
        ("plain", PlainDisplay),
        ("quiet", QuietDisplay),
        ("rawjson", RawJsonDisplay),
    ],
)
def test_explicit_modes(mode: str, kind: type) -> None:
    assert isinstance(select_display(mode, console(tty=False)), kind)


def test_every_mode_is_known() -> None:
    assert set(MODES) == {"auto", "tty", "plain", "quiet", "rawjson", "none"}


def test_unknown_mode_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="--progress"):
        select_display("fancy", console())


@pytest.mark.parametrize("mode", ["quiet", "plain", "rawjson", "tty"])
def test_failure_available_in_every_mode(mode: str) -> None:
    con = console()
    display = select_display(mode, con)
    display.start()
    for message in failing_build():
        display.update(message)
    display.finish(False)
    failure = display.model.failure()
    assert failure is not None
    assert (failure.name, failure.exit_code) == ("[4/4] RUN exit 3", 3)


def test_quiet_prints_nothing() -> None:
    con = console()
    display = select_display("quiet", con)
    display.start()
    for message in failing_build():
        display.update(message)
    display.finish(False)
    assert con.stderr.getvalue() == ""  # type: ignore[attr-defined]
    assert con.stdout.getvalue() == ""  # type: ignore[attr-defined]


def test_progress_goes_to_stderr_only() -> None:
    con = console()
    display = select_display("plain", con)
    for message in failing_build():
        display.update(message)
    display.finish(False)
    assert "#4 ERROR" in con.stderr.getvalue()  # type: ignore[attr-defined]
    assert con.stdout.getvalue() == ""  # type: ignore[attr-defined]


def test_platform_prefix_applies_to_plain() -> None:
    con = console()
    display = select_display("plain", con, platform_prefix="linux/arm/v7")
    for message in failing_build():
        display.update(message)
    assert "#4 [linux/arm/v7 4/4] RUN exit 3" in con.stderr.getvalue()  # type: ignore[attr-defined]


def test_plain_ignores_messages_after_finish() -> None:
    con = console()
    display = select_display("plain", con)
    messages = failing_build()
    for message in messages[:-1]:
        display.update(message)
    display.finish(False)
    display.finish(False)
    before = con.stderr.getvalue()  # type: ignore[attr-defined]
    display.update(messages[-1])
    assert con.stderr.getvalue() == before  # type: ignore[attr-defined]


def test_rawjson_stops_writing_after_finish() -> None:
    con = console()
    display = select_display("rawjson", con)
    messages = failing_build()
    display.update(messages[0])
    display.finish(False)
    display.update(messages[1])
    assert len(con.stderr.getvalue().splitlines()) == 1  # type: ignore[attr-defined]
