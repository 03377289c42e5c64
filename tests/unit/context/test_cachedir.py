"""The per-user cache folder on each OS (kubectl_build.context.cachedir)."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

from kubectl_build.context.cachedir import cache_dir


def test_xdg_cache_home_wins_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    for client_os in ("linux", "darwin", "win32"):
        monkeypatch.setattr(sys, "platform", client_os)
        assert cache_dir({"XDG_CACHE_HOME": "/x", "HOME": "/h", "LOCALAPPDATA": "C:/l"}) == Path(
            "/x/kubectl-build")


@pytest.mark.parametrize(("client_os", "expected"), [
    ("linux", "/home/me/.cache/kubectl-build"),
    ("darwin", "/home/me/Library/Caches/kubectl-build"),
    ("win32", "C:/Users/me/AppData/Local/kubectl-build"),
])
def test_each_os_has_its_own_place(client_os: str, expected: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", client_os)
    env = {"HOME": "/home/me", "LOCALAPPDATA": "C:/Users/me/AppData/Local"}
    assert cache_dir(env) == Path(expected)


def test_no_home_is_never_the_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os.path, "expanduser", lambda path: path)  # no HOME, no pwd entry
    folder = cache_dir({"USER": "me"})
    assert folder == Path(tempfile.gettempdir()) / "kubectl-build-cache-me"
    assert folder.is_absolute()
