"""Build small file trees from a compact notation and describe walk results in it.

Notation: "d/" directory, "f" regular file, "l -> t" symlink, "h => f" hard link
to f, "p |fifo", "s |socket". Parent directories are created as needed.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterable
from pathlib import Path

from kubectl_build.context.walk import (
    MODE_DIR,
    MODE_NAMED_PIPE,
    MODE_SYMLINK,
    MODE_TYPE,
    FileStat,
)


def build_tree(root: Path, spec: Iterable[str]) -> None:
    """Create the entries of `spec` under `root` (which must exist)."""
    for item in spec:
        _make(root, item)


def _make(root: Path, item: str) -> None:
    if " -> " in item:
        name, target = item.split(" -> ", 1)
        _parent(root, name)
        os.symlink(target, root / name)
    elif " => " in item:
        name, other = item.split(" => ", 1)
        _parent(root, name)
        os.link(root / other, root / name)
    elif item.endswith(" |fifo"):
        name = item.removesuffix(" |fifo")
        _parent(root, name)
        os.mkfifo(root / name)
    elif item.endswith(" |socket"):
        _make_socket(root, item.removesuffix(" |socket"))
    elif item.endswith("/"):
        (root / item).mkdir(parents=True, exist_ok=True)
    else:
        _parent(root, item)
        (root / item).write_bytes(b"data:" + item.encode("utf-8", "surrogateescape"))


def _parent(root: Path, name: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)


def _make_socket(root: Path, name: str) -> None:
    _parent(root, name)
    # A relative bind keeps the path under the 108-byte sun_path limit.
    cwd = os.getcwd()
    os.chdir((root / name).parent)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(Path(name).name)
        sock.close()
    finally:
        os.chdir(cwd)


def describe(entry: FileStat) -> str:
    """One walked entry in the tree notation (hard links as "x => first")."""
    path = entry.path.decode("utf-8", "surrogateescape")
    if entry.mode & MODE_DIR:
        return path + "/"
    if entry.mode & MODE_SYMLINK:
        return f"{path} -> {entry.linkname.decode('utf-8', 'surrogateescape')}"
    if entry.linkname:
        return f"{path} => {entry.linkname.decode('utf-8', 'surrogateescape')}"
    if entry.mode & MODE_NAMED_PIPE:
        return path + " |fifo"
    assert entry.mode & MODE_TYPE == 0, oct(entry.mode)
    return path


def is_socket(path: Path) -> bool:
    """Whether `path` is a unix socket (without following symlinks)."""
    return stat.S_ISSOCK(path.lstat().st_mode)
