"""The release workflow is a thin matrix over scripts: each exists, and the pure ones work."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "packaging"))
import checksums  # noqa: E402
import client_checks  # noqa: E402
import emulation  # noqa: E402
import homebrew  # noqa: E402
import krew_manifest  # noqa: E402
import lock_release  # noqa: E402

WORKFLOW = REPO / ".github" / "workflows" / "clients.yml"


def _run_lines() -> list[str]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    return [line for job in doc["jobs"].values() for step in job["steps"] if "run" in step
            for line in step["run"].splitlines()]


def test_every_script_the_workflow_runs_is_in_the_repo() -> None:
    scripts = {m for line in _run_lines() for m in re.findall(r"(?:hack|packaging)/[\w./-]+", line)}
    assert {"packaging/build_release.py", "packaging/smoke.py", "packaging/checksums.py",
            "packaging/client_checks.py", "hack/testbed"} <= scripts
    assert [s for s in sorted(scripts) if not (REPO / s).is_file()] == []


def test_the_matrix_covers_the_five_release_platforms() -> None:
    doc = yaml.safe_load(WORKFLOW.read_text())
    platforms = {entry["platform"] for entry in doc["jobs"]["client"]["strategy"]["matrix"]["include"]}
    assert platforms == set(lock_release.PLATFORMS)


def test_client_checks_name_existing_suites() -> None:
    assert [s for s in client_checks.SUITES if not (REPO / s).exists()] == []


def test_checksums_are_what_sha256sum_checks(tmp_path: Path) -> None:
    (tmp_path / "kubectl-build_1.0.0_linux_amd64.tar.gz").write_bytes(b"linux")
    (tmp_path / "kubectl-build_1.0.0_windows_amd64.zip").write_bytes(b"windows")
    (tmp_path / "notes.txt").write_text("not an archive")
    text = checksums.sums(tmp_path)
    assert text == (f"{hashlib.sha256(b'linux').hexdigest()}  kubectl-build_1.0.0_linux_amd64.tar.gz\n"
                    f"{hashlib.sha256(b'windows').hexdigest()}  kubectl-build_1.0.0_windows_amd64.zip\n")
    (tmp_path / "SHA256SUMS").write_text(text)
    done = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_lock_markers_name_only_the_platforms_needing_a_package() -> None:
    assert lock_release.marker(set(lock_release.PLATFORMS)) is None
    assert lock_release.marker({"windows/amd64"}) == 'sys_platform == "win32"'
    assert lock_release.marker({"darwin/amd64", "darwin/arm64"}) == 'sys_platform == "darwin"'
    assert lock_release.marker({"linux/arm64"}) == (
        '(sys_platform == "linux" and platform_machine == "aarch64")')


def test_the_lock_is_current_and_fully_hashed() -> None:
    assert lock_release.check() == 0
    entries = [e for e in lock_release.LOCK.read_text().split("\n") if re.match(r"^[a-z0-9]", e)]
    assert len(entries) > 20
    text = lock_release.LOCK.read_text()
    for name in ("grpcio", "protobuf", "kubernetes", "click", "rich", "h2", "pyinstaller"):
        block = re.search(rf"^{name}==\S+.*?(?=^\S|\Z)", text, re.M | re.S)
        assert block and "--hash=sha256:" in block.group(0), name


def test_emulated_wheels_are_those_an_arm64_glibc_takes() -> None:
    tags = emulation.wheel_platforms((2, 36))
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_17_aarch64" in tags
    assert "manylinux_2_16_aarch64" not in tags and tags[-2:] == ["manylinux2014_aarch64", "linux_aarch64"]


def test_emulation_names_everything_a_sysroot_lacks(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as failed:
        emulation.Emulation.of(tmp_path)
    message = str(failed.value)
    assert message.startswith("cannot freeze for linux/arm64 under emulation; missing:")
    assert "an arm64 python3 under" in message and "hack/install-deps.sh" in message
    assert "ld-linux-aarch64.so.1" in message and "\n" not in message


def test_the_homebrew_formula_has_a_block_per_archive_and_a_comment_per_gap() -> None:
    linux = krew_manifest.Artifact(krew_manifest.Platform("linux", "amd64"), "k_linux_amd64.tar.gz", "a" * 64)
    mac = krew_manifest.Artifact(krew_manifest.Platform("darwin", "arm64"), "k_darwin_arm64.tar.gz", "b" * 64)
    formula = homebrew.render("1.2.3", [linux, mac], "https://dl/v1.2.3")
    assert formula.count(" do\n") == 5  # on_macos, on_linux, one per archive, test
    mac_block = '    on_arm do\n      url "https://dl/v1.2.3/k_darwin_arm64.tar.gz"\n      sha256 "'
    assert mac_block + "b" * 64 in formula
    assert "# darwin/amd64: no archive in this release" in formula
    assert "# linux/arm64: no archive in this release" in formula
    assert 'version "1.2.3"' in formula and "bin.install_symlink libexec/name" in formula
