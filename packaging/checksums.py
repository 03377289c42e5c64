#!/usr/bin/env python3
"""Write SHA256SUMS for a release directory's archives (the format `sha256sum -c` reads).

Usage: python packaging/checksums.py DIR
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

PATTERNS = ("kubectl-build_*.tar.gz", "kubectl-build_*.zip")


def sums(directory: Path) -> str:
    """The SHA256SUMS text of the archives in ``directory``, sorted by name."""
    lines = []
    for path in sorted(p for pattern in PATTERNS for p in directory.glob(pattern)):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        lines.append(f"{digest.hexdigest()}  {path.name}\n")
    return "".join(lines)


def main() -> int:
    """Command line."""
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    directory = Path(sys.argv[1])
    text = sums(directory)
    if not text:
        sys.exit(f"no kubectl-build archives in {directory}")
    (directory / "SHA256SUMS").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
