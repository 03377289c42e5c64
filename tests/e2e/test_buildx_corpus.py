"""The compatibility corpus: real buildx command lines, asked of buildkitd by buildx and by us.

Each line of golden/buildx_corpus.tsv runs twice through the recording proxy (record-only:
the daemon reads nothing and builds nothing): once as ``buildx build`` on a remote builder,
once as ``kubectl build --buildkit-host``. What the two solves ask (frontend attributes,
exporters, caches, entitlements) must be the same, up to the deliberate differences of
``deliberate`` (each said in the README); lines marked ``refused`` must be refused by both
before the daemon is asked. Lines marked ``build`` are also built for real
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
from tests.e2e.helpers import Testbed, cli_path, run_cli
from tests.e2e.recorder import RecordingProxy
from tests.e2e.test_attestations import SCANNER

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


LOADED = "loaded.tar"
DEFAULT_PROVENANCE = "mode=min,inline-only=true"


def as_remote_buildx(args: list[str]) -> list[str]:
    """The line for buildx without a Docker engine: a load goes to a file instead.

    buildx's ``--load`` (and ``-o type=docker`` without dest) asks the daemon for the docker
    exporter and streams its tar into the Docker engine; streamed into a file, the daemon is
    asked the same. We load into the cluster's image store instead (see ``deliberate``).
    """
    pairs = zip(args, args[1:], strict=False)
    several = any("," in value for flag, value in pairs if flag == "--platform") or \
        any(arg.startswith("--platform=") and "," in arg for arg in args)
    # A multi-platform load needs Docker's containerd store, which takes an OCI layout tar.
    loaded = f"type={'oci' if several else 'docker'},dest={LOADED}"
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--load" or arg == "--load=true":
            out += ["--output", loaded]
        elif arg in ("type=docker", "--output=type=docker", "-o=type=docker") and \
                (not arg.startswith("type=") or args[i - 1] in ("-o", "--output")):
            out.append(loaded if arg == "type=docker" else f"--output={loaded}")
        else:
            out.append(arg)
    return out


def deliberate(theirs: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """buildx's request with our documented differences applied (see the README)."""
    theirs = {**theirs, "exporters": [(kind, {k: v for k, v in attrs.items()
                                              if not (kind == "image" and k == "unpack")})
                                      for kind, attrs in theirs["exporters"]]}
    ours_images = [attrs for kind, attrs in ours["exporters"] if kind == "image"]
    stores = bool(ours_images) and ours_images[0].get("push") != "true"
    if stores:
        # Loaded (buildx: into Docker, as a docker-exporter tar) or stored by a remote
        # builder: ours goes to the builder's image store, OCI-typed, named as buildx names it.
        kinds = {kind for kind, _ in ours["exporters"]}
        theirs["exporters"] = [("image", {**{k: v for k, v in attrs.items() if k != "oci-mediatypes"},
                                          "oci-mediatypes": "true"})
                               if kind in ("docker", "oci") and kind not in kinds else (kind, attrs)
                               for kind, attrs in theirs["exporters"]]
    if not theirs["exporters"] and stores:
        # A tagged build without output: buildx's remote driver keeps it in the cache only.
        theirs["exporters"] = [("image", dict(ours_images[0]))]
    if stores and theirs["frontend_attrs"].get("attest:provenance") == DEFAULT_PROVENANCE:
        # The cluster's image store drops attestations, so we do not ask for the default one.
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
    assert sum(not (e.known or e.refused) for e in ENTRIES) >= 90
    assert sum(e.build for e in ENTRIES) >= 10


@pytest.mark.parametrize("entry", CASES, ids=[f"{i:02d}" for i in range(len(ENTRIES))])
def test_same_solve_as_buildx(entry: Entry, proxy: RecordingProxy, buildx: Buildx, tmp_path: Path) -> None:
    env, _ = command_line(entry.command)
    args = prepare(entry, tmp_path)
    proxy.record_only = True
    proxy.take()
    theirs_run = buildx.run("build", *as_remote_buildx(args), cwd=tmp_path, env=env)
    theirs = proxy.take()
    ours_run = _ours(args, tmp_path, proxy.address, env)
    ours = proxy.take()
    if entry.refused:
        assert (theirs_run.code, ours_run.returncode != 0) == (1, True), ours_run.stderr
        assert not [c for c in theirs.control + ours.control if not c.internal], entry.command
        assert ours_run.stderr.count("\n") == 1 and "Traceback" not in ours_run.stderr, ours_run.stderr
        return
    assert theirs.control, f"buildx sent no solve: {theirs_run.stderr[-2000:]}"
    assert ours.control, f"we sent no solve: {ours_run.stderr[-2000:]}"
    ours_asked = asked(ours, tmp_path)
    assert deliberate(asked(theirs, tmp_path), ours_asked) == ours_asked, entry.command


