"""Two builds pushed by digest, merged into one index by the client, read back by tag.

This is what a multi-builder build does after its solves: each builder pushes its
platform by digest (no tag), then ``fetch_pushed`` + ``merge_index`` + ``push_index``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from kubectl_build.registry.client import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, fetch_pushed, push_index
from kubectl_build.registry.index import merge_index
from tests.e2e.helpers import Testbed, run_cli
from tests.e2e.registry_helpers import platforms_of, read_file_from_image, tls_registry

pytestmark = pytest.mark.e2e

DOCKERFILE = "FROM busybox\nRUN uname -m > /arch\n"
ARCH = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}


def _push_by_digest(testbed: Testbed, tmp_path: Path, repo: str, platform: str,
                    extra: str) -> str:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    meta = tmp_path / f"meta-{platform.replace('/', '_')}.json"
    output = f"type=image,name={testbed.registry_tls}/{repo},push-by-digest=true,push=true{extra}"
    # no provenance: the merge of plain manifests is what this test reads back
    run = run_cli(str(ctx), "--platform", platform, "-o", output, "--metadata-file", str(meta),
                  "--provenance=false",
                  "--buildkit-host", testbed.buildkit_host, "--progress", "plain",
                  env={"DOCKER_CONFIG": testbed.env["KB_DOCKER_CONFIG"]})
    assert run.code == 0, run.stderr[-3000:]
    digest: str = json.loads(meta.read_text())["containerimage.digest"]
    return digest


@pytest.mark.parametrize(("extra", "media_type"), [("", OCI_INDEX),
                                                   (",oci-mediatypes=false", DOCKER_LIST)])
def test_two_builders_merged_into_one_index(testbed: Testbed, tmp_path: Path, extra: str,
                                            media_type: str) -> None:
    repo = f"e2e/merged-{int(time.time() * 1000)}"
    digests = [_push_by_digest(testbed, tmp_path, repo, platform, extra) for platform in ARCH]
    client = tls_registry(testbed)
    manifests, configs = fetch_pushed(client, repo, digests)
    assert len(configs) == 2  # single-platform pushes are plain manifests: platform from config
    merged = merge_index(manifests, configs)
    assert merged.media_type == media_type
    assert push_index(client, repo, ["v1", "latest"], merged) == merged.digest

    for tag in ("v1", "latest"):
        back = client.manifest(repo, tag)
        assert (back.digest, back.media_type, back.body) == (merged.digest, media_type, merged.body)
    doc = merged.json()
    assert platforms_of(doc) == set(ARCH)
    assert [entry["digest"] for entry in doc["manifests"]] == digests
    if media_type == DOCKER_LIST:
        assert {entry["mediaType"] for entry in doc["manifests"]} == {DOCKER_MANIFEST}
    for entry in doc["manifests"]:
        platform = f"{entry['platform']['os']}/{entry['platform']['architecture']}"
        arch = read_file_from_image(client, repo, entry["digest"], "arch")
        assert arch.decode().strip() == ARCH[platform]
