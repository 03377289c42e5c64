"""Process start times on each OS (kubectl_build.host.process)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time

import pytest

from kubectl_build.host import process


def test_linux_reads_the_start_from_proc() -> None:
    # A child started now, asked about after a pause: its start lies before the pause.
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)
    try:
        before = time.monotonic()
        time.sleep(0.3)  # the age to measure, not a synchronisation
        started = process.process_start(child.pid)
        assert before - 0.05 <= started <= before + 0.3 - 0.2
    finally:
        child.communicate(b"")
    assert process.process_start() <= time.monotonic()


def test_where_nothing_answers_the_start_is_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")  # no windll on this machine
    now = time.monotonic()
    assert now <= process.process_start() <= time.monotonic()
    monkeypatch.setattr(sys, "platform", "linux")
    assert now <= process.process_start(2**22 + 12345) <= time.monotonic()  # no such pid


def test_darwin_kinfo_proc_starts_with_the_start_timeval() -> None:
    kinfo = struct.pack("=qi", 1_764_000_000, 250_000) + bytes(636)
    assert process.darwin_start_from_kinfo(kinfo) == 1_764_000_000.25
    assert process.darwin_start_from_kinfo(bytes(648)) is None  # no such process: zeroes
    assert process.darwin_start_from_kinfo(b"short") is None


def test_windows_filetime_is_counted_from_1601() -> None:
    unix_epoch = 116_444_736_000_000_000  # 1970-01-01 in 100 ns ticks since 1601-01-01
    assert process.windows_start_from_filetime(unix_epoch) == 0.0
    assert process.windows_start_from_filetime(unix_epoch + 15_000_000) == 1.5


def test_macos_asks_sysctl_and_falls_back_without_libc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    # Linux's libc has sysctl() only as a stub that fails: the reader must fall back, not raise.
    now = time.monotonic()
    assert now - 0.01 <= process.process_start(os.getpid()) <= time.monotonic()
