#!/usr/bin/env python3
"""A krew custom index for kubectl-build: a git repository whose plugins/ holds both manifests.

    python packaging/krew_index.py --release dist/release --base-url URL --out DIR [--commit]

Users add it once and install from it by name, with no entry in krew's central index
(whose ``build``/``buildkit`` names the archived buildkit-cli-for-kubectl already took):

    kubectl krew index add kubectl-build <git URL of the index>
    kubectl krew install kubectl-build/build kubectl-build/buildkit

The manifests are rendered from the archives in --release (digests computed, never
typed), with download URLs under --base-url. --commit makes DIR a git repository (if it is
not one) and commits the manifests, which is what krew clones. The release workflow
publishes it; tests/e2e/test_krew.py serves one from a local repository and a loopback
HTTP server.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from build_release import version  # noqa: E402
from krew_manifest import find_artifacts, render  # noqa: E402

INDEX_NAME = "kubectl-build"
PLUGINS = ("build", "buildkit")
_GIT_IDENTITY = {"GIT_AUTHOR_NAME": "kubectl-build release", "GIT_AUTHOR_EMAIL": "release@localhost",
                 "GIT_COMMITTER_NAME": "kubectl-build release",
                 "GIT_COMMITTER_EMAIL": "release@localhost"}


def write_index(release: Path, base_url: str, out: Path) -> list[Path]:
    """plugins/<name>.yaml for both plugins, from the archives in ``release``."""
    ver = version()
    artifacts = find_artifacts(release, ver)
    if not artifacts:
        sys.exit(f"no kubectl-build_{ver}_* archives in {release}")
    plugins = out / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    written = []
    for name in PLUGINS:
        path = plugins / f"{name}.yaml"
        path.write_text(render(ver, artifacts, base_url.rstrip("/"), name=name))
        written.append(path)
    return written


def commit(out: Path, message: str) -> None:
    """Commit plugins/ in ``out`` (a new repository if it is none)."""
    env = {**os.environ, **_GIT_IDENTITY}

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(out), *args], check=True, env=env, capture_output=True)

    if not (out / ".git").exists():
        git("init", "-q", "-b", "main")
    git("add", "plugins")
    git("commit", "-q", "--allow-empty", "-m", message)


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--release", type=Path, required=True, help="directory of the archives")
    parser.add_argument("--base-url", required=True, help="download URL prefix (uri = BASE/vVERSION/NAME)")
    parser.add_argument("--out", type=Path, required=True, help="the index repository's directory")
    parser.add_argument("--commit", action="store_true", help="commit the manifests in --out")
    args = parser.parse_args()
    for path in write_index(args.release, args.base_url, args.out):
        print(f"wrote {path}")
    if args.commit:
        commit(args.out, f"kubectl-build v{version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
