"""The live tty view, rendered into a rich Console writing to a StringIO."""

from __future__ import annotations

import io

import pytest
from rich.console import Console as RichConsole

from kubectl_build._proto.control_pb2 import StatusResponse
from kubectl_build.progress.model import ProgressModel
from kubectl_build.progress.tty import (
    LIVE_LOG_LINES,
    DaemonClock,
    TtyDisplay,
    render_live,
    render_summary,
    short_digests,
)
from tests.unit.progress.progress_streams import (
    D_MAKE,
    N_MAKE,
    T0,
    cached_build,
    failing_build,
    log,
    multistep_build,
    resp,
    status,
    transfer_build,
    vertex,
)


def rich_console(width: int = 120) -> RichConsole:
    return RichConsole(file=io.StringIO(), force_terminal=True, width=width, color_system=None)


def text_of(renderable: object, width: int = 120) -> str:
    console = rich_console(width)
    console.print(renderable)
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


def fold(messages: list[StatusResponse]) -> ProgressModel:
    model = ProgressModel()
    for message in messages:
        model.apply(message)
    return model


def run_display(messages: list[StatusResponse], ok: bool, width: int = 120) -> str:
    out = io.StringIO()
    console = RichConsole(file=out, force_terminal=True, width=width)
    display = TtyDisplay(console, clock=lambda: T0 + 10.0, refresh_per_second=50)
    display.start()
    for message in messages:
        display.update(message)
    display.finish(ok)
    return out.getvalue()


def test_running_step_shows_timer_and_last_log_lines() -> None:
    messages = multistep_build()
    model = fold(messages[:10])  # RUN make is running, COPY has started
    view = text_of(render_live(model, T0 + 2.9))
    assert "[+] Building 2.9s (3/5)" in view
    assert " => [2/4] RUN make" in view
    assert "1.4s" in view  # 2.9 - 1.5 on the running step's timer
    assert " => => # cc -o app main.o" in view
    assert " => => # warning: unused variable" in view
    assert "CACHED [1/4] FROM docker.io/library/alpine" in view


def test_only_the_last_lines_of_a_running_step() -> None:
    model = ProgressModel()
    lines = b"".join(f"line {i}\n".encode() for i in range(30))
    model.apply(resp([vertex(D_MAKE, N_MAKE, started=1.0)], logs=[log(D_MAKE, 1.1, lines)]))
    view = text_of(render_live(model, T0 + 2.0))
    assert "line 29" in view
    assert f"line {29 - LIVE_LOG_LINES + 1}" in view
    assert f"line {29 - LIVE_LOG_LINES}\n" not in view


def test_finished_step_collapses_to_one_line() -> None:
    model = fold(multistep_build())
    view = text_of(render_live(model, T0 + 5.0))
    assert "cc -c main.c" not in view
    assert "[2/4] RUN make" in view
    assert "1.7s" in view


def test_transfer_with_total_has_a_bar_and_sizes() -> None:
    model = fold(transfer_build()[:7])  # the layer is at 1.05MB of 3.40MB
    view = text_of(render_live(model, T0 + 2.0))
    assert "sha256:cccccccccccc 1.05MB / 3.40MB" in view
    assert "━" in view
    assert "transferring context: 12.3MB done" not in view  # its step is finished


def test_view_fits_the_terminal_by_dropping_old_finished_steps() -> None:
    model = fold(cached_build())
    model.apply(resp([vertex(D_MAKE + "x", "[9/9] RUN long", started=2.0)]))
    view = text_of(render_live(model, T0 + 3.0, max_rows=3))
    assert "[9/9] RUN long" in view
    assert "load build definition" not in view
    assert len(view.splitlines()) <= 3


def test_summary_of_a_cached_build() -> None:
    text = text_of(render_summary(fold(cached_build()), ok=True))
    assert "[+] Building 1.4s (6/6) FINISHED" in text
    assert text.count("CACHED") == 3
    assert "exporting to image" in text


def test_failure_summary_has_the_step_error_and_logs() -> None:
    text = text_of(render_summary(fold(failing_build()), ok=False))
    assert "FAILED" in text
    assert "ERROR [4/4] RUN exit 3" in text
    assert "CANCELED [3/4] COPY . /src" in text
    assert " > [4/4] RUN exit 3:" in text
    assert "error: frobnicator missing" in text
    assert "exit code: 3" in text


