"""FileSync DiffCopy sender: streams a local directory to the daemon.

The daemon (receiver) gets our STAT listing, asks for the files it lacks with
REQ packets, and we answer with DATA. The listing is bounded while it queues and
file data is read only as fast as it is sent, so memory stays flat whatever the
context size.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError

from kubectl_build._proto import fsutil_pb2
from kubectl_build.buildkit.session.h2stream import Framed, InlineMethod, frame
from kubectl_build.buildkit.session.service import metadata_values
from kubectl_build.buildkit.wire import Buffer, encode_stat_packet, framed_data_header
from kubectl_build.context.walk import FileStat, WalkFilter, walk
from kubectl_build.host.facts import READ_BINARY

# DATA packet size. 32 KiB (Go's size) costs a third of the throughput in Python;
# much larger delays the daemon, which only writes a packet once it has all of it.
CHUNK = 256 << 10
# Bytes of response handed to the HTTP/2 layer at once (reads are paced by it).
BATCH_BYTES = 1 << 20
# Listing bytes sent between two looks at the daemon's requests (see _Transfer).
LIST_SLICE = 32 << 10
# Listed entries waiting unsent at most (about 40 bytes each).
PREFETCH_LIMIT = 200_000
MODE_TYPE = 0x8F280000

# A file the daemon may ask for: where to read it (b"" = send it empty), listed size.
Source: TypeAlias = tuple[bytes, int]


@dataclass(frozen=True)
class SyncedDir:
    """A local directory served under a dir-name (context, dockerfile, ...)."""

    path: str
    # Patterns the client itself applies on top of what the daemon asks for.
    extra_excludes: tuple[str, ...] = ()
    # The filter the daemon is expected to ask with; walked ahead of time when set.
    predicted: WalkFilter | None = None


@dataclass
class TransferStats:
    """Counters for benchmarks and --debug: what one build actually sent."""

    files_listed: int = 0
    files_sent: int = 0
    bytes_sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, files: int, size: int) -> None:
        """Record a sent file."""
        with self.lock:
            self.files_sent += files
            self.bytes_sent += size


def stat_packet(entry: FileStat) -> bytes:
    """Encode one STAT packet for an entry."""
    return encode_stat_packet(entry.path, entry.mode, entry.uid, entry.gid, entry.size,
                              entry.mod_time, entry.linkname, entry.devmajor, entry.devminor,
                              dict(entry.xattrs) if entry.xattrs else None)


class Listing:
    """The walk of one synced directory, framed into slices of STAT packets as it goes.

    Started before the daemon asks when its filters can be predicted: the daemon
    requests the context only after it has parsed the Dockerfile and resolved base
    images, and walking meanwhile takes the walk off the critical path. Started on
    request otherwise. Either way slices are sent while the walk goes on, and at
    most `limit` entries wait unsent, which bounds memory whatever the context size.
    """

    def __init__(self, root: str, flt: WalkFilter, limit: int = PREFETCH_LIMIT) -> None:
        self.root, self.flt, self.limit = os.path.abspath(root), flt, limit
        # Shared with the transfer that sends this listing: one condition to wait on.
        self.cond = threading.Condition()
        self.slices: deque[tuple[bytes, int]] = deque()  # (framed packets, entries)
        self.waiting = 0  # entries in slices
        self.sources: dict[int, Source] = {}
        self.error: str | None = None
        self.cancelled = False
        threading.Thread(target=self._run, name="kb-fs-walk", daemon=True).start()

    def _run(self) -> None:
        packets: list[bytes] = []
        size = 0
        try:
            for index, entry in enumerate(walk(self.root, self.flt)):
                if entry.mode & MODE_TYPE == 0 and not entry.linkname:
                    self.sources[index] = (entry.source, entry.size)
                packets.append(frame(stat_packet(entry)))
                size += len(packets[-1])
                if size >= LIST_SLICE:
                    if not self._publish(packets, len(packets)):
                        return
                    packets, size = [], 0
            # End of listing: a Packet with no stat.
            self._publish([*packets, frame(b"")], len(packets))
        except Exception as err:  # noqa: BLE001 - reported to the daemon, then raised locally
            with self.cond:
                self.error = f"listing {self.root}: {err}"
                self.cond.notify_all()

    def _publish(self, packets: list[bytes], entries: int) -> bool:
        blob = b"".join(packets)  # joined here, off the critical path
        with self.cond:
            while self.waiting >= self.limit and not self.cancelled:
                self.cond.wait()
            if self.cancelled:
                return False
            self.slices.append((blob, entries))
            self.waiting += entries
            self.cond.notify_all()
        return True

    def take(self) -> tuple[bytes, int] | None:
        """The next slice and how many entries it lists (call with cond held)."""
        if not self.slices:
            return None
        blob, entries = self.slices.popleft()
        self.waiting -= entries
        self.cond.notify_all()  # the walk may wait for room
        return blob, entries

    def cancel(self) -> None:
        """Stop the walk (it may be waiting for room)."""
        with self.cond:
            self.cancelled = True
            self.cond.notify_all()

    def matches(self, root: str, flt: WalkFilter) -> bool:
        """Whether this listing answers a request for root with flt."""
        return self.root == root and self.flt == flt


class _Transfer:
    """One DiffCopy call: the listing's walk, the daemon's requests, the response stream.

    The response generator itself reads the files the daemon asks for: every
    hand-over between threads costs futex calls and GIL switches, which dominate
    a context of many small files. Requests that arrive while it is busy are
    taken together and their data leaves in one batch, between two slices of
    the listing: the daemon asks for files while it still reads the listing, and
    their data must not wait behind all of it (a 20,000-file listing takes the
    daemon over a second to read).
    """

    def __init__(self, listing: Listing, stats: TransferStats) -> None:
        self.listing, self.stats = listing, stats
        self.cond = listing.cond
        self.wanted: deque[int] = deque()
        self.fin = False
        self.cancelled = threading.Event()

    def on_messages(self, messages: list[bytes]) -> None:
        """The daemon's packets, in the session's reading thread (never blocks)."""
        wanted: list[int] = []
        fin = failed = False
        for raw in messages:
            try:
                packet = fsutil_pb2.Packet.FromString(raw)
            except DecodeError:
                failed = True
                break
            if packet.type == fsutil_pb2.PACKET_REQ:
                wanted.append(packet.id)
            elif packet.type == fsutil_pb2.PACKET_FIN:
                fin = True
            elif packet.type == fsutil_pb2.PACKET_ERR:
                failed = True
        with self.cond:
            self.wanted.extend(wanted)
            self.fin = self.fin or fin
            if failed:
                self.cancelled.set()
            self.cond.notify_all()

    def on_end(self) -> None:
        """The daemon closed its side: without a FIN first, the transfer is abandoned."""
        if not self.fin:
            self.cancel()

    def cancel(self) -> None:
        """Stop everything: the call ended or the daemon gave up."""
        with self.cond:
            self.cancelled.set()
            self.cond.notify_all()
        self.listing.cancel()

    # -- the response stream (the RPC's own thread) ------------------------------

    def _next_work(self) -> tuple[tuple[bytes, int] | None, list[int], bool]:
        """Block until there is something to send; take the next slice and all requests."""
        listing = self.listing
        with self.cond:
            while not (listing.slices or self.wanted or self.fin or listing.error
                       or self.cancelled.is_set()):
                self.cond.wait()
            piece = listing.take()
            wanted = list(self.wanted)
            self.wanted.clear()
            return piece, wanted, self.fin and not wanted

    def responses(self) -> Iterator[Framed]:
        while True:
            piece, wanted, fin = self._next_work()
            if self.listing.error is not None:
                yield Framed((frame(fsutil_pb2.Packet(
                    type=fsutil_pb2.PACKET_ERR,
                    data=self.listing.error.encode()).SerializeToString()),))
                return
            if self.cancelled.is_set():
                return
            batch = _Batch()
            if piece is not None:
                batch.add(piece[0])
                self.stats.files_listed += piece[1]
            for file_id in wanted:
                yield from self._send_file(file_id, batch)
            if fin:
                batch.add(frame(fsutil_pb2.Packet(type=fsutil_pb2.PACKET_FIN).SerializeToString()))
            if batch.parts:
                yield batch.take()
            if fin:
                return

    def _send_file(self, file_id: int, batch: _Batch) -> Iterator[Framed]:
        """Add a file's DATA packets to batch, yielding whenever it is full."""
        source, size = self.listing.sources.get(file_id, (b"", 0))
        sent = 0
        if source:
            try:
                fd = os.open(source, READ_BINARY)
            except OSError:
                fd = -1  # like Go's sender: an unreadable file arrives empty
            try:
                # Ask for one byte more than the listing said: a small file then
                # comes in one read, and a short read of exactly its size is EOF.
                want = min(size + 1, CHUNK)
                while fd >= 0:
                    chunk = os.read(fd, want)
                    if not chunk:
                        break
                    sent += len(chunk)
                    batch.add(framed_data_header(file_id, len(chunk)), chunk)
                    if batch.size >= BATCH_BYTES:
                        yield batch.take()
                    if sent == size and size < want:
                        break
                    want = CHUNK
            except OSError:
                pass  # like Go's sender: what could be read is what arrives
            finally:
                if fd >= 0:
                    os.close(fd)
        self.stats.add(1, sent)
        batch.add(framed_data_header(file_id, 0))


