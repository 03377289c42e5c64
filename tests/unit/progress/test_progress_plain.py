"""Plain renderer rules that the golden streams exercise only indirectly."""

from __future__ import annotations

import io

from kubectl_build._proto.control_pb2 import StatusResponse
from kubectl_build.progress.plain import PlainDisplay
from kubectl_build.progress.text import format_amount, format_duration, format_size
from tests.unit.progress.progress_streams import (
    D_COPY,
    D_DEF,
    D_MAKE,
    N_COPY,
    N_DEF,
    N_MAKE,
    log,
    resp,
    status,
    vertex,
)


def plain(messages: list[StatusResponse], ok: bool = True, interval: float = 1.0) -> str:
    out = io.StringIO()
    display = PlainDisplay(out, status_interval=interval)
    for message in messages:
        display.update(message)
    display.finish(ok)
    return out.getvalue()


def test_instant_step_rerun_prints_one_block() -> None:
    text = plain(
        [
            resp([vertex(D_DEF, N_DEF, started=0.0, completed=0.001)]),
            resp([vertex(D_DEF, N_DEF, started=0.002)]),
            resp([vertex(D_DEF, N_DEF, started=0.002, completed=0.05)]),
        ]
    )
    assert text == f"#1 {N_DEF}\n#1 DONE 0.0s\n"


def test_instant_step_without_rerun_still_printed() -> None:
    text = plain(
        [
            resp([vertex(D_COPY, N_COPY, started=0.0, completed=0.01)]),
            resp([vertex(D_MAKE, N_MAKE, started=0.1, completed=0.2)], logs=[log(D_MAKE, 0.15, b"x\n")]),
        ]
    )
    assert text == f"#1 {N_COPY}\n#1 DONE 0.0s\n\n#2 {N_MAKE}\n#2 0.050 x\n#2 DONE 0.1s\n"


def test_leaving_a_running_block_says_so() -> None:
    text = plain(
        [
            resp([vertex(D_MAKE, N_MAKE, started=0.0)], logs=[log(D_MAKE, 0.1, b"make 1\n")]),
            resp([vertex(D_COPY, N_COPY, started=0.2)], logs=[log(D_COPY, 0.3, b"copy\n")]),
            resp([vertex(D_COPY, N_COPY, started=0.2, completed=0.4)]),
            resp([vertex(D_MAKE, N_MAKE, started=0.0, completed=0.5)]),
        ]
    )
    assert text.splitlines() == [
        f"#1 {N_MAKE}",
        "#1 0.100 make 1",
        "",
        "#1 ...",
        "",
        f"#2 {N_COPY}",
        "#2 0.100 copy",
        "#2 DONE 0.2s",
        "",
        f"#1 {N_MAKE}",
        "#1 DONE 0.5s",
    ]


def test_running_transfer_lines_are_throttled() -> None:
    messages = [resp([vertex(D_MAKE, N_MAKE, started=0.0)])]
    messages += [
        resp(statuses=[status(D_MAKE, "pull", t / 10, current=t * 100, total=5000, started=0.0)])
        for t in range(1, 26)
    ]
    messages.append(
        resp(statuses=[status(D_MAKE, "pull", 2.6, current=5000, total=5000, started=0, completed=2.6)])
    )
    lines = [line for line in plain(messages).splitlines() if "pull" in line]
    assert lines == [
        "#1 pull 1.00kB / 5.00kB 1.0s",
        "#1 pull 2.00kB / 5.00kB 2.0s",
        "#1 pull 5.00kB / 5.00kB 2.6s done",
    ]


def test_failed_build_summary_repeats_the_last_lines() -> None:
    error = 'process "/bin/sh -c make" did not complete successfully: exit code: 2'
    output = b"".join(f"line {i}\n".encode() for i in range(15))
    text = plain(
        [
            resp([vertex(D_MAKE, N_MAKE, started=0.0)], logs=[log(D_MAKE, 0.5, output)]),
            resp([vertex(D_MAKE, N_MAKE, started=0.0, completed=1.0, error=error)]),
        ],
        ok=False,
    )
    summary = text[text.index("------") :]
    assert summary.splitlines() == [
        "------",
        f" > {N_MAKE}:",
        *[f"line {i}" for i in range(5, 15)],
        "------",
        f"ERROR: {error}",
    ]


def test_sizes_and_durations() -> None:
    assert [format_size(n) for n in (0, 999, 1000, 12_345, 123_456, 12_345_678, 3 * 10**9)] == [
        "0B",
        "999B",
        "1.00kB",
        "12.3kB",
        "123kB",
        "12.3MB",
        "3.00GB",
    ]
    assert format_duration(1.25) == "1.2s"
    assert format_amount(1, 0) == "1B"
    assert format_amount(0, 0) == ""
    assert format_amount(500, 1000) == "500B / 1.00kB"


def test_multi_line_names_and_errors_stay_on_one_line() -> None:
    heredoc = "[2/2] RUN <<EOF\n  make\n  make install\nEOF"
    text = plain(
        [
            resp([vertex(D_MAKE, heredoc, started=0.0)]),
            resp([vertex(D_MAKE, heredoc, started=0.0, completed=1.0, error="failed:\nexit code: 1")]),
        ],
        ok=False,
    )
    assert "#1 [2/2] RUN <<EOF make make install EOF\n" in text
    assert "#1 ERROR: failed: exit code: 1\n" in text
    assert all(line.startswith(("#", "-", " >", "ERROR")) for line in text.splitlines() if line)


def test_a_cached_step_sent_again_is_printed_once() -> None:
    cached = vertex(D_MAKE, N_MAKE, started=0.1, completed=0.1, cached=True)
    text = plain([resp([cached]), resp([cached]), resp([cached])])
    assert text == f"#1 {N_MAKE}\n#1 CACHED\n"
