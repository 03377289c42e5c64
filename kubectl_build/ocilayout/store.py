"""An OCI image layout directory as a content store: blobs by digest, resumable writes.

What the daemon needs on the client's side of the session's content API: it writes cache
and image blobs into one (``--cache-to type=local``, ``-o type=oci,tar=false``) and reads
them back (``--cache-from type=local``, ``oci-layout://`` contexts). The layout is the one
containerd's local store keeps: ``blobs/<algorithm>/<hex>``, committed read-only, and
writes in progress under ``ingest/<sha256 of the ref>/`` so an interrupted write resumes.
Errors are :class:`ContentError` with containerd's error classes, which the session
service turns into gRPC codes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$")


class ContentError(Exception):
    """A content-store failure of one of containerd's classes (``kind``)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # not_found, already_exists, invalid, failed_precondition, ...
        self.message = message


@dataclass(frozen=True)
class BlobInfo:
    """A committed blob."""

    digest: str
    size: int
    created_ns: int


@dataclass(frozen=True)
class WriteStatus:
    """Where a write in progress stands."""

    ref: str
    offset: int
    total: int
    expected: str
    started_ns: int
    updated_ns: int


def check_digest(digest: str) -> str:
    """``digest`` if it is a well-formed digest of a supported algorithm."""
    if not _DIGEST.match(digest):
        raise ContentError("invalid", f"{digest!r} failed validation")
    return digest


class LayoutStore:
    """Blobs of one OCI layout directory, and the writes into it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._writing: set[str] = set()

    def blob_path(self, digest: str) -> Path:
        """Where a committed blob lives."""
        algorithm, _, hexpart = check_digest(digest).partition(":")
        return self.root / "blobs" / algorithm / hexpart

    def info(self, digest: str) -> BlobInfo:
        """The blob's size and commit time; not_found when absent."""
        try:
            st = self.blob_path(digest).stat()
        except FileNotFoundError:
            raise ContentError("not_found", f"content {digest}: not found") from None
        return BlobInfo(digest, st.st_size, st.st_mtime_ns)

    def walk(self) -> Iterator[BlobInfo]:
        """Every committed blob."""
        blobs = self.root / "blobs"
        for algorithm in sorted(p.name for p in blobs.iterdir()) if blobs.is_dir() else ():
            for blob in sorted((blobs / algorithm).iterdir()):
                digest = f"{algorithm}:{blob.name}"
                if _DIGEST.match(digest) and blob.is_file():
                    st = blob.stat()
                    yield BlobInfo(digest, st.st_size, st.st_mtime_ns)

    def open_blob(self, digest: str) -> BinaryIO:
        """The blob's bytes; not_found when absent."""
        try:
            return self.blob_path(digest).open("rb")
        except FileNotFoundError:
            raise ContentError("not_found", f"content {digest}: not found") from None

    def delete(self, digest: str) -> None:
        """Remove a blob; not_found when absent."""
        try:
            self.blob_path(digest).unlink()
        except FileNotFoundError:
            raise ContentError("not_found", f"content {digest}: not found") from None

    def writer(self, ref: str, total: int, expected: str) -> Ingest:
        """Begin or resume the write named ``ref``; one writer per ref at a time."""
        if not ref:
            raise ContentError("invalid", "first message must have a reference")
        if expected:
            check_digest(expected)
            if self.blob_path(expected).exists():
                raise ContentError("already_exists", f"content {expected}: already exists")
        with self._lock:
            if ref in self._writing:
                raise ContentError("unavailable", f"ref {ref} locked: unavailable")
            self._writing.add(ref)
        try:
            return Ingest(self, ref, total, expected)
        except BaseException:
            self.release(ref)
            raise

    def release(self, ref: str) -> None:
        """The writer of ``ref`` is done (committed, aborted or left to resume)."""
        with self._lock:
            self._writing.discard(ref)

    def ingest_dir(self, ref: str) -> Path:
        """Where the write named ``ref`` keeps its bytes until committed."""
        return self.root / "ingest" / hashlib.sha256(ref.encode()).hexdigest()

    def status(self, ref: str) -> WriteStatus:
        """A write in progress; not_found when there is none."""
        folder = self.ingest_dir(ref)
        if not (folder / "data").exists():
            raise ContentError("not_found", f"ref {ref}: not found")
        return _read_status(folder, ref)

    def statuses(self) -> list[WriteStatus]:
        """Every write in progress."""
        ingest = self.root / "ingest"
        found = []
        for folder in sorted(ingest.iterdir()) if ingest.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):  # finished while listed
                found.append(_read_status(folder, (folder / "ref").read_text()))
        return found

    def abort(self, ref: str) -> None:
        """Drop a write in progress; not_found when there is none."""
        folder = self.ingest_dir(ref)
        if not folder.exists():
            raise ContentError("not_found", f"ref {ref}: not found")
        shutil.rmtree(folder, ignore_errors=True)


