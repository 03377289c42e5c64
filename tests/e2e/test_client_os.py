"""Builds from a macOS or a Windows client against the test bed's buildkitd over tcp://.

The interpreter is made to look like the client OS (tests/portability/shim); the daemon,
the registry and the bytes on the wire are real.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from tests.e2e.helpers import load_testbed
from tests.e2e.registry_helpers import tls_registry
from tests.portability.clients import CLIENT_OSES, run_as

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("client_os", CLIENT_OSES)]


def _context(tmp_path: Path, client_os: str) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "sub").mkdir(parents=True)
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (ctx / "sub" / "a.txt").write_text(f"built from a {client_os} client\n")
    (ctx / ".dockerignore").write_text("ignored\n")
    (ctx / "ignored").write_text("must not be sent\n")
    return ctx


def test_a_local_export_over_tcp(client_os: str, tmp_path: Path) -> None:
    testbed = load_testbed()
    out = tmp_path / "out"
    run = run_as(client_os, "kubectl-build", str(_context(tmp_path, client_os)), "--buildkit-host",
                 testbed.env["KB_BUILDKIT_TCP"], "--progress", "plain",
                 "-o", f"type=local,dest={out}")
    assert run.code == 0, run.stderr[-3000:]
    assert (out / "sub" / "a.txt").read_text() == f"built from a {client_os} client\n"
    assert not (out / "ignored").exists()


def test_a_push_with_docker_config_credentials_over_tcp(client_os: str, tmp_path: Path) -> None:
    testbed = load_testbed()
    repo = f"client-os/{client_os}"
    run = run_as(client_os, "kubectl-build", str(_context(tmp_path, client_os)), "--buildkit-host",
                 testbed.env["KB_BUILDKIT_TCP"], "--progress", "quiet",
                 "-t", f"{testbed.registry_tls}/{repo}:1", "--push",
                 env={"DOCKER_CONFIG": testbed.env["KB_DOCKER_CONFIG"]})
    assert run.code == 0, run.stderr[-3000:]
    assert tls_registry(testbed).manifest(repo, "1").digest == run.stdout.strip()
    assert testbed.env["KB_REGISTRY_PASSWORD"] not in run.stdout + run.stderr


def test_modes_and_xattrs_are_what_gos_client_sends_from_that_os(client_os: str, tmp_path: Path) -> None:
    testbed = load_testbed()
    ctx = _context(tmp_path, client_os)
    tagged = ctx / "sub" / "a.txt"
    tagged.chmod(0o644)
    os.setxattr(tagged, "user.kb", b"tagged")  # read through libc's macOS calls on darwin
    out = tmp_path / "out.tar"
    run = run_as(client_os, "kubectl-build", str(ctx), "--buildkit-host", testbed.env["KB_BUILDKIT_TCP"],
                 "--progress", "quiet", "-o", f"type=tar,dest={out}")
    assert run.code == 0, run.stderr[-3000:]
    with tarfile.open(out) as archive:
        member = archive.getmember("sub/a.txt")
    if client_os == "win32":  # Go's sender there: no xattrs, every entry 0755 (0555 read-only)
        assert (oct(member.mode), member.pax_headers) == ("0o755", {})
    else:
        assert (oct(member.mode), member.pax_headers) == ("0o644", {"SCHILY.xattr.user.kb": "tagged"})
