"""The client against the oldest supported buildkitd (v0.12.x, the test bed's second
daemon at BUILDKIT_HOST_OLD): context with .dockerignore, a two-platform push to the
TLS + auth registry, an OCI tarball, a secret. The solve request carries both the
Exporters list (v0.13+) and the deprecated single-exporter fields v0.12 reads.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import uuid
from pathlib import Path

import pytest

from kubectl_build.errors import ExitCode
from tests.e2e.helpers import Run, Testbed, run_cli
from tests.e2e.registry_helpers import platforms_of, read_file_from_image, tls_registry

pytestmark = pytest.mark.e2e


def _old(testbed: Testbed, *args: str, env: dict[str, str] | None = None) -> Run:
    return run_cli("--buildkit-host", testbed.env["BUILDKIT_HOST_OLD"], "--progress", "plain",
                   *args, env=env, timeout=600)


def _ctx(tmp_path: Path, files: dict[str, str]) -> Path:
    ctx = tmp_path / "ctx"
    for name, text in files.items():
        (ctx / name).parent.mkdir(parents=True, exist_ok=True)
        (ctx / name).write_text(text)
    return ctx


def test_the_daemon_is_the_old_release(testbed: Testbed) -> None:
    run = run_cli("--version", "--buildkit-host", testbed.env["BUILDKIT_HOST_OLD"])
    assert run.code == 0, run.stderr
    version = testbed.env["KB_BUILDKIT_OLD_VERSION"]
    assert version.startswith("v0.12.") and version in run.stdout, run.stdout


def test_context_with_dockerignore(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, {
        "Dockerfile": "FROM scratch\nCOPY . /ctx/\n",
        ".dockerignore": "*.log\n!keep.log\nsecret-dir\n**/*.tmp\n",
        "a.txt": "a", "b.log": "b", "keep.log": "k", "secret-dir/x": "x",
        "sub/d.txt": "d", "sub/e.tmp": "e",
    })
    out = tmp_path / "out"
    run = _old(testbed, str(ctx), "--output", f"type=local,dest={out}")
    assert run.code == 0, run.stderr[-3000:]
    copied = {str(p.relative_to(out / "ctx")) for p in (out / "ctx").rglob("*") if p.is_file()}
    assert copied == {".dockerignore", "Dockerfile", "a.txt", "keep.log", "sub/d.txt"}


def test_two_platform_push_to_tls_registry(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, {
        "Dockerfile": f"FROM busybox\nRUN echo {uuid.uuid4().hex} > /nonce && uname -m > /arch\n",
    })
    repo, tag = f"kb-old-daemon/{uuid.uuid4().hex[:8]}", "multi"
    run = _old(testbed, str(ctx), "--platform", "linux/amd64,linux/arm64", "--push",
               "-t", f"{testbed.registry_tls}/{repo}:{tag}",
               env={"DOCKER_CONFIG": testbed.env["KB_DOCKER_CONFIG"]})
    assert run.code == 0, run.stderr[-3000:]
    client = tls_registry(testbed)
    index = client.manifest(repo, tag)
    assert run.stdout.strip() == index.digest
    doc = index.json()
    assert platforms_of(doc) == {"linux/amd64", "linux/arm64"}
    arches = {m["platform"]["architecture"]: m["digest"] for m in doc["manifests"]}
    assert read_file_from_image(client, repo, arches["arm64"], "arch") == b"aarch64\n"
    assert read_file_from_image(client, repo, arches["amd64"], "arch") == b"x86_64\n"


def test_oci_tarball_output(testbed: Testbed, tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, {"Dockerfile": "FROM scratch\nCOPY hello.txt /greeting\n",
                          "hello.txt": "hi from v0.12\n"})
    dest = tmp_path / "image.tar"
    run = _old(testbed, str(ctx), "-t", "example.com/old:oci",
               "--output", f"type=oci,dest={dest}")
    assert run.code == 0, run.stderr[-3000:]
    with tarfile.open(dest) as archive:
        names = set(archive.getnames())
        assert {"oci-layout", "index.json"} <= names
        index = json.load(archive.extractfile("index.json"))  # type: ignore[arg-type]
        [top] = index["manifests"]
        assert top["annotations"]["io.containerd.image.name"] == "example.com/old:oci"

        def blob(digest: str) -> bytes:
            data = archive.extractfile(f"blobs/sha256/{digest.split(':')[1]}").read()  # type: ignore[union-attr]
            assert hashlib.sha256(data).hexdigest() == digest.split(":")[1]
            return data

        manifest = json.loads(blob(top["digest"]))
        assert len(manifest["layers"]) == 1
        blob(manifest["config"]["digest"])
        blob(manifest["layers"][0]["digest"])


def test_secret_reaches_run(testbed: Testbed, tmp_path: Path) -> None:
    value = f"old-daemon-s3cr3t-{uuid.uuid4().hex}"
    secret = tmp_path / "token"
    secret.write_text(value)
    digest = hashlib.sha256(value.encode()).hexdigest()
    ctx = _ctx(tmp_path, {"Dockerfile": (
        "FROM busybox AS check\n"
        "RUN --mount=type=secret,id=tok "
        f'test "$(sha256sum < /run/secrets/tok | cut -d" " -f1)" = {digest} && echo ok > /done\n'
        "FROM scratch\nCOPY --from=check /done /done\n")})
    out = tmp_path / "out"
    run = _old(testbed, str(ctx), "--secret", f"id=tok,src={secret}",
               "--output", f"type=local,dest={out}")
    assert run.code == 0, run.stderr[-3000:]
    assert (out / "done").read_text() == "ok\n"
    assert value not in run.stdout + run.stderr


def test_several_outputs_are_refused_not_half_written(testbed: Testbed, tmp_path: Path) -> None:
    """v0.12 reads only the deprecated single-exporter fields: the client must not let it
    write the first output and report success for the others."""
    ctx = _ctx(tmp_path, {"Dockerfile": "FROM scratch\nCOPY a /a\n", "a": "a"})
    oci, local = tmp_path / "o.tar", tmp_path / "local"
    run = _old(testbed, str(ctx), "--output", f"type=oci,dest={oci}",
               "--output", f"type=local,dest={local}")
    assert run.code == ExitCode.OUTPUT, (run.code, run.stderr[-3000:])
    last = run.stderr.strip().splitlines()[-1]
    assert testbed.env["KB_BUILDKIT_OLD_VERSION"] in last and "v0.13" in last, last
    assert not oci.exists() and not local.exists()
