"""The compatibility corpus: real buildx command lines, asked of buildkitd by buildx and by us.

Each line of golden/buildx_corpus.tsv runs twice through the recording proxy (record-only:
the daemon reads nothing and builds nothing): once as ``buildx build`` on a remote builder,
once as ``kubectl build --buildkit-host``. What the two solves ask (frontend attributes,
exporters, caches, entitlements) must be the same, up to the deliberate differences of
``DELIBERATE`` (each said in the README). Lines marked ``build`` are also built for real
by both tools on the test bed, with their registries moved to its registry.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.buildx import Buildx, buildx_binary
from tests.e2e.corpus import Entry, asked, command_line, entries, prepare
from tests.e2e.helpers import Testbed, cli_path
from tests.e2e.recorder import RecordingProxy

pytestmark = pytest.mark.e2e
ENTRIES = entries()


@pytest.fixture(scope="module")
def proxy(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecordingProxy]:
    socket = tmp_path_factory.mktemp("proxy") / "buildkitd.sock"
    started = RecordingProxy(str(socket), "unix:" + testbed.buildkit_host.removeprefix("unix://")).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def buildx(proxy: RecordingProxy, tmp_path_factory: pytest.TempPathFactory) -> Buildx:
    return Buildx.create(buildx_binary(), tmp_path_factory.mktemp("buildx"), proxy.address)


def _ours(args: list[str], work: Path, address: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli_path(), *args, "--buildkit-host", address], cwd=work, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL, env={**os.environ, **env})


def deliberate(theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """buildx's request with our documented differences applied (see the README)."""
    theirs = {**theirs, "exporters": [(kind, {k: v for k, v in attrs.items()
                                              if not (kind == "image" and k == "unpack")})
                                      for kind, attrs in theirs["exporters"]]}
    ours_images = [attrs for kind, attrs in ours["exporters"] if kind == "image"]
    if not theirs["exporters"] and ours_images and "push" not in ours_images[0]:
        # A tagged build without output: buildx's remote driver keeps it in the cache only;
        # we store the image in the builder's image store, where attestations are dropped.
        theirs["exporters"] = [("image", dict(ours_images[0]))]
        theirs["frontend_attrs"] = {k: v for k, v in theirs["frontend_attrs"].items()
                                    if k != "attest:provenance"}
    if ours_images and "push" not in ours_images[0]:
        # An image only stored by the builder: we drop attestations there (see the README).
        theirs["frontend_attrs"] = {k: v for k, v in theirs["frontend_attrs"].items()
                                    if k != "attest:provenance"}
    for kind, attrs in theirs["exporters"]:
        if kind == "image" and "oci-mediatypes" not in attrs:
            attrs["oci-mediatypes"] = "true"  # we ask for OCI types; the daemon's default
    return theirs


CASES = [pytest.param(e, marks=pytest.mark.xfail(strict=True, reason="a known difference")) if e.known else e
         for e in ENTRIES]


def test_corpus_size() -> None:
    assert len(ENTRIES) >= 40
    assert sum(not e.known for e in ENTRIES) >= 60


@pytest.mark.parametrize("entry", CASES, ids=[f"{i:02d}" for i in range(len(ENTRIES))])
def test_same_solve_as_buildx(entry: Entry, proxy: RecordingProxy, buildx: Buildx, tmp_path: Path) -> None:
    env, _ = command_line(entry.command)
    args = prepare(entry, tmp_path)
    proxy.record_only = True
    proxy.take()
    theirs_run = buildx.run("build", *args, cwd=tmp_path, env=env)
    theirs = proxy.take()
    ours_run = _ours(args, tmp_path, proxy.address, env)
    ours = proxy.take()
    assert theirs.control, f"buildx sent no solve: {theirs_run.stderr[-2000:]}"
    assert ours.control, f"we sent no solve: {ours_run.stderr[-2000:]}"
    ours_asked = asked(ours, tmp_path)
    assert deliberate(asked(theirs, tmp_path), ours_asked) == ours_asked, entry.command
