"""The filtered walk of a build context, entry for entry what fsutil's sender lists.

Order and content match Go's pipeline as buildctl/buildx set it up
(NewFS -> uid/gid := 0 -> include/exclude/followpaths -> hard-link reset ->
Walk): depth-first pre-order, names sorted by bytes, the root not listed,
skipped parents listed lazily before the first entry sent below them.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from types import MappingProxyType

from kubectl_build.context._filter import AncestorHits, ContextFilter, Verdict, fs_str
from kubectl_build.errors import ContextError
from kubectl_build.host import xattrs
from kubectl_build.host.facts import windows_permissions

__all__ = [
    "MODE_CHAR_DEVICE",
    "MODE_DEVICE",
    "MODE_DIR",
    "MODE_NAMED_PIPE",
    "MODE_SETGID",
    "MODE_SETUID",
    "MODE_STICKY",
    "MODE_SYMLINK",
    "MODE_TYPE",
    "FileStat",
    "WalkFilter",
    "walk",
]

# Go io/fs.FileMode bits (not Unix st_mode).
MODE_DIR = 1 << 31
MODE_SYMLINK = 1 << 27
MODE_DEVICE = 1 << 26
MODE_NAMED_PIPE = 1 << 25
MODE_SOCKET = 1 << 24
MODE_SETUID = 1 << 23
MODE_SETGID = 1 << 22
MODE_CHAR_DEVICE = 1 << 21
MODE_STICKY = 1 << 20
MODE_IRREGULAR = 1 << 19
MODE_TYPE = (
    MODE_DIR
    | MODE_SYMLINK
    | MODE_NAMED_PIPE
    | MODE_SOCKET
    | MODE_DEVICE
    | MODE_CHAR_DEVICE
    | MODE_IRREGULAR
)
"""Entries with none of these bits are regular files, the only ones with data."""

# fsutil clears the socket bit, so a socket is listed as a plain file.
_TYPE_BITS = {
    stat.S_IFDIR: MODE_DIR,
    stat.S_IFLNK: MODE_SYMLINK,
    stat.S_IFBLK: MODE_DEVICE,
    stat.S_IFCHR: MODE_DEVICE | MODE_CHAR_DEVICE,
    stat.S_IFIFO: MODE_NAMED_PIPE,
}
_NOT_FOUND = (FileNotFoundError, NotADirectoryError)
_NO_XATTRS = frozenset({errno.ENOTSUP, errno.EOPNOTSUPP})
_EMPTY: Mapping[str, bytes] = MappingProxyType({})
_by_name = attrgetter("name")


@dataclass(frozen=True)
class FileStat:
    """One entry of the listing: the fields of fsutil's `types.Stat`."""

    path: bytes
    """Relative, "/"-separated, clean; raw bytes (non-UTF-8 names survive)."""
    mode: int
    """Go io/fs.FileMode bits (uint32): permissions | MODE_* type and special bits."""
    uid: int
    gid: int
    size: int
    """0 for directories, the target's length for symlinks, else the real size (hard
    links included: Go keeps it, and the daemon never requests a hard link's data)."""
    mod_time: int
    """st_mtime_ns."""
    linkname: bytes = b""
    """Symlink target as readlink returns it; for any other non-directory sharing an
    inode with an entry sent earlier, that first sent path (a hard link)."""
    devmajor: int = 0
    devminor: int = 0
    xattrs: Mapping[str, bytes] = field(default_factory=dict, hash=False)
    """Extended attributes (not "com.apple.*"); empty where the file system has none."""
    source: bytes = b""
    """Absolute path to read the data from. Empty when the sender must answer a REQ
    with no data: not a regular file, a socket (fsutil lists it as a plain file), or
    a file Go's FilterFS.Open refuses (the DATA is then empty although `size` is not)."""


@dataclass(frozen=True)
class WalkFilter:
    """The filters the daemon asks for (FileSync `include-patterns` and friends)."""

    include_patterns: tuple[str, ...] = ()
    exclude_patterns: tuple[str, ...] = ()
    follow_paths: tuple[str, ...] = ()


