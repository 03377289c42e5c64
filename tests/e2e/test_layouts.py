"""OCI layout directories on the client, written and read by the real daemon over the session.

Local cache export and import (``--cache-to/--cache-from type=local``) and image outputs
into a layout directory (``-o type=oci|docker,tar=false``), checked against what BuildKit's
own Go client (buildctl) writes and reads on the same daemon.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import Testbed, run_cli

pytestmark = pytest.mark.e2e


def _ctx(tmp_path: Path, dockerfile: str) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    (ctx / "a").write_text("layout\n")
    return ctx


def _buildctl(testbed: Testbed, ctx: Path, *args: str) -> str:
    done = subprocess.run([testbed.buildctl, "--addr", testbed.buildkit_host, "build", "--progress", "plain",
                           "--frontend", "dockerfile.v0", "--local", f"context={ctx}",
                           "--local", f"dockerfile={ctx}", *args],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def _forget(testbed: Testbed, marker: str) -> None:
    """Drop the daemon's own cache of the step that echoes ``marker``: a hit must come from DIR."""
    subprocess.run([testbed.buildctl, "--addr", testbed.buildkit_host, "prune", "--filter",
                    f"description~={marker}"], capture_output=True, timeout=120, check=True)


def _step_ends(log: str, marker: str, end: str) -> bool:
    """Whether the step echoing ``marker`` ends ``end`` (DONE or CACHED) in a plain log."""
    return re.search(rf"RUN echo {marker}[^\n]*(\n#\d+ [^\n]*)*?\n#\d+ {end}\b", log) is not None


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("kind", ["oci", "docker"])
def test_a_layout_output_is_byte_for_byte_what_buildctl_writes(kind: str, testbed: Testbed,
                                                               tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY a /a\n")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "quiet",
                  "--build-arg", "SOURCE_DATE_EPOCH=0", "-t", "reg.example.com/ns/app:1.2",
                  "-o", f"type={kind},tar=false,dest={ours}")
    assert run.code == 0, run.stderr[-3000:]
    media = "oci-mediatypes=true" if kind == "oci" else "oci-mediatypes=false"
    _buildctl(testbed, ctx, "--opt", "build-arg:SOURCE_DATE_EPOCH=0", "--output",
              f"type={kind},tar=false,dest={theirs},name=reg.example.com/ns/app:1.2,{media}")
    assert (ours / "index.json").read_bytes() == (theirs / "index.json").read_bytes()
    assert (ours / "oci-layout").read_bytes() == (theirs / "oci-layout").read_bytes()
    assert [f for f in _files(ours) if f.startswith("blobs/")] == \
        [f for f in _files(theirs) if f.startswith("blobs/")]
    assert '"org.opencontainers.image.ref.name":"1.2"' in (ours / "index.json").read_text()


def test_a_local_cache_is_exported_then_imported(testbed: Testbed, tmp_path: Path) -> None:
    marker = f"kb-layout-{uuid.uuid4().hex}"
    ctx = _ctx(tmp_path, f"FROM busybox\nRUN echo {marker} > /stamp\n")
    cache = tmp_path / "cache"
    first = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "plain",
                    "--cache-to", f"type=local,dest={cache},mode=max")
    assert first.code == 0, first.stderr[-3000:]
    assert _step_ends(first.stderr, marker, "DONE"), "the step must run the first time"
    index = (cache / "index.json").read_text()
    assert '"org.opencontainers.image.ref.name":"latest"' in index
    _forget(testbed, marker)
    second = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "plain",
                     "--cache-from", f"type=local,src={cache}")
    assert second.code == 0, second.stderr[-3000:]
    assert "importing cache manifest from local:" in second.stderr
    extracted = set(re.findall(r"extracting (sha256:[0-9a-f]{64})", second.stderr))
    blobs = {f"sha256:{p.name}" for p in (cache / "blobs" / "sha256").iterdir()}
    assert extracted and extracted <= blobs, (extracted, blobs)  # the layer came from our DIR
    assert _step_ends(second.stderr, marker, "CACHED")


