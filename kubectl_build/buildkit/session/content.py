"""containerd.services.content.v1.Content: the client's OCI layout directories, to the daemon.

BuildKit proxies containerd's content API over the session to read and write blobs on the
client's disk. Each request names its store in the ``buildkit-attachable-store-id`` header:
``local:<dest|src>`` for a local cache, ``export`` for an OCI/Docker layout output,
``oci:<key>`` for an ``oci-layout://`` build context. Semantics follow containerd's
content server (first Write message names the ref; every message gets one response; a
commit verifies size and digest; an existing digest is AlreadyExists).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import grpc
from google.protobuf import empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp

from kubectl_build._proto import content_pb2
from kubectl_build.buildkit.session.service import metadata_values
from kubectl_build.ocilayout.store import BlobInfo, ContentError, Ingest, LayoutStore, WriteStatus

STORE_HEADER = "buildkit-attachable-store-id"
READ_CHUNK = 1 << 20  # containerd's content server sends 1 MiB per message
_CODES = {
    "not_found": grpc.StatusCode.NOT_FOUND,
    "already_exists": grpc.StatusCode.ALREADY_EXISTS,
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "failed_precondition": grpc.StatusCode.FAILED_PRECONDITION,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "out_of_range": grpc.StatusCode.OUT_OF_RANGE,
}
_pb = content_pb2


def _timestamp(ns: int) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp


def _info(blob: BlobInfo) -> content_pb2.Info:
    return _pb.Info(digest=blob.digest, size=blob.size, created_at=_timestamp(blob.created_ns),
                    updated_at=_timestamp(blob.created_ns))


def _status(status: WriteStatus) -> content_pb2.Status:
    return _pb.Status(started_at=_timestamp(status.started_ns), updated_at=_timestamp(status.updated_ns),
                      ref=status.ref, offset=status.offset, total=status.total, expected=status.expected)


def _fail(context: grpc.ServicerContext, err: ContentError) -> None:
    context.abort(_CODES.get(err.kind, grpc.StatusCode.UNKNOWN), err.message)


class ContentService:
    """The content API over named layout stores."""

    name = "containerd.services.content.v1.Content"

    def __init__(self, stores: Mapping[str, LayoutStore]) -> None:
        self.stores = dict(stores)

    def handlers(self) -> Mapping[str, grpc.RpcMethodHandler[Any, Any]]:
        """Method name → handler."""
        def unary(fn: Any, request: Any, response: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(
                fn, request_deserializer=request.FromString, response_serializer=response.SerializeToString)

        def streamed(fn: Any, request: Any, response: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_stream_rpc_method_handler(
                fn, request_deserializer=request.FromString, response_serializer=response.SerializeToString)

        empty = empty_pb2.Empty
        return {
            "Info": unary(self.info, _pb.InfoRequest, _pb.InfoResponse),
            "Update": unary(self.update, _pb.UpdateRequest, _pb.UpdateResponse),
            "List": streamed(self.list, _pb.ListContentRequest, _pb.ListContentResponse),
            "Delete": unary(self.delete, _pb.DeleteContentRequest, empty),
            "Read": streamed(self.read, _pb.ReadContentRequest, _pb.ReadContentResponse),
            "Status": unary(self.status, _pb.StatusRequest, _pb.StatusResponse),
            "ListStatuses": unary(self.list_statuses, _pb.ListStatusesRequest, _pb.ListStatusesResponse),
            "Write": grpc.stream_stream_rpc_method_handler(
                self.write, request_deserializer=_pb.WriteContentRequest.FromString,
                response_serializer=_pb.WriteContentResponse.SerializeToString),
            "Abort": unary(self.abort, _pb.AbortRequest, empty),
        }

    def _store(self, context: grpc.ServicerContext) -> LayoutStore:
        ids = metadata_values(context, STORE_HEADER)
        if not ids:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f'request lacks metadata "{STORE_HEADER}"')
        store = self.stores.get(ids[0])
        if store is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown store {ids[0]}")
        assert store is not None
        return store

    def info(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Size and commit time of a blob."""
        try:
            return _pb.InfoResponse(info=_info(self._store(context).info(request.digest)))
        except ContentError as err:
            _fail(context, err)

    def update(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Labels are not kept: like containerd's local store without a label store."""
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "update not supported on immutable content store")

    def list(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        """Every blob, 100 per message."""
        blobs = [_info(b) for b in self._store(context).walk()]
        for start in range(0, len(blobs), 100):
            yield _pb.ListContentResponse(info=blobs[start:start + 100])

    def delete(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Remove a blob."""
        try:
            self._store(context).delete(request.digest)
        except ContentError as err:
            _fail(context, err)
        return empty_pb2.Empty()

    def read(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        """A blob's bytes from ``offset``, ``size`` of them (0: to the end)."""
        store = self._store(context)
        try:
            size = store.info(request.digest).size
            blob = store.open_blob(request.digest)
        except ContentError as err:
            _fail(context, err)
            return
        with blob:
            offset = max(request.offset, 0)
            if offset > size:
                context.abort(grpc.StatusCode.OUT_OF_RANGE, f"read past object length {size} bytes")
            end = size if request.size <= 0 or offset + request.size > size else offset + request.size
            blob.seek(offset)
            sent = 0
            while offset + sent < end:
                chunk = blob.read(min(READ_CHUNK, end - offset - sent))
                if not chunk:
                    break
                yield _pb.ReadContentResponse(offset=sent, data=chunk)
                sent += len(chunk)

    def status(self, request: Any, context: grpc.ServicerContext) -> Any:
        """A write in progress."""
        try:
            return _pb.StatusResponse(status=_status(self._store(context).status(request.ref)))
        except ContentError as err:
            _fail(context, err)

    def list_statuses(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Every write in progress."""
        return _pb.ListStatusesResponse(statuses=[_status(s) for s in self._store(context).statuses()])

    def abort(self, request: Any, context: grpc.ServicerContext) -> Any:
        """Drop a write in progress."""
        try:
            self._store(context).abort(request.ref)
        except ContentError as err:
            _fail(context, err)
        return empty_pb2.Empty()

    def write(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        """One write: STAT, WRITE and COMMIT messages, one response each."""
        store = self._store(context)
        first = next(requests, None)
        if first is None:
            return
        try:
            ingest = store.writer(first.ref, first.total, first.expected)
        except ContentError as err:
            _fail(context, err)
            return
        try:
            yield from _write_messages(store, ingest, first, requests)
        except ContentError as err:
            _fail(context, err)
        finally:
            ingest.close()


def _write_messages(store: LayoutStore, ingest: Ingest, first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    total, expected = first.total, first.expected
    request: Any = first
    while request is not None:
        if request.expected:
            expected = request.expected
            if store.blob_path(expected).exists():
                store.abort(ingest.ref)
                raise ContentError("already_exists", f"blob with expected digest {expected} exists")
        total = request.total if request.total > 0 else total
        response = _pb.WriteContentResponse(action=request.action, offset=ingest.offset)
        if request.action == _pb.STAT:
            status = ingest.status()
            response.digest = ingest.digest()
            response.started_at.CopyFrom(_timestamp(status.started_ns))
            response.updated_at.CopyFrom(_timestamp(status.updated_ns))
            response.total = total
        else:
            _apply(ingest, request, total, expected)
            response.offset, response.digest = ingest.offset, ingest.digest()
        yield response
        if request.action == _pb.COMMIT:
            return
        request = next(rest, None)


def _apply(ingest: Ingest, request: Any, total: int, expected: str) -> None:
    """A WRITE or COMMIT message: append at the current offset, commit if asked."""
    if request.offset > 0 and request.offset != ingest.offset:
        raise ContentError("out_of_range",
                           f"write @{request.offset} must occur at current offset {ingest.offset}")
    if request.offset == 0 and ingest.offset > 0:
        ingest.truncate()
    if request.data:
        ingest.write(request.data)
    if request.action == _pb.COMMIT:
        ingest.commit(total, expected)