class _Batch:
    """Buffers that leave together as one Framed item."""

    def __init__(self) -> None:
        self.parts: list[Buffer] = []
        self.size = 0

    def add(self, *buffers: Buffer) -> None:
        self.parts.extend(buffers)
        self.size += sum(map(len, buffers))

    def take(self) -> Framed:
        framed = Framed(tuple(self.parts))
        self.parts, self.size = [], 0
        return framed


class FileSyncService:
    """moby.filesync.v1.FileSync: serves the context and Dockerfile dirs."""

    name = "moby.filesync.v1.FileSync"

    def __init__(self, dirs: Mapping[str, SyncedDir]) -> None:
        self.dirs = dict(dirs)
        self.stats = TransferStats()
        self.listings = {name: Listing(d.path, d.predicted)
                         for name, d in self.dirs.items() if d.predicted is not None}

    def handlers(self) -> Mapping[str, grpc.RpcMethodHandler[Any, Any]]:
        """Method name → handler."""
        return {"DiffCopy": InlineMethod(self.diff_copy)}

    def diff_copy(self, context: grpc.ServicerContext) -> _Transfer:
        """Start serving one transfer of a local directory (in the session's reading thread)."""
        names = metadata_values(context, "dir-name")
        synced = self.dirs.get(names[0]) if names else None
        if synced is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no access allowed to dir {names!r}")
        assert synced is not None
        flt = WalkFilter(
            include_patterns=tuple(metadata_values(context, "include-patterns")),
            exclude_patterns=tuple(metadata_values(context, "exclude-patterns"))
            + synced.extra_excludes,
            follow_paths=tuple(metadata_values(context, "followpaths")),
        )
        root = os.path.abspath(synced.path)
        listing = self.listings.get(names[0])
        if listing is not None and listing.matches(root, flt):
            del self.listings[names[0]]  # one use: a later request walks afresh
        else:
            listing = Listing(root, flt)
        transfer = _Transfer(listing, self.stats)
        context.add_callback(transfer.cancel)
        return transfer
