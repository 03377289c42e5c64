"""Resolve what the user pointed at into the local directories the session serves.

`PATH` is served as the `context` local, the Dockerfile's directory as the
`dockerfile` local. `-f -` and a `-` context read stdin once into a private
temporary directory: a tar archive (optionally compressed) becomes the context,
anything else is taken as a Dockerfile with an empty context, as docker does.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from kubectl_build.errors import ContextError, UsageError

_REMOTE = re.compile(r"^(https?://|git@|git://|ssh://)|^github\.com/")


@dataclass(frozen=True)
class LocalSources:
    """What the build reads from this machine."""

    context_dir: str | None  # None for a remote (git/http) context
    dockerfile_dir: str | None
    dockerfile_name: str
    remote_context: str | None = None


def is_remote(context: str) -> bool:
    """Whether the context is a git or http(s) URL the daemon fetches itself."""
    return bool(_REMOTE.match(context))


def _read_stdin(stdin: BinaryIO | None) -> bytes:
    stream = stdin if stdin is not None else sys.stdin.buffer
    return stream.read()


def _extract_tar(data: bytes, dest: str) -> bool:
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            archive.extractall(dest, filter="tar")
    except tarfile.ReadError:
        return False
    except (tarfile.TarError, OSError) as err:
        raise ContextError(f"cannot unpack the context archive from stdin: {err}",
                           "pipe a valid tar, tar.gz, tar.bz2 or tar.xz archive") from err
    return True


def _dockerfile_path(context_dir: str, dockerfile: str | None) -> str:
    if dockerfile is None:
        path = os.path.join(context_dir, "Dockerfile")
        if not os.path.exists(path) and os.path.exists(os.path.join(context_dir, "dockerfile")):
            path = os.path.join(context_dir, "dockerfile")
        return path
    return dockerfile


def _check_dockerfile(path: str) -> None:
    if not os.path.isfile(path):
        raise ContextError(f"Dockerfile not found: {path}",
                           "pass -f PATH to the Dockerfile, or -f - to read it from stdin")


@contextmanager
def resolve(context: str, dockerfile: str | None,
            stdin: BinaryIO | None = None) -> Iterator[LocalSources]:
    """Yield the local sources, cleaning up temporary directories afterwards."""
    tmp: list[str] = []

    def scratch() -> str:
        tmp.append(tempfile.mkdtemp(prefix="kb-ctx-"))
        return tmp[-1]

    try:
        yield _resolve(context, dockerfile, stdin, scratch)
    finally:
        for path in tmp:
            shutil.rmtree(path, ignore_errors=True)


def _resolve(context: str, dockerfile: str | None, stdin: BinaryIO | None,
             scratch: object) -> LocalSources:
    assert callable(scratch)
    if context == "-" and dockerfile == "-":
        raise UsageError("the context and the Dockerfile cannot both come from stdin",
                         "use a directory as context with -f -, or pipe a tar with PATH -")
    if dockerfile == "-":
        data = _read_stdin(stdin)
        folder = scratch()
        with open(os.path.join(folder, "Dockerfile"), "wb") as fh:
            fh.write(data)
        if is_remote(context):
            return LocalSources(None, folder, "Dockerfile", context)
        return LocalSources(_context_dir(context), folder, "Dockerfile")
    if context == "-":
        data = _read_stdin(stdin)
        folder = scratch()
        if _extract_tar(data, folder):
            path = _dockerfile_path(folder, os.path.join(folder, dockerfile) if dockerfile else None)
            _check_dockerfile(path)
            return LocalSources(folder, os.path.dirname(path), os.path.basename(path))
        with open(os.path.join(folder, "Dockerfile"), "wb") as fh:
            fh.write(data)
        empty = scratch()
        return LocalSources(empty, folder, "Dockerfile")
    if is_remote(context):
        if dockerfile is None:
            return LocalSources(None, None, "Dockerfile", context)
        _check_dockerfile(dockerfile)
        return LocalSources(None, os.path.dirname(os.path.abspath(dockerfile)),
                            os.path.basename(dockerfile), context)
    context_dir = _context_dir(context)
    path = _dockerfile_path(context_dir, dockerfile)
    _check_dockerfile(path)
    return LocalSources(context_dir, os.path.dirname(os.path.abspath(path)),
                        os.path.basename(path))


def _context_dir(context: str) -> str:
    if not os.path.exists(context):
        raise ContextError(f"build context {context!r} does not exist",
                           "pass the directory to build, a git/https URL, or - for stdin")
    if not os.path.isdir(context):
        raise ContextError(f"build context {context!r} is not a directory",
                           "pass the directory to build, or pipe an archive with -")
    return os.path.abspath(context)