def test_display_end_to_end_on_failure() -> None:
    out = run_display(failing_build(), ok=False)
    summary = out[out.rindex("[+] Building") :]
    assert "\x1b[" in summary  # coloured
    assert "RUN exit 3" in summary
    red_logs = "\x1b[31merror: frobnicator missing"
    assert red_logs in summary
    assert "exit code: 3" in summary


def test_display_end_to_end_success() -> None:
    out = run_display(cached_build(), ok=True)
    summary = out[out.rindex("[+] Building") :]
    assert "FINISHED" in summary
    assert summary.count("CACHED") == 3


def test_display_narrow_terminal_truncates_instead_of_wrapping() -> None:
    out = run_display(cached_build(), ok=True, width=40)
    summary = out[out.rindex("[+] Building") :]
    assert "…" in summary
    assert all(len(line) <= 40 for line in _strip_ansi(summary).splitlines())


def test_display_prefix_labels_steps() -> None:
    out = io.StringIO()
    console = RichConsole(file=out, force_terminal=True, width=100)
    display = TtyDisplay(console, prefix="linux/arm64", clock=lambda: T0 + 1.0)
    display.start()
    display.update(resp([vertex(D_MAKE, N_MAKE, started=0.5, completed=0.9)]))
    display.update(resp(statuses=[status(D_MAKE, "x", 0.7)]), prefix="linux/amd64")
    display.finish(True)
    assert "[linux/arm64 2/4] RUN make" in out.getvalue()
    assert len(display.model.steps) == 2


def test_short_digests() -> None:
    assert short_digests("extracting sha256:" + "ab" * 32) == "extracting sha256:" + "ab" * 6


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_live_region_redraws_while_running() -> None:
    out = io.StringIO()
    console = RichConsole(file=out, force_terminal=True, width=100, height=20)
    display = TtyDisplay(console, clock=lambda: T0 + 2.0, refresh_per_second=50)
    display.start()
    for message in multistep_build()[:8]:
        display.update(message)
    display.render_live()  # what the refresh thread draws
    display._live.refresh()
    live = out.getvalue()
    display.finish(True)
    assert " => => # cc -c main.c" in live
    # RUN make started at 1.5; the newest message says the daemon is at 2.104 although the
    # local clock says 2.0, so the timer follows the daemon.
    assert "0.6s" in live


def test_finish_twice_prints_one_summary() -> None:
    out = io.StringIO()
    display = TtyDisplay(RichConsole(file=out, force_terminal=True), clock=lambda: T0)
    display.start()
    display.finish(True)
    display.finish(True)
    assert out.getvalue().count("FINISHED") == 1


@pytest.mark.parametrize("skew", [-30.0, 0.0, 7.5])
def test_daemon_clock_learns_the_offset(skew: float) -> None:
    local = [T0 + 100.0]
    clock = DaemonClock(lambda: local[0])
    assert clock() == T0 + 100.0  # nothing learnt yet
    # Messages stamped on the daemon's clock, received 0.2s and 0.05s later.
    clock.observe(resp([vertex(D_MAKE, N_MAKE, started=100.0 + skew - 0.2)]))
    clock.observe(resp(logs=[log(D_MAKE, 100.0 + skew - 0.05, b"x")]))
    clock.observe(resp(statuses=[status(D_MAKE, "old", 50.0)]))  # a stale replay
    assert clock() == pytest.approx(T0 + 100.0 + skew - 0.05)
    clock.observe(resp())  # no timestamps: nothing to learn
    assert clock() == pytest.approx(T0 + 100.0 + skew - 0.05)


def test_running_steps_shrink_to_fit() -> None:
    model = ProgressModel()
    for i in range(4):
        digest = f"{D_MAKE}{i}"
        lines = b"".join(f"step {i} line {n}\n".encode() for n in range(10))
        model.apply(resp([vertex(digest, f"RUN job {i}", started=1.0)], logs=[log(digest, 1.1, lines)]))
    view = text_of(render_live(model, T0 + 2.0, max_rows=10))
    assert len(view.splitlines()) <= 10
    for i in range(4):
        assert f"RUN job {i}" in view
    assert "step 3 line 9" in view  # the newest line of each step survives