def walk(
    root: str | bytes | os.PathLike[str], flt: WalkFilter, *, reset_owner: bool = True
) -> Iterator[FileStat]:
    """List a build context in the exact order and shape Go's fsutil sender uses.

    Patterns are compiled and followpaths resolved before this returns; the
    tree itself is read lazily while iterating.

    Args:
        root: The context directory (symlinks in it are resolved first, as Go does).
        flt: Include/exclude patterns and followpaths.
        reset_owner: Send uid/gid 0, as buildctl and buildx do.

    Returns:
        An iterator of entries, one per STAT packet.

    Raises:
        ContextError: The root is not a readable directory, or a pattern is invalid.
            Iterating raises it too, for a directory that cannot be read or a
            pattern that fails when first used.
    """
    base = _resolve_root(root)
    ctx_filter = ContextFilter(base, flt.include_patterns, flt.exclude_patterns, flt.follow_paths)
    return _Walker(base, ctx_filter, reset_owner).run()


def _resolve_root(root: str | bytes | os.PathLike[str]) -> bytes:
    raw = os.fsencode(root)
    try:
        resolved = os.path.realpath(raw, strict=True)
        is_dir = stat.S_ISDIR(os.stat(resolved).st_mode)
    except OSError as err:
        raise ContextError(
            f"build context {os.fsdecode(raw)!r} cannot be read: {err.strerror}",
            "pass an existing directory as the build context",
        ) from err
    if not is_dir:
        raise ContextError(
            f"build context {os.fsdecode(raw)!r} is not a directory",
            "pass a directory (or '-' for a tar archive)",
        )
    return resolved


class _VanishedError(Exception):
    """The entry disappeared while walking: Go turns this into fs.SkipDir."""


class _Frame:
    """A directory being walked; `emitted` implies all its ancestors were sent."""

    __slots__ = ("entries", "entry", "hits", "index", "path", "rel", "emitted", "verdict")

    def __init__(
        self,
        rel: bytes,
        path: bytes,
        entries: list[os.DirEntry[bytes]],
        entry: os.DirEntry[bytes] | None,
        verdict: Verdict | None,
        emitted: bool,
    ) -> None:
        self.rel = rel
        self.path = path
        self.entries = entries
        self.entry = entry
        self.verdict = verdict
        self.emitted = emitted
        self.index = 0
        self.hits: AncestorHits | None = None


