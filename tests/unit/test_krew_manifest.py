"""The krew manifest renderer: fields krew requires, digests only for archives that exist."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "packaging"))
from krew_manifest import PLATFORMS, Artifact, find_artifacts, render


def test_render_lists_built_platforms_and_comments_the_rest() -> None:
    linux, darwin = PLATFORMS[0], PLATFORMS[3]
    artifacts = [Artifact(linux, linux.archive_name("1.2.3"), "a" * 64),
                 Artifact(darwin, darwin.archive_name("1.2.3"), "b" * 64)]  # fmt: skip
    text = render("1.2.3", artifacts, "https://example.com/dl")
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert (doc["kind"], doc["metadata"]["name"], doc["spec"]["version"]) == ("Plugin", "build", "v1.2.3")
    assert "kubectl create secret docker-registry buildkit" in doc["spec"]["caveats"]
    first, second = doc["spec"]["platforms"]
    assert first == {
        "selector": {"matchLabels": {"os": "linux", "arch": "amd64"}},
        "uri": "https://example.com/dl/v1.2.3/kubectl-build_1.2.3_linux_amd64.tar.gz",
        "sha256": "a" * 64,
        "files": [{"from": "*", "to": "."}],
        "bin": "kubectl-build",
    }
    assert second["selector"]["matchLabels"] == {"os": "darwin", "arch": "arm64"}
    assert "# windows/amd64: not in this release build (kubectl-build_1.2.3_windows_amd64.zip" in text
    assert yaml.safe_load(render("1.2.3", artifacts, "u", name="buildkit"))["metadata"]["name"] == "buildkit"


def test_find_artifacts_digests_this_versions_archives(tmp_path: Path) -> None:
    (tmp_path / "kubectl-build_1.2.3_linux_amd64.tar.gz").write_bytes(b"x")
    (tmp_path / "kubectl-build_1.2.3_windows_amd64.zip").write_bytes(b"y")
    (tmp_path / "kubectl-build_1.2.2_linux_arm64.tar.gz").write_bytes(b"old")
    found = find_artifacts(tmp_path, "1.2.3")
    assert [a.platform.key for a in found] == ["linux/amd64", "windows/amd64"]
    assert found[0].sha256 == "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
    assert found[1].platform.exe == "kubectl-build.exe"
