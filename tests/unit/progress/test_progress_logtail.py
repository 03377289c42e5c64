"""LogTail: reassembling output lines from arbitrary byte chunks."""

from __future__ import annotations

from kubectl_build.progress.logtail import LogTail, clean_text


def test_lines_split_across_chunks() -> None:
    tail = LogTail()
    assert tail.feed(b"hel") == []
    assert tail.pending == "hel"
    assert tail.feed(b"lo\nwor") == ["hello"]
    assert tail.feed(b"ld\n") == ["world"]
    assert list(tail.lines) == ["hello", "world"]
    assert tail.pending == ""


def test_utf8_character_split_across_chunks() -> None:
    tail = LogTail()
    data = "héllo ✓\n".encode()
    assert tail.feed(data[:2]) == []
    assert tail.feed(data[2:9]) == []
    assert tail.feed(data[9:]) == ["héllo ✓"]


def test_carriage_return_keeps_last_redraw() -> None:
    tail = LogTail()
    assert tail.feed(b"10%\r50%\r") == []
    assert tail.pending == "50%"
    assert tail.feed(b"100%\n") == ["100%"]


def test_crlf_is_a_plain_newline() -> None:
    tail = LogTail()
    assert tail.feed(b"one\r") == []
    assert tail.feed(b"\ntwo\r\n") == ["one", "two"]


def test_escape_sequences_and_controls_removed() -> None:
    assert clean_text(b"\x1b[1;31mred\x1b[0m\x07 text\tx") == "red text\tx"


def test_invalid_utf8_replaced() -> None:
    assert clean_text(b"bad \xff byte") == "bad \ufffd byte"


def test_keeps_only_the_limit() -> None:
    tail = LogTail(limit=3)
    tail.feed(b"".join(f"line {i}\n".encode() for i in range(10)))
    assert list(tail.lines) == ["line 7", "line 8", "line 9"]


def test_tail_includes_pending_line() -> None:
    tail = LogTail()
    tail.feed(b"a\nb\nc")
    assert tail.tail(2) == ["b", "c"]
    assert tail.tail(0) == []


def test_flush_completes_pending_line() -> None:
    tail = LogTail()
    tail.feed(b"no newline")
    assert tail.flush() == "no newline"
    assert tail.flush() is None
    assert list(tail.lines) == ["no newline"]


def test_endless_redraw_stays_bounded() -> None:
    tail = LogTail()
    for i in range(20_000):
        tail.feed(f"progress {i}%\r".encode())
    assert len(tail.partial) < 100
    assert tail.pending == "progress 19999%"


def test_endless_line_without_newline_stays_bounded() -> None:
    tail = LogTail()
    for _ in range(100):
        tail.feed(b"x" * 10_000)
    assert len(tail.partial) <= 64 * 1024
