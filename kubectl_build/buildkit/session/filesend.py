"""FileSend: the daemon streams export results back to us.

tar/oci/docker exporters send raw byte chunks that we append to the destination
as they arrive; the local exporter speaks the fsutil packet protocol with the
daemon as sender, and we recreate the tree under the destination directory.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import grpc

from kubectl_build._proto import fsutil_pb2
from kubectl_build.buildkit.session.service import metadata_values
from kubectl_build.buildkit.wire import decode_bytes_message, identity

MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_TYPE = 0x8F280000


@dataclass(frozen=True)
class ExportTarget:
    """Where one exporter's stream goes: a file, '-' for stdout, or a directory."""

    kind: str  # "file" or "dir"
    dest: str


class FileSendService:
    """moby.filesync.v1.FileSend, routed by exporter id."""

    name = "moby.filesync.v1.FileSend"

    def __init__(self, targets: Mapping[int, ExportTarget]) -> None:
        self.targets = dict(targets)

    def handlers(self) -> Mapping[str, grpc.RpcMethodHandler[Any, Any]]:
        """Method name → handler."""
        return {
            "DiffCopy": grpc.stream_stream_rpc_method_handler(
                self.diff_copy, request_deserializer=identity, response_serializer=identity
            )
        }

    def diff_copy(self, requests: Iterator[bytes],
                  context: grpc.ServicerContext) -> Iterator[bytes]:
        """Receive one exporter's result."""
        ids = metadata_values(context, "buildkit-attachable-exporter-id")
        target = self.targets.get(int(ids[0]) if ids else 0)
        if target is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no export target for exporter {ids!r}")
        assert target is not None
        try:
            if target.kind == "dir":
                yield from receive_tree(requests, target.dest)
            else:
                _write_stream(requests, target.dest)
        except OSError as err:
            context.abort(grpc.StatusCode.INTERNAL, f"writing {target.dest}: {err.strerror}")


def _open_dest(dest: str) -> BinaryIO:
    if dest == "-":
        return sys.stdout.buffer
    return open(dest, "wb")


def _write_stream(requests: Iterator[bytes], dest: str) -> None:
    out = _open_dest(dest)
    try:
        for message in requests:
            data = decode_bytes_message(message)
            if data:
                out.write(data)
    finally:
        if out is sys.stdout.buffer:
            out.flush()
        else:
            out.close()


def _safe_join(root: str, rel: bytes) -> str:
    path = os.path.normpath(os.path.join(root, os.fsdecode(rel)))
    if path != root and not path.startswith(root + os.sep):
        raise OSError(0, f"path {rel!r} escapes the destination")
    return path


class _TreeReceiver:
    """Recreate the daemon's listing under root; request regular files."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.files: dict[int, tuple[str, fsutil_pb2.Stat]] = {}
        self.open: dict[int, BinaryIO] = {}
        self.next_id = 0
        self.dirs: list[tuple[str, fsutil_pb2.Stat]] = []

    def on_stat(self, stat: fsutil_pb2.Stat) -> bytes | None:
        file_id = self.next_id
        self.next_id += 1
        path = _safe_join(self.root, stat.path)
        if stat.mode & MODE_DIR:
            os.makedirs(path, exist_ok=True)
            self.dirs.append((path, stat))
        elif stat.mode & MODE_SYMLINK:
            if os.path.lexists(path):
                os.unlink(path)
            os.symlink(os.fsdecode(stat.linkname), path)
        elif stat.mode & MODE_TYPE == 0:
            if stat.linkname:
                os.link(_safe_join(self.root, stat.linkname), path)
                return None
            self.files[file_id] = (path, stat)
            self.open[file_id] = open(path, "wb")  # noqa: SIM115 - closed on empty DATA
            return fsutil_pb2.Packet(type=fsutil_pb2.PACKET_REQ, id=file_id).SerializeToString()
        return None

    def on_data(self, file_id: int, data: bytes) -> None:
        handle = self.open.get(file_id)
        if handle is None:
            return
        if data:
            handle.write(data)
            return
        handle.close()
        del self.open[file_id]
        path, stat = self.files[file_id]
        os.chmod(path, stat.mode & 0o7777)
        os.utime(path, ns=(stat.mod_time, stat.mod_time))

    def finish(self) -> None:
        for path, stat in reversed(self.dirs):
            os.chmod(path, stat.mode & 0o7777)
            os.utime(path, ns=(stat.mod_time, stat.mod_time))


def receive_tree(requests: Iterator[bytes], dest: str) -> Iterator[bytes]:
    """Receive an fsutil listing + data into dest (the local exporter)."""
    os.makedirs(dest, exist_ok=True)
    receiver = _TreeReceiver(dest)
    listing_done = False
    for raw in requests:
        packet = fsutil_pb2.Packet.FromString(raw)
        if packet.type == fsutil_pb2.PACKET_STAT:
            if not packet.HasField("stat"):
                listing_done = True
            elif (req := receiver.on_stat(packet.stat)) is not None:
                yield req
        elif packet.type == fsutil_pb2.PACKET_DATA:
            receiver.on_data(packet.id, packet.data)
        elif packet.type == fsutil_pb2.PACKET_ERR:
            raise OSError(0, packet.data.decode("utf-8", "replace"))
        if listing_done and not receiver.open:
            receiver.finish()
            yield fsutil_pb2.Packet(type=fsutil_pb2.PACKET_FIN).SerializeToString()
            listing_done = False
