"""FileSend: what the daemon's exporters send back, written where the user asked."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from kubectl_build._proto import fsutil_pb2
from kubectl_build.buildkit.session.filesend import (
    MODE_DIR,
    MODE_SYMLINK,
    ExportTarget,
    FileSendService,
    receive_tree,
)
from kubectl_build.buildkit.session.h2stream import AbortError, RpcStream
from kubectl_build.buildkit.wire import encode_bytes_message

MTIME = 1_700_000_000 * 10**9


def _diff_copy(service: FileSendService, requests: Iterator[bytes],
               headers: list[tuple[str, str]]) -> list[bytes]:
    return list(service.diff_copy(requests, RpcStream(1, headers)))  # type: ignore[arg-type]


def _stat(path: str, mode: int, linkname: str = "") -> bytes:
    return fsutil_pb2.Packet(type=fsutil_pb2.PACKET_STAT, stat=fsutil_pb2.Stat(
        path=path.encode(), mode=mode, mod_time=MTIME, linkname=linkname.encode())).SerializeToString()


def _data(file_id: int, data: bytes) -> bytes:
    return fsutil_pb2.Packet(type=fsutil_pb2.PACKET_DATA, id=file_id, data=data).SerializeToString()


END_OF_LISTING = fsutil_pb2.Packet(type=fsutil_pb2.PACKET_STAT).SerializeToString()


def test_a_tar_stream_is_appended_to_its_file_by_exporter_id(tmp_path: Path) -> None:
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    service = FileSendService({0: ExportTarget("file", str(first)), 1: ExportTarget("file", str(second))})
    chunks = iter([encode_bytes_message(b"abc"), encode_bytes_message(b""),
                   encode_bytes_message(b"def")])
    assert _diff_copy(service, chunks, [("buildkit-attachable-exporter-id", "1")]) == []
    assert second.read_bytes() == b"abcdef" and not first.exists()


def test_an_unknown_exporter_is_not_found(tmp_path: Path) -> None:
    service = FileSendService({0: ExportTarget("file", str(tmp_path / "a.tar"))})
    with pytest.raises(AbortError) as info:
        _diff_copy(service, iter(()), [("buildkit-attachable-exporter-id", "3")])
    assert info.value.code == grpc.StatusCode.NOT_FOUND


def test_an_unwritable_destination_is_an_internal_error(tmp_path: Path) -> None:
    service = FileSendService({0: ExportTarget("file", str(tmp_path / "missing-dir" / "a.tar"))})
    with pytest.raises(AbortError) as info:
        _diff_copy(service, iter([encode_bytes_message(b"x")]), [])
    assert info.value.code == grpc.StatusCode.INTERNAL
    assert info.value.details.startswith(f"writing {tmp_path / 'missing-dir' / 'a.tar'}: ")


def test_the_local_exporter_recreates_the_tree(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    packets = iter([
        _stat("bin", MODE_DIR | 0o750),
        _stat("bin/tool", 0o755),
        _stat("bin/tool-link", 0o644, linkname="bin/tool"),  # hard link to an earlier file
        _stat("current", MODE_SYMLINK | 0o777, linkname="bin/tool"),
        _stat("readme", 0o600),
        END_OF_LISTING,
        _data(1, b"#!/bin/sh\n"), _data(1, b"echo hi\n"), _data(1, b""),
        _data(4, b""),
    ])
    replies = [fsutil_pb2.Packet.FromString(r) for r in receive_tree(packets, str(dest))]
    assert [(r.type, r.id) for r in replies] == [
        (fsutil_pb2.PACKET_REQ, 1), (fsutil_pb2.PACKET_REQ, 4), (fsutil_pb2.PACKET_FIN, 0)]
    tool = dest / "bin" / "tool"
    assert tool.read_bytes() == b"#!/bin/sh\necho hi\n"
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755 and tool.stat().st_mtime_ns == MTIME
    assert os.path.samefile(tool, dest / "bin" / "tool-link")
    assert os.readlink(dest / "current") == "bin/tool"
    assert (dest / "readme").read_bytes() == b""
    assert stat.S_IMODE((dest / "readme").stat().st_mode) == 0o600
    bin_dir = (dest / "bin").stat()
    assert stat.S_IMODE(bin_dir.st_mode) == 0o750 and bin_dir.st_mtime_ns == MTIME


def test_a_path_escaping_the_destination_is_refused(tmp_path: Path) -> None:
    service = FileSendService({0: ExportTarget("dir", str(tmp_path / "out"))})
    with pytest.raises(AbortError) as info:
        _diff_copy(service, iter([_stat("../outside", 0o644)]), [])
    assert info.value.code == grpc.StatusCode.INTERNAL
    assert "escapes the destination" in info.value.details
    assert not (tmp_path / "outside").exists()


def test_an_error_packet_from_the_daemon_ends_the_transfer(tmp_path: Path) -> None:
    service = FileSendService({0: ExportTarget("dir", str(tmp_path / "out"))})
    failure = fsutil_pb2.Packet(type=fsutil_pb2.PACKET_ERR, data=b"disk full").SerializeToString()
    with pytest.raises(AbortError) as info:
        _diff_copy(service, iter([failure]), [])
    assert info.value.details.endswith("disk full")
