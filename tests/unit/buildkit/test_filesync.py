"""The FileSync sender's packet stream, driven the way the daemon drives it (no daemon)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubectl_build._proto import fsutil_pb2
from kubectl_build.buildkit.session import filesync
from kubectl_build.buildkit.session.filesync import FileSyncService, SyncedDir, _Transfer
from kubectl_build.buildkit.session.h2stream import Framed, RpcStream
from kubectl_build.context.walk import WalkFilter

Packet = fsutil_pb2.Packet


def _packets(item: Framed) -> list[fsutil_pb2.Packet]:
    blob = b"".join(bytes(p) for p in item.parts)
    out = []
    while blob:
        assert blob[0] == 0
        size = int.from_bytes(blob[1:5], "big")
        out.append(Packet.FromString(blob[5 : 5 + size]))
        blob = blob[5 + size :]
    return out


def _req(file_id: int) -> bytes:
    return Packet(type=fsutil_pb2.PACKET_REQ, id=file_id).SerializeToString()


FIN = Packet(type=fsutil_pb2.PACKET_FIN).SerializeToString()


def _start(root: Path, predicted: bool) -> _Transfer:
    synced = SyncedDir(str(root), predicted=WalkFilter() if predicted else None)
    service = FileSyncService({"context": synced})
    context = RpcStream(1, [("dir-name", "context")])
    transfer = service.diff_copy(context)  # type: ignore[arg-type]
    return transfer


def _listing(responses: Iterator[Framed]) -> tuple[list[fsutil_pb2.Packet], list[fsutil_pb2.Packet]]:
    """Packets up to the end of the listing, and any that came with it."""
    stats: list[fsutil_pb2.Packet] = []
    while True:
        packets = _packets(next(responses))
        for index, packet in enumerate(packets):
            if packet.type == fsutil_pb2.PACKET_STAT and not packet.HasField("stat"):
                return stats, packets[index + 1 :]
            stats.append(packet)


def _files(stats: list[fsutil_pb2.Packet]) -> dict[int, str]:
    return {i: bytes(p.stat.path).decode() for i, p in enumerate(stats)
            if not p.stat.mode & filesync.MODE_TYPE}


def _data(packets: list[fsutil_pb2.Packet]) -> dict[int, bytes]:
    """File id -> content, checking every file ends with an empty DATA packet."""
    open_files: dict[int, bytearray] = {}
    done: dict[int, bytes] = {}
    for packet in packets:
        if packet.type != fsutil_pb2.PACKET_DATA:
            continue
        assert packet.id not in done
        if packet.data:
            open_files.setdefault(packet.id, bytearray()).extend(packet.data)
        else:
            done[packet.id] = bytes(open_files.pop(packet.id, b""))
    assert not open_files
    return done


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "small.txt").write_bytes(b"hello")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "big.bin").write_bytes(os.urandom(2 * filesync.CHUNK + 123))
    (tmp_path / "exact.bin").write_bytes(os.urandom(filesync.CHUNK))
    return tmp_path


@pytest.mark.parametrize("predicted", [True, False])
def test_requested_files_arrive_whole_then_fin(tree: Path, predicted: bool) -> None:
    transfer = _start(tree, predicted)
    responses = transfer.responses()
    stats, rest = _listing(responses)
    assert [bytes(p.stat.path).decode() for p in stats] == [
        "big.bin", "empty", "exact.bin", "sub", "sub/small.txt"]
    assert not rest
    files = _files(stats)
    transfer.on_messages([_req(i) for i in files])
    transfer.on_messages([FIN])
    packets = [p for item in responses for p in _packets(item)]
    assert packets[-1].type == fsutil_pb2.PACKET_FIN
    got = _data(packets)
    assert {files[i]: content for i, content in got.items()} == {
        path: (tree / path).read_bytes() for path in files.values()}
    # Large files go in CHUNK-sized packets, never more.
    assert max(len(p.data) for p in packets) == filesync.CHUNK
    assert transfer.stats.bytes_sent == sum((tree / p).stat().st_size for p in files.values())


def test_a_file_that_grew_since_the_listing_is_sent_whole(tree: Path) -> None:
    transfer = _start(tree, predicted=True)
    responses = transfer.responses()
    stats, _ = _listing(responses)
    (tree / "sub" / "small.txt").write_bytes(b"hello, and more")
    (tree / "empty").write_bytes(b"now with data")
    ids = {path: i for i, path in _files(stats).items()}
    transfer.on_messages([_req(ids["sub/small.txt"]), _req(ids["empty"]), FIN])
    got = _data([p for item in responses for p in _packets(item)])
    assert got == {ids["sub/small.txt"]: b"hello, and more", ids["empty"]: b"now with data"}


def test_unreadable_or_vanished_file_arrives_empty(tree: Path) -> None:
    transfer = _start(tree, predicted=True)
    responses = transfer.responses()
    stats, _ = _listing(responses)
    ids = {path: i for i, path in _files(stats).items()}
    (tree / "sub" / "small.txt").unlink()
    transfer.on_messages([_req(ids["sub/small.txt"]), FIN])
    assert _data([p for item in responses for p in _packets(item)]) == {ids["sub/small.txt"]: b""}


def test_requests_are_answered_between_slices_of_a_long_listing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filesync, "LIST_SLICE", 4096)
    for i in range(500):  # about 15 KB of STAT packets: several slices
        (tmp_path / f"f{i:04d}").write_bytes(b"x%d" % i)
    transfer = _start(tmp_path, predicted=True)
    responses = transfer.responses()
    first = _packets(next(responses))
    assert 0 < len(first) < 500
    transfer.on_messages([_req(0)])
    second = _packets(next(responses))
    # The data for file 0 leaves with the next slice, not after the whole listing.
    assert _data(second) == {0: b"x0"}
    assert all(p.HasField("stat") for p in second if p.type == fsutil_pb2.PACKET_STAT)


def test_daemon_closing_without_fin_ends_the_stream(tree: Path) -> None:
    transfer = _start(tree, predicted=False)
    responses = transfer.responses()
    _listing(responses)
    transfer.on_end()
    assert list(responses) == []


def test_garbage_from_the_daemon_ends_the_stream(tree: Path) -> None:
    transfer = _start(tree, predicted=True)
    responses = transfer.responses()
    _listing(responses)
    transfer.on_messages([b"\xff\xff\xff"])
    assert list(responses) == []


def test_unknown_dir_is_refused(tree: Path) -> None:
    service = FileSyncService({"context": SyncedDir(str(tree))})
    with pytest.raises(Exception, match="no access allowed"):
        service.diff_copy(RpcStream(1, [("dir-name", "other")]))  # type: ignore[arg-type]


def test_a_failing_walk_is_reported_to_the_daemon(tmp_path: Path) -> None:
    transfer = _start(tmp_path / "missing", predicted=False)
    packets = [p for item in transfer.responses() for p in _packets(item)]
    assert [p.type for p in packets] == [fsutil_pb2.PACKET_ERR]
    assert b"listing" in packets[0].data


def test_the_walk_waits_while_too_many_entries_are_unsent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filesync, "LIST_SLICE", 64)  # about two entries a slice
    for i in range(100):
        (tmp_path / f"f{i:03d}").write_bytes(b"")
    listing = filesync.Listing(str(tmp_path), WalkFilter(), limit=10)
    deadline = time.monotonic() + 5
    with listing.cond:
        assert listing.cond.wait_for(lambda: listing.waiting >= 10, timeout=5)
        # The walk checks for room before each slice, under this lock: nothing taken, it
        # cannot add more than the slice that crossed the limit, however long we wait.
        assert 10 <= listing.waiting <= 12
    taken = 0
    while taken < 100:
        assert time.monotonic() < deadline
        with listing.cond:
            piece = listing.take()
            if piece is None:
                listing.cond.wait(0.1)
                continue
        taken += piece[1]
    assert taken == 100 and listing.error is None