def test_caches_cross_between_us_and_buildctl(testbed: Testbed, tmp_path: Path) -> None:
    marker = f"kb-layout-{uuid.uuid4().hex}"
    ctx = _ctx(tmp_path, f"FROM busybox\nRUN echo {marker} > /stamp\n")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "quiet",
                  "--cache-to", f"type=local,dest={ours},mode=max")
    assert run.code == 0, run.stderr[-3000:]
    _forget(testbed, marker)
    log = _buildctl(testbed, ctx, "--import-cache", f"type=local,src={ours}",
                    "--export-cache", f"type=local,dest={theirs},mode=max")
    assert _step_ends(log, marker, "CACHED"), "buildctl must read our cache"
    _forget(testbed, marker)
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "plain",
                  "--cache-from", f"type=local,src={theirs}")
    assert run.code == 0, run.stderr[-3000:]
    assert _step_ends(run.stderr, marker, "CACHED"), "we must read buildctl's cache"


def test_a_missing_local_cache_is_a_warning_and_the_build_goes_on(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY a /a\n")
    never, out = tmp_path / "never", tmp_path / "out"
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "quiet",
                  "--cache-from", f"type=local,src={never}", "-o", f"type=local,dest={out}")
    assert run.code == 0, run.stderr[-3000:]
    assert run.stderr.strip() == (f"warning: --cache-from type=local,src={never}: no index.json there "
                                  "(nothing was exported to it yet); building without this cache")
    assert (out / "a").read_text() == "layout\n"


def test_named_contexts_from_a_layout_a_directory_and_an_image(testbed: Testbed, tmp_path: Path) -> None:
    base_ctx = tmp_path / "base-ctx"
    base_ctx.mkdir()
    (base_ctx / "Dockerfile").write_text("FROM scratch\nCOPY a /from-layout\n")
    (base_ctx / "a").write_text("from the layout\n")
    layout = tmp_path / "layout"
    run = run_cli(str(base_ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "quiet",
                  "-t", "example.com/base:v1", "-o", f"type=oci,tar=false,dest={layout}")
    assert run.code == 0, run.stderr[-3000:]
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "hello").write_text("from a directory\n")
    (extra / "secret.key").write_text("must not be sent\n")
    (extra / ".dockerignore").write_text("*.key\n")  # the named context's own ignore file
    ctx = _ctx(tmp_path, "FROM base\nCOPY --from=extra . /extra/\nCOPY --from=tools /bin/busybox /busybox\n")
    out = tmp_path / "out"
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "plain",
                  "--build-context", f"base=oci-layout://{layout}:v1",
                  "--build-context", f"extra={extra}",
                  "--build-context", "docker.io/library/tools=docker-image://busybox",
                  "-o", f"type=local,dest={out}")
    assert run.code == 0, run.stderr[-3000:]
    assert (out / "from-layout").read_text() == "from the layout\n"
    assert (out / "extra" / "hello").read_text() == "from a directory\n"
    assert not (out / "extra" / "secret.key").exists()
    assert (out / "busybox").stat().st_size > 100_000


def test_an_unresolvable_layout_context_is_a_context_error(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM base\n")
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--build-context",
                  f"base=oci-layout://{tmp_path / 'nowhere'}")
    assert run.code == 3, run.stderr
    assert run.stderr.strip().splitlines() == [
        f"error: build context 'base': oci-layout {tmp_path / 'nowhere'} has no index.json; "
        "point oci-layout:// at a directory written with -o type=oci,tar=false"]


def test_annotations_land_on_each_level_of_a_multi_platform_image(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, "FROM scratch\nCOPY a /a\n")
    layout = tmp_path / "layout"
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "quiet",
                  "--platform", "linux/amd64,linux/arm64", "-o", f"type=oci,tar=false,dest={layout}",
                  "--annotation", "index:org.opencontainers.image.title=app",
                  "--annotation", "manifest:team=core",
                  "--annotation", "manifest[linux/arm64]:note=arm only",
                  "--annotation", "manifest-descriptor:entry=yes",
                  "--annotation", "index-descriptor:outer=1")
    assert run.code == 0, run.stderr[-3000:]

    def blob(digest: str) -> dict[str, Any]:
        return json.loads((layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).read_text())

    (outer,) = json.loads((layout / "index.json").read_text())["manifests"]
    assert outer["annotations"]["outer"] == "1"
    index = blob(outer["digest"])
    assert index["annotations"]["org.opencontainers.image.title"] == "app"
    images = [m for m in index["manifests"] if m["platform"]["os"] == "linux"]
    assert [m["annotations"]["entry"] for m in images] == ["yes", "yes"]
    notes = {m["platform"]["architecture"]: blob(m["digest"])["annotations"] for m in images}
    assert notes["amd64"]["team"] == notes["arm64"]["team"] == "core"
    assert "note" not in notes["amd64"] and notes["arm64"]["note"] == "arm only"
