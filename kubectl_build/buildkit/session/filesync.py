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
from kubectl_build.buildkit.session.h2server import Framed, InlineMethod, frame
from kubectl_build.buildkit.session.service import metadata_values
from kubectl_build.buildkit.wire import Buffer, encode_stat_packet, framed_data_header
from kubectl_build.context.walk import FileStat, WalkFilter, walk

# DATA packet size. 32 KiB (Go's size) costs a third of the throughput in Python;
# much larger delays the daemon, which only writes a packet once it has all of it.
CHUNK = 256 << 10
# Bytes of response handed to the HTTP/2 layer at once (reads are paced by it).
BATCH_BYTES = 1 << 20
# Listing bytes queued at most while a live walk outruns the sending.
LIST_BYTES = 4 << 20
# Listing bytes sent between two looks at the daemon's requests. The daemon asks
# for files while it still reads the listing; their data must not wait behind
# the whole listing (it did: a 20,000-file listing took the daemon 1.5 s to read).
LIST_SLICE = 32 << 10
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
    """A walk started before the daemon asks, to take it off the critical path.

    The daemon requests the context only after it has parsed the Dockerfile and
    resolved base images; walking during that time hides the walk. A request with
    other filters than predicted simply walks again.
    """

    def __init__(self, root: str, flt: WalkFilter, limit: int = PREFETCH_LIMIT) -> None:
        self.root, self.flt, self.limit = os.path.abspath(root), flt, limit
        self.count = 0
        self.slices: list[bytes] = []
        self.sources: dict[int, Source] = {}
        self.usable = False
        self.done = threading.Event()
        threading.Thread(target=self._run, name="kb-fs-prefetch", daemon=True).start()

    def _run(self) -> None:
        try:
            packets = []
            for index, entry in enumerate(walk(self.root, self.flt)):
                if index >= self.limit:
                    return  # too big to hold: the live walk streams instead
                if entry.mode & MODE_TYPE == 0 and not entry.linkname:
                    self.sources[index] = (entry.source, entry.size)
                packets.append(stat_packet(entry))
            # Framed here, off the critical path: the listing then leaves in a few
            # large slices.
            self.slices = _slices([frame(p) for p in packets], LIST_SLICE)
            self.count = len(packets)
            self.usable = True
        except Exception:  # noqa: BLE001 - the live walk will report it properly
            self.usable = False
        finally:
            self.done.set()

    def matches(self, root: str, flt: WalkFilter) -> bool:
        """Whether this listing answers a request for root with flt."""
        return self.root == root and self.flt == flt


def _slices(packets: list[bytes], size: int) -> list[bytes]:
    """Join packets into blobs of about size bytes, each ending on a packet boundary."""
    out: list[bytes] = []
    start = total = 0
    for end, packet in enumerate(packets, 1):
        total += len(packet)
        if total >= size:
            out.append(b"".join(packets[start:end]))
            start, total = end, 0
    if start < len(packets):
        out.append(b"".join(packets[start:]))
    return out


class _Transfer:
    """One DiffCopy call: a listing thread, a request reader, and the response stream.

    The response generator itself reads the files the daemon asks for: every
    hand-over between threads costs futex calls and GIL switches, which dominate
    a context of many small files. Requests that arrive while it is busy are
    taken together and their data leaves in one batch.
    """

    def __init__(self, root: str, flt: WalkFilter, stats: TransferStats,
                 listing: Listing | None = None) -> None:
        self.root, self.flt, self.stats = root, flt, stats
        self.listing = listing
        self.cond = threading.Condition()
        self.stat_packets: deque[bytes] = deque()  # framed, waiting to be sent
        self.stat_bytes = 0
        self.wanted: deque[int] = deque()
        self.sources: dict[int, Source] = {}
        self.failure: bytes | None = None  # an ERR packet, sent instead of anything else
        self.fin = False
        self.cancelled = threading.Event()

    # -- producers (own threads) ----------------------------------------------

    def _push_stat(self, packet: bytes) -> bool:
        """Queue one framed packet of the listing; waits while too much is queued."""
        with self.cond:
            while self.stat_bytes > LIST_BYTES and not self.cancelled.is_set():
                self.cond.wait(0.5)
            if self.cancelled.is_set():
                return False
            self.stat_packets.append(packet)
            self.stat_bytes += len(packet)
            self.cond.notify_all()
        return True

    def list_entries(self) -> None:
        listing = self.listing
        if listing is not None and listing.matches(self.root, self.flt):
            listing.done.wait()
            if listing.usable:
                self.sources = listing.sources
                for piece in listing.slices:
                    if not self._push_stat(piece):
                        return
                self.stats.files_listed += listing.count
                self._push_stat(frame(b""))
                return
        try:
            for index, entry in enumerate(walk(self.root, self.flt)):
                if entry.mode & MODE_TYPE == 0 and not entry.linkname:
                    self.sources[index] = (entry.source, entry.size)
                if not self._push_stat(frame(stat_packet(entry))):
                    return
                self.stats.files_listed += 1
            self._push_stat(frame(b""))  # end of listing: a Packet with no stat
        except Exception as err:  # noqa: BLE001 - reported to the daemon, then raised locally
            self._fail(f"listing {self.root}: {err}")

    def _fail(self, message: str) -> None:
        with self.cond:
            self.failure = fsutil_pb2.Packet(type=fsutil_pb2.PACKET_ERR,
                                             data=message.encode()).SerializeToString()
            self.cond.notify_all()

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

    # -- the response stream (the RPC's own thread) ------------------------------

    def _next_work(self) -> tuple[list[bytes], list[int], bool]:
        """Block until there is something to send; take all of it."""
        with self.cond:
            while not (self.stat_packets or self.wanted or self.fin or self.failure
                       or self.cancelled.is_set()):
                self.cond.wait()
            stats: list[bytes] = []
            size = 0
            while self.stat_packets and size < LIST_SLICE:
                stats.append(self.stat_packets.popleft())
                size += len(stats[-1])
            self.stat_bytes -= size
            wanted = list(self.wanted)
            self.wanted.clear()
            self.cond.notify_all()  # the listing thread may wait for room
            return stats, wanted, self.fin and not wanted

    def responses(self) -> Iterator[Framed]:
        while True:
            stats, wanted, fin = self._next_work()
            if self.failure is not None:
                yield Framed((frame(self.failure),))
                return
            if self.cancelled.is_set():
                return
            batch = _Batch(stats)
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
        source, size = self.sources.get(file_id, (b"", 0))
        sent = 0
        if source:
            try:
                fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
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
                    if sent == size < want:
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

    def __init__(self, parts: list[bytes]) -> None:
        self.parts: list[Buffer] = list(parts)
        self.size = sum(map(len, parts))

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
            listing = None
        transfer = _Transfer(root, flt, self.stats, listing)
        context.add_callback(transfer.cancel)
        threading.Thread(target=transfer.list_entries, name="kb-fs-list", daemon=True).start()
        return transfer
