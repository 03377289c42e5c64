"""SBOM and provenance attestations, read back from the registry and decoded.

The SBOM generator is an image of our own (the stock one is docker/buildkit-syft-scanner,
which this machine cannot pull): it speaks BuildKit's scanner protocol (scan the rootfs at
$BUILDKIT_SCAN_SOURCE, write in-toto statements to $BUILDKIT_SCAN_DESTINATION) and writes
an SPDX document naming the image's files, which is what the test then finds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from kubectl_build.registry.client import RegistryClient
from tests.e2e.helpers import Testbed, run_cli
from tests.e2e.registry_helpers import attested_digests, is_attestation, tls_registry

pytestmark = pytest.mark.e2e

SCANNER = """#!/bin/sh
set -e
files=$(cd "$BUILDKIT_SCAN_SOURCE" && find . -type f | sort | tr '\\n' ' ')
printf '{"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document",\
"subject":[],"predicate":{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"kb-test-sbom",\
"dataLicense":"CC0-1.0","documentNamespace":"https://example.invalid/kb","creationInfo":\
{"created":"1970-01-01T00:00:00Z","creators":["Tool: kb-test-generator"]},"comment":"files: %s"}}\\n' \
"$files" > "$BUILDKIT_SCAN_DESTINATION/kb.spdx.json"
"""


@pytest.fixture(scope="module")
def generator(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> str:
    ctx = tmp_path_factory.mktemp("generator")
    (ctx / "scan.sh").write_text(SCANNER)
    (ctx / "Dockerfile").write_text('FROM busybox\nCOPY scan.sh /scan.sh\nRUN chmod +x /scan.sh\n'
                                    'ENTRYPOINT ["/scan.sh"]\n')
    image = f"{testbed.registry}/kb-test/sbom-generator:1"
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "quiet", "-t", image,
                  "--push", "--provenance=false")
    assert run.code == 0, run.stderr[-3000:]
    return image


def _statements(client: RegistryClient, repo: str, index: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The in-toto statements of the index's attestation manifest, by predicate type."""
    (attestation,) = [m for m in index["manifests"] if is_attestation(m)]
    manifest = client.manifest(repo, attestation["digest"]).json()
    found = {}
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.in-toto+json"
        statement = json.loads(client.blob(repo, layer["digest"]))
        assert statement["predicateType"] == layer["annotations"]["in-toto.io/predicate-type"]
        found[statement["predicateType"]] = statement
    return found


def test_sbom_and_max_provenance_are_pushed_with_the_image(testbed: Testbed, generator: str,
                                                           tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nARG KB_ARG\nCOPY app.txt /app.txt\n")
    (ctx / "app.txt").write_text("attested\n")
    repo, tag = "e2e/attested", f"v{int(time.time() * 1000)}"
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "quiet",
                  "-t", f"{testbed.registry_tls}/{repo}:{tag}", "--push", "--build-arg", "KB_ARG=hello",
                  "--sbom", f"generator={generator}", "--provenance", "mode=max",
                  env={"DOCKER_CONFIG": testbed.env["KB_DOCKER_CONFIG"]})
    assert run.code == 0, run.stderr[-3000:]
    client = tls_registry(testbed)
    index = client.manifest(repo, tag).json()
    (image,) = [m for m in index["manifests"] if not is_attestation(m)]
    assert attested_digests(index) == {image["digest"]}
    statements = _statements(client, repo, index)
    sbom = statements["https://spdx.dev/Document"]
    assert sbom["predicate"]["name"] == "kb-test-sbom" and "./app.txt" in sbom["predicate"]["comment"]
    assert [s["digest"]["sha256"] for s in sbom["subject"]]  # BuildKit names the image it describes
    kind, provenance = next((t, s) for t, s in statements.items() if t.startswith("https://slsa.dev/provenance/"))
    predicate = provenance["predicate"]
    # SLSA v1 (newer daemons' default) keeps the request under buildDefinition; v0.2 under invocation
    request = predicate["buildDefinition"]["externalParameters"]["request"] if kind.endswith("/v1") \
        else predicate["invocation"]["parameters"]
    assert request["frontend"] == "dockerfile.v0"
    assert request["args"]["build-arg:KB_ARG"] == "hello"


def test_disabled_attestations_leave_a_plain_image(testbed: Testbed, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY app.txt /app.txt\n")
    (ctx / "app.txt").write_text("plain\n")
    repo, tag = "e2e/unattested", f"v{int(time.time() * 1000)}"
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "quiet",
                  "-t", f"{testbed.registry_tls}/{repo}:{tag}", "--push", "--provenance", "false",
                  env={"DOCKER_CONFIG": testbed.env["KB_DOCKER_CONFIG"]})
    assert run.code == 0, run.stderr[-3000:]
    manifest = tls_registry(testbed).manifest(repo, tag)
    assert manifest.media_type == "application/vnd.oci.image.manifest.v1+json"