class Ingest:
    """One write: appends at the end, verified and moved into blobs/ on commit."""

    def __init__(self, store: LayoutStore, ref: str, total: int, expected: str) -> None:
        self.store, self.ref = store, ref
        self.folder = store.ingest_dir(ref)
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "ref").exists():
            (self.folder / "ref").write_text(ref)
            (self.folder / "startedat").write_text(str(time.time_ns()))
        if total > 0:
            (self.folder / "total").write_text(str(total))
        self.expected = expected
        self._data = (self.folder / "data").open("ab+")
        self._hash = hashlib.sha256()
        self._data.seek(0)
        for chunk in iter(lambda: self._data.read(1 << 20), b""):
            self._hash.update(chunk)  # a resumed write: the digest so far
        self.offset = self._data.tell()
        self._updated_ns = 0  # kept in memory: a file write per message costs as much as the data

    def status(self) -> WriteStatus:
        """Where this write stands."""
        status = _read_status(self.folder, self.ref, offset=self.offset)
        if self._updated_ns:
            status = WriteStatus(status.ref, status.offset, status.total, status.expected,
                                 status.started_ns, self._updated_ns)
        return status

    def digest(self) -> str:
        """The sha256 of what was written so far."""
        return f"sha256:{self._hash.hexdigest()}"

    def write(self, data: bytes) -> None:
        """Append ``data``."""
        self._data.write(data)
        self._hash.update(data)
        self.offset += len(data)
        self._updated_ns = time.time_ns()

    def truncate(self) -> None:
        """Start over from offset 0."""
        self._data.seek(0)
        self._data.truncate()
        self._hash = hashlib.sha256()
        self.offset = 0

    def commit(self, total: int, expected: str) -> None:
        """Verify size and digest, then move the bytes to their blob path."""
        self._data.flush()
        os.fsync(self._data.fileno())
        if total > 0 and total != self.offset:
            raise ContentError("failed_precondition",
                               f"unexpected commit size {self.offset}, expected {total}")
        actual = self.digest() if not expected or expected.startswith("sha256:") else _rehash(
            self.folder / "data", expected.partition(":")[0])
        if expected and expected != actual:
            raise ContentError("failed_precondition",
                               f"unexpected commit digest {actual}, expected {expected}")
        target = self.store.blob_path(actual)
        self._data.close()
        if target.exists():
            shutil.rmtree(self.folder, ignore_errors=True)
            raise ContentError("already_exists", f"content {actual}: already exists")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.folder / "data", target)
        target.chmod(0o444)
        shutil.rmtree(self.folder, ignore_errors=True)

    def close(self) -> None:
        """Let go of the ref (the bytes stay for a resumed write unless committed)."""
        if not self._data.closed:
            self._data.close()
            if self._updated_ns and self.folder.exists():
                (self.folder / "updatedat").write_text(str(self._updated_ns))
        self.store.release(self.ref)


def _rehash(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return f"{algorithm}:{digest.hexdigest()}"


def _read_status(folder: Path, ref: str, offset: int | None = None) -> WriteStatus:
    def number(name: str) -> int:
        path = folder / name
        return int(path.read_text()) if path.exists() else 0

    started = number("startedat")
    size = (folder / "data").stat().st_size if offset is None else offset
    return WriteStatus(ref, size, number("total"), "", started, number("updatedat") or started)
