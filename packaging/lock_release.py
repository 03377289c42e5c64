#!/usr/bin/env python3
"""Write packaging/release.lock: every package of the frozen executable, pinned and hashed.

    python packaging/lock_release.py            # resolve and write the lock
    python packaging/lock_release.py --check    # fail if the lock does not match its inputs

Inputs: setup.cfg's install_requires and packaging/requirements-release.txt (PyInstaller).
pip resolves them once per release platform (``pip install --dry-run --report`` with that
platform's wheel tags and the release Python), versions held equal across platforms;
each package lists the sha256 of the file every platform picks, and a package only some
platforms need gets an environment marker. build_release.py installs the lock with
``--require-hashes``, so the five archives of one release hold the same dependencies.
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LOCK = HERE / "release.lock"
PYTHON_VERSION = "3.11"
# (marker, pip --platform tags) per release platform, newest tag first.
PLATFORMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "linux/amd64": ('sys_platform == "linux" and platform_machine == "x86_64"',
                    ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
                     "linux_x86_64")),
    "linux/arm64": ('sys_platform == "linux" and platform_machine == "aarch64"',
                    ("manylinux_2_28_aarch64", "manylinux_2_17_aarch64", "manylinux2014_aarch64",
                     "linux_aarch64")),
    "darwin/amd64": ('sys_platform == "darwin" and platform_machine == "x86_64"',
                     ("macosx_11_0_x86_64", "macosx_10_15_x86_64", "macosx_10_9_x86_64",
                      "macosx_10_9_universal2", "macosx_11_0_universal2")),
    "darwin/arm64": ('sys_platform == "darwin" and platform_machine == "arm64"',
                     ("macosx_11_0_arm64", "macosx_11_0_universal2", "macosx_10_9_universal2")),
    "windows/amd64": ('sys_platform == "win32"', ("win_amd64",)),
}
SYSTEM_MARKERS = {"linux": 'sys_platform == "linux"', "darwin": 'sys_platform == "darwin"',
                  "windows": 'sys_platform == "win32"'}


@dataclass
class Locked:
    """One package of the lock: its version, its files' hashes, the platforms needing it."""

    version: str
    hashes: set[str] = field(default_factory=set)
    platforms: set[str] = field(default_factory=set)


