"""The krew manifest (plugin.yaml), generated from the release archives so digests are right.

Pure: the release build hands in the archives it finds and gets the YAML text back.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

HOMEPAGE = "https://github.com/kubectl-build/kubectl-build"
SHORT_DESCRIPTION = "Build container images with BuildKit, in the cluster or on a buildkitd"
DESCRIPTION = """\
kubectl build builds container images with BuildKit, docker-build style:
  kubectl build . -t registry.example.com/app:1 --platform linux/amd64,linux/arm64 --push
It runs the build on a BuildKit builder in the current cluster (created on first
use) or on any buildkitd (--buildkit-host), streams the context, serves registry
credentials, secrets and SSH agents through the BuildKit session, shows live
progress, and pushes multi-platform images as one image index.
"""
CAVEATS = """\
Registry credentials for --push come from the docker-registry Secret named after
the builder ("buildkit" unless --builder says otherwise) in the builder's namespace;
kubectl build reads it with your RBAC and serves it to BuildKit through the build
session. Create it once and --push just works:
  kubectl create secret docker-registry buildkit \\
    --docker-server=registry.example.com --docker-username=USER --docker-password=PASS
Your local docker config (~/.docker/config.json) is used as well.
"""
COMPANIONS = {
    "build": 'For `kubectl buildkit` (builder management) install the "buildkit" plugin too.\n',
    "buildkit": 'This is the builder-management half of the "build" plugin: install "build" too.\n',
}


@dataclass(frozen=True)
class Platform:
    """One release target: how krew selects it and what its archive holds."""

    os: str
    arch: str

    @property
    def key(self) -> str:
        """``os/arch`` as Go spells it."""
        return f"{self.os}/{self.arch}"

    @property
    def exe(self) -> str:
        """File name of the executable inside the archive."""
        return "kubectl-build.exe" if self.os == "windows" else "kubectl-build"

    @property
    def archive_suffix(self) -> str:
        """``zip`` on Windows (what its users can open), ``tar.gz`` elsewhere."""
        return "zip" if self.os == "windows" else "tar.gz"

    def archive_name(self, version: str) -> str:
        """``kubectl-build_<version>_<os>_<arch>.<suffix>``."""
        return f"kubectl-build_{version}_{self.os}_{self.arch}.{self.archive_suffix}"


PLATFORMS = (
    Platform("linux", "amd64"),
    Platform("linux", "arm64"),
    Platform("darwin", "amd64"),
    Platform("darwin", "arm64"),
    Platform("windows", "amd64"),
)
ARCHIVE_NAME = re.compile(
    r"^kubectl-build_(?P<version>[^_]+)_(?P<os>[a-z]+)_(?P<arch>[a-z0-9]+)\.(tar\.gz|zip)$"
)


@dataclass(frozen=True)
class Artifact:
    """A built archive: its platform and digest."""

    platform: Platform
    name: str
    sha256: str


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def find_artifacts(directory: Path, version: str) -> list[Artifact]:
    """The archives of ``version`` in ``directory``, in PLATFORMS order."""
    found: dict[str, Artifact] = {}
    for path in sorted(directory.iterdir()):
        match = ARCHIVE_NAME.match(path.name)
        if not match or match["version"] != version:
            continue
        platform = Platform(match["os"], match["arch"])
        if platform in PLATFORMS:
            found[platform.key] = Artifact(platform, path.name, sha256_of(path))
    return [found[p.key] for p in PLATFORMS if p.key in found]


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def _platform_entry(platform: Platform, uri: str, sha256: str) -> str:
    return (
        f"- selector:\n"
        f"    matchLabels:\n"
        f"      os: {platform.os}\n"
        f"      arch: {platform.arch}\n"
        f"  uri: {uri}\n"
        f"  sha256: {sha256}\n"
        f"  files:\n"
        f'  - from: "*"\n'
        f"    to: .\n"
        f"  bin: {platform.exe}\n"
    )


def render(version: str, artifacts: list[Artifact], base_url: str, name: str = "build") -> str:
    """The manifest text for ``version``.

    Args:
        version: release version without the leading ``v``.
        artifacts: the archives built for this version (one per platform).
        base_url: where the release archives are downloaded from (``uri`` prefix).
        name: krew plugin name; ``buildkit`` gives the companion manifest.

    Platforms without an archive are listed as comments: their archives are built on
    native runners (see packaging/README.md), and a digest is never invented.
    """
    built = {a.platform.key for a in artifacts}
    entries = "".join(
        _platform_entry(a.platform, f"{base_url}/v{version}/{a.name}", a.sha256) for a in artifacts
    )
    missing = [p for p in PLATFORMS if p.key not in built]
    comment = "".join(
        f"  # {p.key}: not in this release build ({p.archive_name(version)}, native runner)\n"
        for p in missing
    )
    short = SHORT_DESCRIPTION if name == "build" else "Manage BuildKit builders in Kubernetes (kubectl build)"
    return (
        "# GENERATED by packaging/build_release.py from the release archives; do not edit.\n"
        "apiVersion: krew.googlecontainertools.github.com/v1alpha2\n"
        "kind: Plugin\n"
        "metadata:\n"
        f"  name: {name}\n"
        "spec:\n"
        f"  version: v{version}\n"
        f"  homepage: {HOMEPAGE}\n"
        f"  shortDescription: {short}\n"
        "  description: |\n"
        f"{_indent(DESCRIPTION, 4)}"
        "  caveats: |\n"
        f"{_indent(CAVEATS + chr(10) + COMPANIONS[name], 4)}"
        "  platforms:\n"
        f"{_indent(entries, 2)}"
        f"{comment}"
    )
