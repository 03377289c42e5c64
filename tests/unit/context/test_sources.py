from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from kubectl_build.context.sources import is_remote, resolve
from kubectl_build.errors import ContextError, UsageError


def test_directory_context(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    with resolve(str(tmp_path), None) as local:
        assert local.context_dir == str(tmp_path)
        assert local.dockerfile_dir == str(tmp_path) and local.dockerfile_name == "Dockerfile"


def test_dockerfile_elsewhere(tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "df").mkdir()
    (tmp_path / "df" / "Build.file").write_text("FROM scratch\n")
    with resolve(str(tmp_path / "ctx"), str(tmp_path / "df" / "Build.file")) as local:
        assert local.dockerfile_dir == str(tmp_path / "df")
        assert local.dockerfile_name == "Build.file"


def test_dockerfile_from_stdin(tmp_path: Path) -> None:
    with resolve(str(tmp_path), "-", io.BytesIO(b"FROM scratch\n")) as local:
        assert local.dockerfile_dir is not None
        assert Path(local.dockerfile_dir, "Dockerfile").read_bytes() == b"FROM scratch\n"
        folder = local.dockerfile_dir
    assert not os.path.exists(folder)  # cleaned up


def test_tar_context_from_stdin() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in (("Dockerfile", b"FROM scratch\n"), ("a/b", b"data")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    with resolve("-", None, io.BytesIO(buf.getvalue())) as local:
        assert local.context_dir is not None
        assert Path(local.context_dir, "a", "b").read_bytes() == b"data"


def test_plain_dockerfile_on_stdin_gets_empty_context() -> None:
    with resolve("-", None, io.BytesIO(b"FROM scratch\n")) as local:
        assert local.context_dir is not None and os.listdir(local.context_dir) == []


def test_both_from_stdin_is_a_usage_error() -> None:
    with pytest.raises(UsageError), resolve("-", "-", io.BytesIO(b"")):
        pass


def test_missing_context_and_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(ContextError), resolve(str(tmp_path / "none"), None):
        pass
    with pytest.raises(ContextError), resolve(str(tmp_path), None):
        pass


@pytest.mark.parametrize(("value", "remote"), [
    ("https://github.com/org/repo.git", True), ("git@github.com:org/repo.git", True),
    ("github.com/org/repo", True), ("./dir", False), (".", False),
])
def test_is_remote(value: str, remote: bool) -> None:
    assert is_remote(value) is remote
