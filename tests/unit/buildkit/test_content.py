"""The session's content service, served by a real gRPC server over a unix socket.

The daemon's side is containerd's content proxy client; here a grpcio stub plays it, with
the store named in the same request header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from kubectl_build._proto import content_pb2 as pb
from kubectl_build._proto import content_pb2_grpc
from kubectl_build.buildkit.session.content import STORE_HEADER, ContentService
from kubectl_build.ocilayout.store import LayoutStore

DATA = b"layer bytes " * 100_000  # 1.2 MB: more than one Read message
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()
AT_CACHE = ((STORE_HEADER, "local:/cache"),)
Stub = content_pb2_grpc.ContentStub


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def stub(tmp_path: Path, layout: Path) -> Iterator[Stub]:
    service = ContentService({"local:/cache": LayoutStore(layout)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service.name, service.handlers())])
    address = f"unix:{tmp_path / 'content.sock'}"
    server.add_insecure_port(address)
    server.start()
    with grpc.insecure_channel(address) as channel:
        yield content_pb2_grpc.ContentStub(channel)
    server.stop(None)


def _write(stub: Stub, *messages: pb.WriteContentRequest) -> list[pb.WriteContentResponse]:
    return list(stub.Write(iter(messages), metadata=AT_CACHE, timeout=10))


def _chunks(ref: str, data: bytes, size: int = 300_000) -> list[pb.WriteContentRequest]:
    return [pb.WriteContentRequest(action=pb.WRITE, ref=ref, offset=at, data=data[at:at + size])
            for at in range(0, len(data), size)]


def test_a_written_blob_is_committed_verified_and_read_back(stub: Stub, layout: Path) -> None:
    commit = pb.WriteContentRequest(action=pb.COMMIT, ref="layer", total=len(DATA), expected=DIGEST,
                                    offset=len(DATA))
    responses = _write(stub, *_chunks("layer", DATA), commit)
    assert [r.offset for r in responses] == [300_000, 600_000, 900_000, 1_200_000, 1_200_000]
    assert responses[-1].action == pb.COMMIT and responses[-1].digest == DIGEST
    blob = layout / "blobs" / "sha256" / DIGEST.removeprefix("sha256:")
    assert blob.read_bytes() == DATA and blob.stat().st_mode & 0o777 == 0o444
    assert list((layout / "ingest").iterdir()) == []
    assert stub.Info(pb.InfoRequest(digest=DIGEST), metadata=AT_CACHE).info.size == len(DATA)
    parts = list(stub.Read(pb.ReadContentRequest(digest=DIGEST), metadata=AT_CACHE))
    assert [p.offset for p in parts] == [0, 1 << 20] and b"".join(p.data for p in parts) == DATA
    window = list(stub.Read(pb.ReadContentRequest(digest=DIGEST, offset=10, size=5), metadata=AT_CACHE))
    assert [(p.offset, p.data) for p in window] == [(0, DATA[10:15])]
    listed = [i.digest for r in stub.List(pb.ListContentRequest(), metadata=AT_CACHE) for i in r.info]
    assert listed == [DIGEST]


def test_a_commit_that_does_not_match_fails(stub: Stub) -> None:
    for bad in (pb.WriteContentRequest(action=pb.COMMIT, ref="a", data=b"abc", expected=DIGEST),
                pb.WriteContentRequest(action=pb.COMMIT, ref="b", data=b"abc", total=4)):
        with pytest.raises(grpc.RpcError) as failed:
            _write(stub, bad)
        assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION, failed.value.details()
        assert "unexpected commit" in (failed.value.details() or "")


def test_an_existing_digest_is_already_there(stub: Stub) -> None:
    _write(stub, pb.WriteContentRequest(action=pb.COMMIT, ref="one", data=DATA, expected=DIGEST))
    with pytest.raises(grpc.RpcError) as failed:
        _write(stub, pb.WriteContentRequest(action=pb.STAT, ref="two", expected=DIGEST))
    assert failed.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_an_interrupted_write_resumes_where_it_stopped(stub: Stub) -> None:
    _write(stub, *_chunks("big", DATA)[:2])  # the stream ends without a commit
    status = stub.Status(pb.StatusRequest(ref="big"), metadata=AT_CACHE).status
    assert (status.ref, status.offset) == ("big", 600_000)
    statuses = stub.ListStatuses(pb.ListStatusesRequest(), metadata=AT_CACHE).statuses
    assert [s.ref for s in statuses] == ["big"]
    commit = pb.WriteContentRequest(action=pb.COMMIT, ref="big", expected=DIGEST, offset=len(DATA))
    stat, *_, done = _write(stub, pb.WriteContentRequest(action=pb.STAT, ref="big"),
                            *_chunks("big", DATA)[2:], commit)
    assert stat.offset == 600_000
    assert stat.digest == "sha256:" + hashlib.sha256(DATA[:600_000]).hexdigest()
    assert done.digest == DIGEST
    with pytest.raises(grpc.RpcError) as gone:
        stub.Status(pb.StatusRequest(ref="big"), metadata=AT_CACHE)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_write_at_the_wrong_offset_is_out_of_range(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        _write(stub, pb.WriteContentRequest(action=pb.WRITE, ref="x", offset=7, data=b"late"))
    assert failed.value.code() == grpc.StatusCode.OUT_OF_RANGE


def test_abort_drops_a_write(stub: Stub) -> None:
    _write(stub, *_chunks("dropped", DATA)[:1])
    stub.Abort(pb.AbortRequest(ref="dropped"), metadata=AT_CACHE)
    assert list(stub.ListStatuses(pb.ListStatusesRequest(), metadata=AT_CACHE).statuses) == []
    with pytest.raises(grpc.RpcError) as again:
        stub.Abort(pb.AbortRequest(ref="dropped"), metadata=AT_CACHE)
    assert again.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(("metadata", "code", "details"), [
    ((), grpc.StatusCode.INVALID_ARGUMENT, f'request lacks metadata "{STORE_HEADER}"'),
    (((STORE_HEADER, "export"),), grpc.StatusCode.NOT_FOUND, "unknown store export"),
])
def test_the_store_must_be_named_and_known(stub: Stub, metadata: tuple[tuple[str, str], ...],
                                           code: grpc.StatusCode, details: str) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        stub.Info(pb.InfoRequest(digest=DIGEST), metadata=metadata)
    assert (failed.value.code(), failed.value.details()) == (code, details)


def test_bad_and_missing_digests(stub: Stub) -> None:
    cases = (("sha256:xyz", grpc.StatusCode.INVALID_ARGUMENT), (DIGEST, grpc.StatusCode.NOT_FOUND))
    for digest, code in cases:
        with pytest.raises(grpc.RpcError) as failed:
            stub.Info(pb.InfoRequest(digest=digest), metadata=AT_CACHE)
        assert failed.value.code() == code