def inputs() -> list[str]:
    """The requirements the lock resolves (runtime dependencies + the freezing tools)."""
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    runtime = [line.strip() for line in cfg["options"]["install_requires"].splitlines() if line.strip()]
    tools = [line.strip() for line in (HERE / "requirements-release.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return runtime + tools


def inputs_digest() -> str:
    """What the lock was made from, recorded in its header (--check compares it)."""
    return hashlib.sha256("\n".join([PYTHON_VERSION, *inputs(), *sorted(PLATFORMS)]).encode()
                          ).hexdigest()[:16]


Picked = dict[str, tuple[str, str]]


def target_environment(platform: str) -> dict[str, str]:
    """The marker environment of a release platform (pip evaluates markers for this host)."""
    system, arch = platform.split("/")
    machine = {("linux", "amd64"): "x86_64", ("linux", "arm64"): "aarch64",
               ("darwin", "amd64"): "x86_64", ("darwin", "arm64"): "arm64",
               ("windows", "amd64"): "AMD64"}[(system, arch)]
    return {"sys_platform": {"windows": "win32"}.get(system, system),
            "platform_system": {"linux": "Linux", "darwin": "Darwin", "windows": "Windows"}[system],
            "os_name": "nt" if system == "windows" else "posix", "platform_machine": machine,
            "python_version": PYTHON_VERSION, "python_full_version": f"{PYTHON_VERSION}.0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython",
            "platform_release": "", "platform_version": "", "implementation_version": "", "extra": ""}


def resolve(platform: str, requirements: list[str], constraints: dict[str, str]) -> Picked:
    """What pip picks for ``platform``: name → (version, sha256 of the file).

    pip evaluates environment markers against the interpreter it runs in, not the target
    platform: dependencies only the target needs (colorama for click on Windows, pefile
    for PyInstaller...) are found from the picked packages' metadata and added, until
    nothing more is missing.
    """
    from packaging.requirements import Requirement

    environment, extra = target_environment(platform), set[str]()
    while True:
        picked, requires = _pip_resolve(platform, [*requirements, *sorted(extra)], constraints)
        missing = set()
        for line in requires:
            requirement = Requirement(line)
            name = requirement.name.lower().replace("_", "-")
            if requirement.marker is None or name in picked:
                continue
            if requirement.marker.evaluate(environment):
                requirement.marker = None
                missing.add(str(requirement))
        if missing <= extra:
            return picked
        extra |= missing


def _pip_resolve(platform: str, requirements: list[str],
                 constraints: dict[str, str]) -> tuple[Picked, list[str]]:
    _, tags = PLATFORMS[platform]
    with tempfile.TemporaryDirectory(prefix="kb-lock-") as tmp:
        report, pins = Path(tmp) / "report.json", Path(tmp) / "constraints.txt"
        pins.write_text("".join(f"{n}=={v}\n" for n, v in sorted(constraints.items())))
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                   "--quiet", "--disable-pip-version-check", "--report", str(report),
                   "--only-binary=:all:", "--python-version", PYTHON_VERSION,
                   "--implementation", "cp", "--target", str(Path(tmp) / "target"),
                   "-c", str(pins)]
        for tag in tags:
            command += ["--platform", tag]
        subprocess.run([*command, *requirements], check=True)
        doc = json.loads(report.read_text())
    picked, requires = {}, []
    for item in doc["install"]:
        name = item["metadata"]["name"].lower().replace("_", "-")
        digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
        picked[name] = (item["metadata"]["version"], digest)
        requires += [r for r in item["metadata"].get("requires_dist", []) if "extra ==" not in r]
    return picked, requires


def lock() -> dict[str, Locked]:
    """Resolve on the first platform, then the others held to its versions."""
    requirements = inputs()
    locked: dict[str, Locked] = {}
    for platform in PLATFORMS:
        constraints = {name: entry.version for name, entry in locked.items()}
        for name, (version, digest) in resolve(platform, requirements, constraints).items():
            entry = locked.setdefault(name, Locked(version))
            if entry.version != version:
                sys.exit(f"{name}: {entry.version} on one platform, {version} on {platform}")
            entry.hashes.add(digest)
            entry.platforms.add(platform)
    return locked


def marker(platforms: set[str]) -> str | None:
    """The environment marker for a package needed on ``platforms`` only (None: everywhere)."""
    if platforms == set(PLATFORMS):
        return None
    systems = {p.split("/")[0] for p in platforms}
    whole = {s for s in systems if {p for p in PLATFORMS if p.startswith(f"{s}/")} <= platforms}
    parts = [SYSTEM_MARKERS[s] for s in sorted(whole)]
    parts += [f"({PLATFORMS[p][0]})" for p in sorted(platforms) if p.split("/")[0] not in whole]
    return " or ".join(parts)


def render(locked: dict[str, Locked]) -> str:
    """The lock file's text."""
    lines = [
        "# GENERATED by packaging/lock_release.py: every package of the release executable, with",
        "# the sha256 of the file each release platform installs (pip --require-hashes).",
        f"# inputs: {inputs_digest()} (setup.cfg install_requires, requirements-release.txt,",
        f"#   Python {PYTHON_VERSION}, platforms {', '.join(PLATFORMS)})",
    ]
    for name in sorted(locked):
        entry = locked[name]
        where = marker(entry.platforms)
        line = f"{name}=={entry.version}" + (f" ; {where}" if where else "")
        hashes = [f"    --hash=sha256:{h}" for h in sorted(entry.hashes)]
        lines.append(" \\\n".join([line, *hashes]))
    return "\n".join(lines) + "\n"


def check() -> int:
    """0 when the lock exists and was made from the current inputs."""
    if not LOCK.exists():
        print(f"{LOCK.name} missing: run python packaging/lock_release.py", file=sys.stderr)
        return 1
    if f"# inputs: {inputs_digest()} " not in LOCK.read_text():
        print(f"{LOCK.name} is stale (setup.cfg or requirements-release.txt changed): "
              "run python packaging/lock_release.py", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check the lock is current")
    if parser.parse_args().check:
        return check()
    LOCK.write_text(render(lock()))
    print(f"wrote {LOCK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
