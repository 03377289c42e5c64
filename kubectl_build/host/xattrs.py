"""Extended attributes of a path, not following symlinks, on each client OS.

Go's context sender reads them on Linux and macOS (skipping ``com.apple.*``) and not on
Windows. CPython has ``os.listxattr`` on Linux only, so macOS goes through libc's
``listxattr``/``getxattr`` with ``XATTR_NOFOLLOW``; Windows has none to read.
Errors are OSError with the errno the OS gave, as ``os.listxattr`` raises them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from typing import Protocol

_DARWIN_XATTR_NOFOLLOW = 0x0001


class XattrReader(Protocol):
    """Names and values of a path's extended attributes."""

    def names(self, path: bytes) -> list[str]:
        """The attribute names of ``path`` itself (a symlink's own, not its target's)."""
        ...

    def value(self, path: bytes, name: str) -> bytes:
        """One attribute's value."""
        ...


class LinuxXattrs:
    """The os module's own calls (Linux only)."""

    def names(self, path: bytes) -> list[str]:  # noqa: D102 - XattrReader's
        return os.listxattr(path, follow_symlinks=False)

    def value(self, path: bytes, name: str) -> bytes:  # noqa: D102 - XattrReader's
        return os.getxattr(path, name, follow_symlinks=False)


class DarwinXattrs:
    """libc's calls with macOS's signatures (an options argument, a position for getxattr)."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self._list = libc.listxattr
        self._list.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
        self._list.restype = ctypes.c_ssize_t
        self._get = libc.getxattr
        self._get.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t,
                              ctypes.c_uint32, ctypes.c_int]  # fmt: skip
        self._get.restype = ctypes.c_ssize_t

    def names(self, path: bytes) -> list[str]:  # noqa: D102 - XattrReader's
        raw = self._sized(path, lambda buf, size: self._list(path, buf, size, _DARWIN_XATTR_NOFOLLOW))
        return [os.fsdecode(name) for name in raw.split(b"\0") if name]

    def value(self, path: bytes, name: str) -> bytes:  # noqa: D102 - XattrReader's
        key = os.fsencode(name)
        return self._sized(path, lambda buf, size: self._get(path, key, buf, size, 0, _DARWIN_XATTR_NOFOLLOW))

    @staticmethod
    def _sized(path: bytes, call: _Call) -> bytes:
        """Ask for the size, then the bytes; again if it grew in between (ERANGE)."""
        for _ in range(8):
            size = call(None, 0)
            if size < 0:
                break
            if size == 0:
                return b""
            buf = ctypes.create_string_buffer(size)
            got = call(buf, size)
            if got >= 0:
                return buf.raw[:got]
            if ctypes.get_errno() != errno.ERANGE:
                break
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), os.fsdecode(path))


class NoXattrs:
    """Windows: the Go sender reads none there."""

    def names(self, path: bytes) -> list[str]:  # noqa: D102 - XattrReader's
        return []

    def value(self, path: bytes, name: str) -> bytes:  # noqa: D102 - XattrReader's
        raise OSError(0, "no extended attributes on this OS", os.fsdecode(path))


class _Call(Protocol):
    def __call__(self, buf: ctypes.Array[ctypes.c_char] | None, size: int, /) -> int: ...



def reader() -> XattrReader:
    """The reader for the OS this runs on."""
    if sys.platform == "darwin":
        return DarwinXattrs()
    if hasattr(os, "listxattr"):
        return LinuxXattrs()
    return NoXattrs()