BUILDS = [e for e in ENTRIES if e.build]
# docker.io resolves to the test bed's registry; the real syft scanner cannot be fetched here.
DEFAULT_SCANNER = "docker/buildkit-syft-scanner:stable-1"


@pytest.fixture(scope="module")
def default_scanner(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> None:
    """buildx's default SBOM generator name, served by a generator speaking the scanner protocol."""
    ctx = tmp_path_factory.mktemp("scanner")
    (ctx / "scan.sh").write_text(SCANNER)
    (ctx / "Dockerfile").write_text('FROM busybox\nCOPY scan.sh /scan.sh\nRUN chmod +x /scan.sh\n'
                                    'ENTRYPOINT ["/scan.sh"]\n')
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "quiet",
                  "-t", f"{testbed.registry}/{DEFAULT_SCANNER}", "--push", "--provenance=false")
    assert run.code == 0, run.stderr[-3000:]


@pytest.mark.parametrize("entry", BUILDS, ids=[f"{ENTRIES.index(e):02d}" for e in BUILDS])
def test_builds_as_buildx_builds(entry: Entry, proxy: RecordingProxy, buildx: Buildx, testbed: Testbed,
                                 tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """Built for real by both tools on the same daemon: the same outputs and pushed images."""
    if "--sbom" in entry.command:
        request.getfixturevalue("default_scanner")
    env, _ = command_line(entry.command)
    proxy.record_only = False
    built: dict[str, Any] = {}
    for who in ("buildx", "ours"):
        work = tmp_path / who
        work.mkdir()
        args = prepare(entry, work, registry=testbed.registry)
        if who == "buildx":
            run = buildx.run("build", *as_remote_buildx(args), cwd=work, env=env)
            code, stderr = run.code, run.stderr
        else:
            done = _ours(args, work, proxy.address, env)
            code, stderr = done.returncode, done.stderr
        assert code == 0, f"{who}: {stderr[-3000:]}"
        built[who] = _outputs(args, work, testbed)
    assert built["ours"] == built["buildx"], entry.command
    assert any(built["ours"].values()) or not _named_outputs(entry), entry.command


def _named_outputs(entry: Entry) -> bool:
    return any(flag in entry.command for flag in (" -o ", "--output", "--push", "--cache-to"))


def _outputs(args: list[str], work: Path, testbed: Testbed) -> dict[str, Any]:
    """What a build left: its local output trees, its cache directories, its pushed images."""
    pairs = list(zip(args, args[1:], strict=False))
    dirs = [v.split("dest=", 1)[1].split(",")[0] if "dest=" in v else v
            for f, v in pairs if f in ("-o", "--output") and "type=registry" not in v]
    caches = [v.split("dest=", 1)[1].split(",")[0] for f, v in pairs
              if f.startswith("--cache-to") and "type=local" in v]
    caches += [a.split("dest=", 1)[1].split(",")[0] for a in args if a.startswith("--cache-to=type=local")]
    pushes = "--push" in args or any("type=registry" in a for a in args)
    tags = [v for f, v in pairs if f in ("-t", "--tag")]
    return {"files": {d: _tree(work / d) for d in dirs},
            "caches": {d: (work / d / "index.json").is_file() and (work / d / "blobs").is_dir()
                       for d in caches},
            "images": {t: _pushed(testbed, t) for t in tags} if pushes else {}}


def _tree(root: Path) -> dict[str, str]:
    """Every file under root with its content; an SBOM by name only (it is timestamped)."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            rel = str(path.relative_to(root))
            timestamped = "sbom" in rel or rel.endswith(".spdx.json")
            found[rel] = "sbom" if timestamped else path.read_text(errors="replace")
    return found


def _pushed(testbed: Testbed, tag: str) -> list[tuple[str, tuple[str, ...]]]:
    """Each pushed image's platform and layer digests, and how many attestations it got."""
    from kubectl_build.registry.client import RegistryClient

    repo, _, ref = tag.removeprefix(testbed.registry + "/").rpartition(":")
    client = RegistryClient(testbed.registry, plain_http=True)
    top = client.manifest(repo, ref).json()
    entries = top.get("manifests") or [{"digest": None, "platform": {"os": "", "architecture": ""}}]
    found = []
    for item in entries:
        manifest = top if item["digest"] is None else client.manifest(repo, item["digest"]).json()
        kind = (item.get("annotations") or {}).get("vnd.docker.reference.type", "image")
        where = "/".join(filter(None, (item["platform"]["os"], item["platform"]["architecture"],
                                       item["platform"].get("variant", "")))) if kind == "image" else ""
        found.append((f"{kind} {where}".strip(), tuple(layer["digest"] for layer in manifest["layers"]
                                                        if kind == "image")))
    return sorted(found)
