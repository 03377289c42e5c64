"""``kubectl buildkit imagetools``: indexes made from images in two repositories, read back."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import Testbed, run_cli
from tests.e2e.registry_helpers import platforms_of, tls_registry

pytestmark = pytest.mark.e2e


def _push(testbed: Testbed, tmp_path: Path, name: str, platform: str) -> None:
    ctx = tmp_path / platform.replace("/", "-")
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY id /id\n")
    (ctx / "id").write_text(f"{platform}\n")
    run = run_cli(str(ctx), "--buildkit-host", testbed.buildkit_host, "--progress", "quiet", "--platform",
                  platform, "-t", name, "--push", "--provenance=false",
                  env={"DOCKER_CONFIG": testbed.env["KB_DOCKER_CONFIG"]})
    assert run.code == 0, run.stderr[-3000:]


@pytest.fixture
def docker_config(testbed: Testbed, tmp_path: Path) -> str:
    """The test bed's credentials, plus the TLS registry's CA in certs.d, as Docker finds it."""
    docker = tmp_path / "docker"
    certs = docker / "certs.d" / testbed.registry_tls
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_bytes(Path(testbed.env["KB_REGISTRY_CA"]).read_bytes())
    shutil.copy(Path(testbed.env["KB_DOCKER_CONFIG"]) / "config.json", docker / "config.json")
    return str(docker)


def _tools(docker_config: str, *args: str) -> str:
    run = run_cli("imagetools", *args, program="kubectl-buildkit", env={"DOCKER_CONFIG": docker_config})
    assert run.code == 0, run.stderr[-3000:]
    return run.stdout


def test_create_append_and_inspect_across_repositories(testbed: Testbed, docker_config: str,
                                                       tmp_path: Path) -> None:
    stamp = int(time.time() * 1000)
    reg = testbed.registry_tls
    amd, arm, armv7 = f"{reg}/e2e/tools-a:{stamp}", f"{reg}/e2e/tools-b:{stamp}", f"{reg}/e2e/tools-c:{stamp}"
    for name, platform in ((amd, "linux/amd64"), (arm, "linux/arm64"), (armv7, "linux/arm/v7")):
        _push(testbed, tmp_path, name, platform)
    merged = f"{reg}/e2e/tools-merged:{stamp}"

    planned = json.loads(_tools(docker_config, "create", "--dry-run", "-t", merged, amd, arm))
    assert platforms_of(planned) == {"linux/amd64", "linux/arm64"}
    client = tls_registry(testbed)
    with pytest.raises(Exception, match="404"):
        client.manifest("e2e/tools-merged", str(stamp))  # a dry run pushes nothing

    digest = _tools(docker_config, "create", "-t", merged, "--annotation",
                    "index:org.opencontainers.image.title=t", amd, arm).strip()
    index = client.manifest("e2e/tools-merged", str(stamp))
    assert index.digest == digest and index.json()["annotations"] == {"org.opencontainers.image.title": "t"}
    assert platforms_of(index.json()) == {"linux/amd64", "linux/arm64"}
    for entry in index.json()["manifests"]:  # the children were copied into this repository
        assert client.manifest("e2e/tools-merged", entry["digest"]).digest == entry["digest"]

    _tools(docker_config, "create", "--append", "-t", merged, armv7)
    appended = client.manifest("e2e/tools-merged", str(stamp)).json()
    assert platforms_of(appended) == {"linux/amd64", "linux/arm64", "linux/arm/v7"}

    text = _tools(docker_config, "inspect", merged)
    assert text.splitlines()[:2] == [f"Name:      {merged}",
                                     "MediaType: application/vnd.oci.image.index.v1+json"]
    assert "  Platform:    linux/arm/v7" in text
    assert _tools(docker_config, "inspect", "--raw", merged).rstrip("\n").encode() == \
        client.manifest("e2e/tools-merged", str(stamp)).body
    shown = _tools(docker_config, "inspect", "--format", "{{.Name}} {{json .Manifest}}", merged)
    name, _, doc = shown.partition(" ")
    assert name == merged and platforms_of(json.loads(doc)) == platforms_of(appended)
    image = json.loads(_tools(docker_config, "inspect", "--format", "{{json .Image}}", amd))
    assert (image["os"], image["architecture"]) == ("linux", "amd64")


def test_bad_imagetools_input_is_one_line(testbed: Testbed) -> None:
    run = run_cli("imagetools", "create", "x/y:1", program="kubectl-buildkit")
    assert run.code == 2
    assert run.stderr.strip() == "error: imagetools create needs a tag; pass -t REGISTRY/NAME:TAG"
    run = run_cli("imagetools", "inspect", "--format", "{{.Nope}}", f"{testbed.registry}/library/busybox",
                  program="kubectl-buildkit")
    assert run.code == 2 and "unknown field .Nope" in run.stderr