class _Walker:
    def __init__(self, root: bytes, ctx_filter: ContextFilter, reset_owner: bool) -> None:
        self.root = root
        self.filter = ctx_filter
        self.reset_owner = reset_owner
        self.windows_modes = windows_permissions()  # asked once per walk, not per file
        # fsutil keys hard links by st_ino alone; the first path sent owns the inode.
        self.inodes: dict[int, bytes] = {}

    def run(self) -> Iterator[FileStat]:
        entries = self._list(self.root, b"") or []
        stack = [_Frame(b"", self.root, entries, None, None, emitted=True)]
        if self.filter.checks_open:
            stack[0].hits = self.filter.ancestor_hits("", None)
        while stack:
            frame = stack[-1]
            if frame.index >= len(frame.entries):
                stack.pop()
                continue
            entry = frame.entries[frame.index]
            frame.index += 1
            child = yield from self._visit(stack, frame, entry)
            if child is not None:
                stack.append(child)

    def _visit(
        self, stack: list[_Frame], frame: _Frame, entry: os.DirEntry[bytes]
    ) -> Generator[FileStat, None, _Frame | None]:
        """Judge and maybe send one entry; returns the frame to descend into, if any."""
        rel = frame.rel + b"/" + entry.name if frame.rel else entry.name
        is_dir = entry.is_dir(follow_symlinks=False)
        verdict = None
        if self.filter.active:
            verdict = self.filter.decide(fs_str(rel), is_dir, frame.verdict)
            if verdict is None:
                return None
        send = verdict is None or not verdict.skip
        if send:
            try:
                if not frame.emitted:
                    yield from self._emit_parents(stack)
                yield self._stat(rel, entry, frame)
            except _VanishedError:
                if not is_dir:
                    frame.index = len(frame.entries)  # a file's SkipDir skips its siblings
                return None
        if not is_dir:
            return None
        entries = self._list(entry.path, rel)
        if entries is None:
            return None
        child = _Frame(rel, entry.path, entries, entry, verdict, emitted=send)
        if self.filter.checks_open:
            child.hits = self.filter.ancestor_hits(fs_str(rel), frame.hits)
        return child

    def _emit_parents(self, stack: list[_Frame]) -> Iterator[FileStat]:
        for frame in stack:
            if not frame.emitted and frame.entry is not None:
                yield self._stat(frame.rel, frame.entry, frame)
                frame.emitted = True

    def _list(self, path: bytes, rel: bytes) -> list[os.DirEntry[bytes]] | None:
        try:
            with os.scandir(path) as it:
                return sorted(it, key=_by_name)
        except _NOT_FOUND:
            return None
        except OSError as err:
            where = os.fsdecode(rel) or "."
            raise ContextError(
                f"cannot read directory {where!r} of the build context: {err.strerror}",
                "make it readable, or exclude it in .dockerignore with no '!' exception under it",
            ) from err

    def _stat(self, rel: bytes, entry: os.DirEntry[bytes], frame: _Frame) -> FileStat:
        try:
            st = entry.stat(follow_symlinks=False)
            linkname = os.readlink(entry.path) if stat.S_ISLNK(st.st_mode) else b""
        except _NOT_FOUND as err:
            raise _VanishedError from err
        except OSError as err:
            raise _stat_error(rel, err) from err
        mode = _go_mode(st.st_mode, self.windows_modes)
        is_dir = bool(mode & MODE_DIR)
        if not linkname and not is_dir and st.st_nlink > 1:
            linkname = self._hardlink(rel, st.st_ino)
        major = minor = 0
        if not is_dir and st.st_mode & (stat.S_IFBLK | stat.S_IFCHR):
            major, minor = _go_device_numbers(st.st_rdev)
        return FileStat(
            path=rel,
            mode=mode,
            uid=0 if self.reset_owner else st.st_uid,
            gid=0 if self.reset_owner else st.st_gid,
            size=0 if is_dir else st.st_size,
            mod_time=st.st_mtime_ns,
            linkname=linkname,
            devmajor=major,
            devminor=minor,
            xattrs=_read_xattrs(entry.path, rel),
            source=self._source(rel, entry.path, st.st_mode, frame),
        )

    def _hardlink(self, rel: bytes, inode: int) -> bytes:
        first = self.inodes.setdefault(inode, rel)
        return b"" if first == rel else first

    def _source(self, rel: bytes, path: bytes, st_mode: int, frame: _Frame) -> bytes:
        if not stat.S_ISREG(st_mode):
            return b""
        if frame.hits is not None and not self.filter.open_allowed(fs_str(rel), frame.hits):
            return b""
        return path


def _go_mode(st_mode: int, windows: bool = False) -> int:
    """Unix st_mode -> Go FileMode, with the socket bit cleared like fsutil does.

    From Windows, Go's sender makes every entry executable and drops group/other write
    (its os.FileMode there is only 0666 or 0444): the same files give the same layer.
    """
    perm = st_mode & 0o777
    if windows:
        perm = (perm | 0o111) & 0o755
    mode = perm | _TYPE_BITS.get(stat.S_IFMT(st_mode), 0)
    if st_mode & stat.S_ISUID:
        mode |= MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= MODE_STICKY
    return mode


def _go_device_numbers(rdev: int) -> tuple[int, int]:
    """Major and minor as Go's sender splits st_rdev (Linux's encoding on every OS)."""
    return (rdev >> 8) & 0xFFF, (rdev & 0xFF) | ((rdev >> 12) & 0xFFF00)


_XATTRS = xattrs.reader()


def _read_xattrs(path: bytes, rel: bytes) -> Mapping[str, bytes]:
    try:
        names = _XATTRS.names(path)
    except OSError as err:
        if err.errno in _NO_XATTRS:
            return _EMPTY
        if isinstance(err, _NOT_FOUND):
            raise _VanishedError from err
        raise _stat_error(rel, err) from err
    values: dict[str, bytes] = {}
    for name in names:
        if name.startswith("com.apple."):
            continue
        try:
            values[name] = _XATTRS.value(path, name)
        except OSError:
            continue  # Go skips attributes it cannot read
    return MappingProxyType(values) if values else _EMPTY


def _stat_error(rel: bytes, err: OSError) -> ContextError:
    return ContextError(
        f"cannot stat {os.fsdecode(rel)!r} in the build context: {err.strerror}",
        "make it accessible, or exclude it in .dockerignore",
    )
