"""Extended attributes on each client OS (kubectl_build.host.xattrs).

The macOS reader calls libc through ctypes with macOS's signatures. Linux's listxattr and
getxattr take the same leading arguments and ignore the extra ones, so on this machine it
reads real attributes through the same code a Mac runs (its XATTR_NOFOLLOW aside: the
files here are no symlinks).
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from kubectl_build.host import xattrs


@pytest.fixture
def tagged(tmp_path: Path) -> bytes:
    path = tmp_path / "f"
    path.write_text("x")
    os.setxattr(path, "user.small", b"1")
    os.setxattr(path, "user.big", b"\0\xff" * 900)
    return os.fsencode(path)


@pytest.mark.parametrize("reader", [xattrs.LinuxXattrs, xattrs.DarwinXattrs])
def test_names_and_values(reader: type[xattrs.XattrReader], tagged: bytes) -> None:
    read = reader()
    assert sorted(read.names(tagged)) == ["user.big", "user.small"]
    assert read.value(tagged, "user.small") == b"1"
    assert read.value(tagged, "user.big") == b"\0\xff" * 900


def test_the_macos_reader_reports_errors_as_oserror(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_text("x")
    read = xattrs.DarwinXattrs()
    assert read.names(os.fsencode(plain)) == []
    with pytest.raises(OSError) as missing:
        read.names(os.fsencode(tmp_path / "missing"))
    assert missing.value.errno == errno.ENOENT and missing.value.filename == str(tmp_path / "missing")
    with pytest.raises(OSError) as absent:
        read.value(os.fsencode(plain), "user.none")
    assert absent.value.errno == errno.ENODATA


@pytest.mark.parametrize(("client_os", "expected"), [("linux", xattrs.LinuxXattrs),
                                                      ("darwin", xattrs.DarwinXattrs)])
def test_each_os_gets_its_reader(client_os: str, expected: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", client_os)
    assert isinstance(xattrs.reader(), expected)


def test_windows_reads_none(tagged: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delattr(os, "listxattr")
    read = xattrs.reader()
    assert isinstance(read, xattrs.NoXattrs) and read.names(tagged) == []
