"""When a process started, on each OS: the --debug timings count the interpreter's start-up.

Linux reads /proc; macOS asks sysctl(KERN_PROC_PID); Windows GetProcessTimes. Where none
answers, "now": the timings then start from the first line of our code.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from collections.abc import Callable

_CLK_TCK_FALLBACK = 100
_WINDOWS_EPOCH_OFFSET = 11_644_473_600  # seconds from 1601-01-01 to 1970-01-01
_KINFO_PROC_SIZE = 648  # sizeof(struct kinfo_proc) on 64-bit macOS
_TIMEVAL = struct.Struct("=qi")  # kp_proc.p_un.__p_starttime: tv_sec, tv_usec (64-bit macOS)


def process_start(pid: int | None = None) -> float:
    """Monotonic time at which this process (or ``pid``) started; now where unknown."""
    age = _age_reader()(pid)
    return time.monotonic() - max(0.0, age or 0.0)


def _age_reader() -> Callable[[int | None], float | None]:
    if sys.platform == "darwin":
        return _darwin_age
    if sys.platform == "win32":
        return _windows_age
    return _proc_age


def _proc_age(pid: int | None) -> float | None:
    try:
        with open(f"/proc/{pid or 'self'}/stat", encoding="ascii") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else _CLK_TCK_FALLBACK
    except (OSError, ValueError, IndexError):
        return None
    return uptime - ticks / tick


def darwin_start_from_kinfo(kinfo: bytes) -> float | None:
    """The wall-clock start time in a macOS ``struct kinfo_proc`` (its first field)."""
    if len(kinfo) < _TIMEVAL.size:
        return None
    seconds, micros = _TIMEVAL.unpack_from(kinfo)
    return seconds + micros / 1e6 if seconds > 0 else None


def _darwin_age(pid: int | None) -> float | None:
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        ctl_kern, kern_proc, kern_proc_pid = 1, 14, 1
        mib = (ctypes.c_int * 4)(ctl_kern, kern_proc, kern_proc_pid, pid or os.getpid())
        buf = ctypes.create_string_buffer(_KINFO_PROC_SIZE)
        size = ctypes.c_size_t(_KINFO_PROC_SIZE)
        if libc.sysctl(mib, 4, buf, ctypes.byref(size), None, 0) != 0:
            return None
        started = darwin_start_from_kinfo(buf.raw[: size.value])
    except (OSError, AttributeError, TypeError):
        return None
    return None if started is None else time.time() - started


def windows_start_from_filetime(filetime: int) -> float:
    """A Windows FILETIME (100 ns ticks since 1601) as seconds since the Unix epoch."""
    return filetime / 1e7 - _WINDOWS_EPOCH_OFFSET


def _windows_age(pid: int | None) -> float | None:
    try:
        import ctypes
        from ctypes import wintypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        query_limited_information = 0x1000
        handle = (kernel32.GetCurrentProcess() if pid is None
                  else kernel32.OpenProcess(query_limited_information, False, pid))
        if not handle:
            return None
        times = [wintypes.FILETIME() for _ in range(4)]
        ok = kernel32.GetProcessTimes(handle, *(ctypes.byref(t) for t in times))
        if pid is not None:
            kernel32.CloseHandle(handle)
        if not ok:
            return None
        created = times[0].dwHighDateTime << 32 | times[0].dwLowDateTime
    except (OSError, AttributeError, ImportError, ValueError):
        return None
    return time.time() - windows_start_from_filetime(created)
