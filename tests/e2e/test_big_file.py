"""A context file larger than 4 GiB goes through the session to the real daemon intact.

Sizes and offsets beyond 32 bits must survive the FileSync stat, the data packets and
the daemon's copy: the daemon hashes the file inside the build and only that hash
comes back (a local output of a stage holding /sum), to compare with our own hash.
The file is sparse here, but not in the daemon's cache, so the records the build
created are pruned afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.helpers import Testbed, run_cli

pytestmark = pytest.mark.e2e

BIG_SIZE = int(4.1 * 2**30)  # 4.1 GiB: past every 32-bit size and offset
# The daemon stores the context copy and the COPY layer (not sparse), plus headroom.
NEEDED_FREE = 3 * BIG_SIZE
DOCKERFILE = """\
FROM busybox AS sum
COPY big /big
RUN sha256sum /big > /sum
FROM scratch
COPY --from=sum /sum /sum
"""


def _make_big(path: Path) -> bytes:
    """A sparse file of BIG_SIZE bytes whose last bytes are real (and unique) data."""
    tail = f"kubectl-build big file {uuid.uuid4().hex}\n".encode()
    with open(path, "wb") as fh:
        fh.truncate(BIG_SIZE - len(tail))
        fh.seek(BIG_SIZE - len(tail))
        fh.write(tail)
    return tail


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _records(testbed: Testbed) -> list[dict[str, object]]:
    done = subprocess.run([testbed.buildctl, "--addr", testbed.buildkit_host, "du",
                           "--format", "{{json .}}"], capture_output=True, text=True,
                          timeout=120, check=True)
    return json.loads(done.stdout or "[]") or []


def _prune_new_big_records(testbed: Testbed, before: set[str]) -> list[str]:
    """Prune the cache records this build made that hold the big file (>= 1 GiB), with
    the new records stacked on them (a child keeps its parent alive)."""
    new = [r for r in _records(testbed) if r["id"] not in before]
    doomed = {str(r["id"]) for r in new if int(str(r.get("size") or 0)) >= 2**30}
    grown = bool(doomed)
    while grown:
        children = {str(r["id"]) for r in new if set(r.get("parents") or ()) & doomed}  # type: ignore[call-overload]
        grown = not children <= doomed
        doomed |= children
    if doomed:
        filters = [arg for rid in sorted(doomed) for arg in ("--filter", f"id=={rid}")]
        subprocess.run([testbed.buildctl, "--addr", testbed.buildkit_host, "prune", *filters],
                       capture_output=True, timeout=300, check=True)
    return sorted(doomed)


@pytest.mark.timeout(1200)
def test_file_over_4gib_hashes_the_same_in_the_daemon(testbed: Testbed, tmp_path: Path) -> None:
    state = Path(testbed.env["KB_STATE"])
    free = shutil.disk_usage(state).free
    assert free >= NEEDED_FREE, (f"needs {NEEDED_FREE / 2**30:.1f} GiB free for the daemon's "
                                 f"copies, {free / 2**30:.1f} GiB left under {state}")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    big = ctx / "big"
    before = {str(r["id"]) for r in _records(testbed)}
    pruned: list[str] = []
    try:
        _make_big(big)
        assert big.stat().st_size == BIG_SIZE > 2**32
        expected = _sha256(big)
        out = tmp_path / "out"
        run = run_cli("--buildkit-host", testbed.buildkit_host, str(ctx),
                      "--output", f"type=local,dest={out}", "--progress", "plain", timeout=1100)
        assert run.code == 0, run.stderr[-3000:]
        assert sorted(os.listdir(out)) == ["sum"]
        assert (out / "sum").read_text() == f"{expected}  /big\n"
    finally:
        big.unlink(missing_ok=True)
        pruned = _prune_new_big_records(testbed, before)
    # the daemon really held the data (and gave it back): the cleanup found the records
    assert pruned
    assert not set(pruned) & {str(r["id"]) for r in _records(testbed)}
