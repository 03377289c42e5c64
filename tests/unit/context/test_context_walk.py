"""The walk's entries: order, names, types, mode bits, links and metadata."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from kubectl_build.context.walk import (
    MODE_CHAR_DEVICE,
    MODE_DEVICE,
    MODE_DIR,
    MODE_NAMED_PIPE,
    MODE_SETGID,
    MODE_SETUID,
    MODE_STICKY,
    MODE_SYMLINK,
    FileStat,
    WalkFilter,
    walk,
)
from kubectl_build.errors import ContextError

from .tree import build_tree, describe

NO_FILTER = WalkFilter()


def _paths(root: Path | bytes, flt: WalkFilter = NO_FILTER) -> list[bytes]:
    return [e.path for e in walk(root, flt)]


def _by_path(root: Path, flt: WalkFilter = NO_FILTER) -> dict[bytes, FileStat]:
    return {e.path: e for e in walk(root, flt)}


def test_order_is_bytewise_depth_first(tmp_path: Path) -> None:
    build_tree(tmp_path, ["b", "a-b/c", "a/b", "a.txt", "A", "_", "a/B/x", "Z/"])
    assert _paths(tmp_path) == [
        b"A", b"Z", b"_", b"a", b"a/B", b"a/B/x", b"a/b", b"a-b", b"a-b/c", b"a.txt", b"b"
    ]


def test_non_utf8_and_unicode_names_sort_by_bytes(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    names = [b"\xff", "\U0001f600".encode(), "\ue000".encode(), "é".encode(), b"z", b"d\xfe"]
    for name in names:
        with open(os.path.join(root, name), "wb") as f:
            f.write(b"x")
    os.remove(os.path.join(root, b"d\xfe"))
    os.mkdir(os.path.join(root, b"d\xfe"))
    with open(os.path.join(root, b"d\xfe", b"\x80x"), "wb"):
        pass

    got = _paths(tmp_path)

    # str order would put the surrogate-escaped b"\xff" before U+1F600.
    assert got == sorted(got)
    assert got == [b"d\xfe", b"d\xfe/\x80x", b"z", b"\xc3\xa9", b"\xee\x80\x80",
                   b"\xf0\x9f\x98\x80", b"\xff"]


def test_non_utf8_names_match_one_rune_per_byte(tmp_path: Path) -> None:
    root = os.fsencode(tmp_path)
    for name in (b"d\xff", "dé".encode(), b"d\xff\xfe", b"keep"):
        with open(os.path.join(root, name), "wb"):
            pass
    assert _paths(tmp_path, WalkFilter(exclude_patterns=("d?",))) == [b"d\xff\xfe", b"keep"]


def test_root_is_not_sent_and_empty_dirs_are(tmp_path: Path) -> None:
    build_tree(tmp_path, ["empty/", "full/deeper/"])
    assert [describe(e) for e in walk(tmp_path, NO_FILTER)] == [
        "empty/", "full/", "full/deeper/"
    ]
    assert _paths(tmp_path / "empty") == []


def test_mode_bits(tmp_path: Path) -> None:
    build_tree(tmp_path, ["d/", "f", "suid", "sgid/", "sticky/", "l -> f", "p |fifo"])
    os.chmod(tmp_path / "d", 0o750)
    os.chmod(tmp_path / "f", 0o640)
    os.chmod(tmp_path / "suid", 0o4755)
    os.chmod(tmp_path / "sgid", 0o2775)
    os.chmod(tmp_path / "sticky", 0o1777)
    os.chmod(tmp_path / "p", 0o600)

    modes = {k: v.mode for k, v in _by_path(tmp_path).items()}

    assert modes == {
        b"d": MODE_DIR | 0o750,
        b"f": 0o640,
        b"l": MODE_SYMLINK | 0o777,
        b"p": MODE_NAMED_PIPE | 0o600,
        b"sgid": MODE_DIR | MODE_SETGID | 0o775,
        b"sticky": MODE_DIR | MODE_STICKY | 0o777,
        b"suid": MODE_SETUID | 0o755,
    }
    assert modes[b"d"] == 0x800001E8  # Go FileMode as uint32


def test_devices(tmp_path: Path) -> None:
    try:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mknod(tmp_path / "loop", stat.S_IFBLK | 0o660, os.makedev(7, 300))
    except PermissionError:
        pytest.skip("creating device nodes needs CAP_MKNOD")
    os.chmod(tmp_path / "null", 0o666)
    os.chmod(tmp_path / "loop", 0o660)

    entries = _by_path(tmp_path)

    null, loop = entries[b"null"], entries[b"loop"]
    assert null.mode == MODE_DEVICE | MODE_CHAR_DEVICE | 0o666
    assert (null.devmajor, null.devminor) == (1, 3)
    assert loop.mode == MODE_DEVICE | 0o660
    assert (loop.devmajor, loop.devminor) == (7, 300)
    assert null.source == loop.source == b""


def test_sizes_times_and_links(tmp_path: Path) -> None:
    build_tree(tmp_path, ["d/x", "f", "l -> some/target"])
    os.utime(tmp_path / "f", ns=(1, 1_700_000_000_123_456_789))

    entries = _by_path(tmp_path)

    assert entries[b"d"].size == 0
    assert entries[b"f"].size == len(b"data:f")
    assert entries[b"f"].mod_time == 1_700_000_000_123_456_789
    assert entries[b"l"].size == len(b"some/target")
    assert entries[b"l"].linkname == b"some/target"
    assert entries[b"l"].source == b""
    assert entries[b"d"].source == b""
    assert entries[b"f"].source == os.fsencode(tmp_path.resolve() / "f")


def test_file_larger_than_4gib(tmp_path: Path) -> None:
    with open(tmp_path / "big", "wb") as f:
        f.truncate(5 * 1024**3 + 7)
    assert _by_path(tmp_path)[b"big"].size == 5 * 1024**3 + 7


def test_owner_reset_by_default(tmp_path: Path) -> None:
    build_tree(tmp_path, ["f"])
    st = (tmp_path / "f").stat()
    (reset,) = walk(tmp_path, NO_FILTER)
    (kept,) = walk(tmp_path, NO_FILTER, reset_owner=False)
    assert (reset.uid, reset.gid) == (0, 0)
    assert (kept.uid, kept.gid) == (st.st_uid, st.st_gid)


def test_hardlinks_point_at_first_sent_path(tmp_path: Path) -> None:
    build_tree(tmp_path, ["z", "a/y => z", "b => z", "p |fifo", "q => p", "solo"])

    entries = [describe(e) for e in walk(tmp_path, NO_FILTER)]

    assert entries == ["a/", "a/y", "b => a/y", "p |fifo", "q => p", "solo", "z => a/y"]
    sizes = {e.path: e.size for e in walk(tmp_path, NO_FILTER)}
    assert sizes[b"b"] == sizes[b"a/y"] == len(b"data:z")


def test_hardlink_group_excluded_entirely_sends_nothing_linked(tmp_path: Path) -> None:
    build_tree(tmp_path, ["a", "b => a"])
    assert _paths(tmp_path, WalkFilter(exclude_patterns=("a", "b"))) == []
    assert [describe(e) for e in walk(tmp_path, WalkFilter(exclude_patterns=("b",)))] == ["a"]


def test_xattrs_read_without_following(tmp_path: Path) -> None:
    build_tree(tmp_path, ["f", "plain"])
    try:
        os.setxattr(tmp_path / "f", "user.k", b"v\x00")
    except OSError:
        pytest.skip("no user xattrs on this file system")
    entries = _by_path(tmp_path)
    assert dict(entries[b"f"].xattrs) == {"user.k": b"v\x00"}
    assert "user.k" not in entries[b"plain"].xattrs


def test_xattrs_skip_apple_and_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_tree(tmp_path, ["f"])

    def listxattr(path: Any, *, follow_symlinks: bool = True) -> list[str]:
        assert follow_symlinks is False
        return ["com.apple.quarantine", "user.gone", "user.ok"]

    def getxattr(path: Any, name: str, *, follow_symlinks: bool = True) -> bytes:
        if name == "user.gone":
            raise OSError(61, "No data available")
        return b"1"

    monkeypatch.setattr(os, "listxattr", listxattr)
    monkeypatch.setattr(os, "getxattr", getxattr)
    (entry,) = walk(tmp_path, NO_FILTER)
    assert dict(entry.xattrs) == {"user.ok": b"1"}


def test_xattrs_unsupported_means_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_tree(tmp_path, ["f"])

    def listxattr(path: Any, *, follow_symlinks: bool = True) -> list[str]:
        raise OSError(95, "Operation not supported")

    monkeypatch.setattr(os, "listxattr", listxattr)
    (entry,) = walk(tmp_path, NO_FILTER)
    assert dict(entry.xattrs) == {}


def test_lazily_sent_parents_carry_their_real_stat(tmp_path: Path) -> None:
    build_tree(tmp_path, ["secret/keep", "secret/drop"])
    os.chmod(tmp_path / "secret", 0o700)
    flt = WalkFilter(exclude_patterns=("secret", "!secret/keep"))

    entries = list(walk(tmp_path, flt))

    assert [e.path for e in entries] == [b"secret", b"secret/keep"]
    assert entries[0].mode == MODE_DIR | 0o700


def test_root_symlink_is_resolved(tmp_path: Path) -> None:
    build_tree(tmp_path, ["real/f", "link -> real"])
    (entry,) = walk(tmp_path / "link", NO_FILTER)
    assert entry.path == b"f"
    assert entry.source == os.fsencode(tmp_path.resolve() / "real" / "f")


@pytest.mark.parametrize("name", ["missing", "file"])
def test_bad_root(tmp_path: Path, name: str) -> None:
    build_tree(tmp_path, ["file"])
    with pytest.raises(ContextError, match=name):
        walk(tmp_path / name, NO_FILTER)


def test_invalid_patterns_fail_before_walking(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="invalid excludepatterns"):
        walk(tmp_path, WalkFilter(exclude_patterns=("a[",)))
    with pytest.raises(ContextError, match="illegal exclusion"):
        walk(tmp_path, WalkFilter(include_patterns=("!",)))


def test_regex_errors_surface_when_first_used(tmp_path: Path) -> None:
    build_tree(tmp_path, ["Local-Only"])
    flt = WalkFilter(exclude_patterns=("[Local-Only]",))
    entries = walk(tmp_path, flt)
    with pytest.raises(ContextError, match="failed to match excludepatterns"):
        list(entries)
    # Never evaluated (the skip rule passes over it), so never an error.
    assert _paths(tmp_path, WalkFilter(exclude_patterns=("*", "[Local-Only]"))) == []


def test_file_vanishing_mid_walk_skips_the_rest_of_its_dir(tmp_path: Path) -> None:
    # Go turns ENOENT into fs.SkipDir, which for a file ends its directory.
    build_tree(tmp_path, ["d/a", "d/b", "d/c", "e/x", "f"])
    sent = []
    for entry in walk(tmp_path, NO_FILTER):
        sent.append(entry.path)
        if entry.path == b"d/a":
            (tmp_path / "d" / "b").unlink()
    assert sent == [b"d", b"d/a", b"e", b"e/x", b"f"]


def test_dir_vanishing_mid_walk_is_skipped(tmp_path: Path) -> None:
    build_tree(tmp_path, ["a", "d/x", "e"])
    sent = []
    for entry in walk(tmp_path, NO_FILTER):
        sent.append(entry.path)
        if entry.path == b"a":
            (tmp_path / "d" / "x").unlink()
            (tmp_path / "d").rmdir()
    assert sent == [b"a", b"e"]


def _frame_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth


def test_deep_tree_needs_no_recursion(tmp_path: Path) -> None:
    levels = [tmp_path]
    for _ in range(600):
        levels.append(levels[-1] / "d")
        levels[-1].mkdir()
    (levels[-1] / "f").write_bytes(b"x")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_frame_depth() + 100)  # far fewer frames than levels
    try:
        entries = list(walk(tmp_path, WalkFilter(exclude_patterns=("d", "!**/f"))))
    finally:
        sys.setrecursionlimit(limit)
        (levels[-1] / "f").unlink()
        for level in reversed(levels[1:]):
            level.rmdir()  # shutil.rmtree would recurse this deep
    assert len(entries) == 601
    assert entries[-1].path == b"/".join([b"d"] * 600) + b"/f"


def test_modes_from_windows_are_what_gos_sender_makes_them(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    build_tree(tmp_path, ["d/", "f", "ro", "l -> f"])
    os.chmod(tmp_path / "d", 0o777)
    os.chmod(tmp_path / "f", 0o666)
    os.chmod(tmp_path / "ro", 0o444)
    monkeypatch.setattr(sys, "platform", "win32")

    modes = {k: v.mode for k, v in _by_path(tmp_path).items()}

    # Windows gives 0666 or 0444 (0777 for directories); Go adds x and drops group/other write
    assert modes == {b"d": MODE_DIR | 0o755, b"f": 0o755, b"l": MODE_SYMLINK | 0o755, b"ro": 0o555}
