"""Docker credential helpers (credsStore / credHelpers) against the real daemon and the
TLS + htpasswd registry of the test bed.

A real executable `docker-credential-kbtest` on PATH implements the helper protocol and
answers with the test bed's registry login; the docker config holds no `auths` at all,
so a successful push proves the credentials came through the helper.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import stat
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from kubectl_build.errors import ExitCode
from tests.e2e.helpers import STATE, Run, Testbed, run_cli
from tests.e2e.registry_helpers import tls_registry

pytestmark = pytest.mark.e2e

# Reads the test bed's login at run time, logs each request (argument + server URL).
HELPER = """#!{python}
import json, sys
action = sys.argv[1] if len(sys.argv) > 1 else ""
server = sys.stdin.read()
with open({log!r}, "a") as fh:
    fh.write(json.dumps([action, server]) + "\\n")
if action != "get":
    sys.exit("unsupported action " + action)
env = json.load(open({env_json!r}))
if server.strip() != env["KB_REGISTRY_TLS"]:
    print("credentials not found in native keychain")
    sys.exit(1)
print(json.dumps({{"ServerURL": server, "Username": env["KB_REGISTRY_USER"],
                  "Secret": env["KB_REGISTRY_PASSWORD"]}}))
"""

BROKEN = """#!/bin/sh
cat >/dev/null
echo "keychain is locked" >&2
exit 1
"""


def _install(bindir: Path, name: str, text: str) -> None:
    bindir.mkdir(exist_ok=True)
    path = bindir / f"docker-credential-{name}"
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _docker_config(tmp_path: Path, config: dict[str, object]) -> Path:
    folder = tmp_path / "docker"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _env(bindir: Path, docker_config: Path) -> dict[str, str]:
    return {"DOCKER_CONFIG": str(docker_config),
            "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}


def _push(testbed: Testbed, tmp_path: Path, env: dict[str, str], repo: str) -> tuple[Run, str]:
    ctx = tmp_path / "ctx"
    ctx.mkdir(exist_ok=True)
    # the nonce makes a new image, so the push really uploads (and needs auth)
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {uuid.uuid4().hex} > /nonce\n")
    tag = uuid.uuid4().hex[:12]
    run = run_cli("--buildkit-host", testbed.buildkit_host, str(ctx), "-t",
                  f"{testbed.registry_tls}/{repo}:{tag}", "--push", "--progress", "plain",
                  env=env, timeout=300)
    return run, tag


def _delete(testbed: Testbed, repo: str, digest: str) -> None:
    """Remove what the test pushed (the registry has deletes enabled)."""
    login = f"{testbed.env['KB_REGISTRY_USER']}:{testbed.env['KB_REGISTRY_PASSWORD']}"
    req = urllib.request.Request(
        f"https://{testbed.registry_tls}/v2/{repo}/manifests/{digest}", method="DELETE",
        headers={"Authorization": "Basic " + base64.b64encode(login.encode()).decode()})
    ctx = ssl.create_default_context(cafile=testbed.env["KB_REGISTRY_CA"])
    with urllib.request.urlopen(req, timeout=10, context=ctx):
        pass


def test_push_with_creds_store_helper(testbed: Testbed, tmp_path: Path) -> None:
    log = tmp_path / "helper.log"
    bindir = tmp_path / "bin"
    _install(bindir, "kbtest", HELPER.format(python=sys.executable, log=str(log),
                                             env_json=str(STATE / "env.json")))
    config = _docker_config(tmp_path, {"credsStore": "kbtest"})  # no auths at all
    repo = f"kbtest-credhelper/{uuid.uuid4().hex[:8]}"
    run, tag = _push(testbed, tmp_path, _env(bindir, config), repo)
    assert run.code == 0, run.stderr[-3000:]
    password = testbed.env["KB_REGISTRY_PASSWORD"]
    assert password not in run.stdout and password not in run.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    # asked with `get` and the bare host as server URL, once per host (cached)
    assert ["get", testbed.registry_tls] in calls
    servers = [server for _, server in calls]
    assert len(servers) == len(set(servers)), calls
    manifest = tls_registry(testbed).manifest(repo, tag)
    assert run.stdout.strip() == manifest.digest
    _delete(testbed, repo, manifest.digest)


@pytest.mark.parametrize(("helpers", "config_key", "program", "detail"), [
    ({}, "credsStore", "kbtest-absent", "not found on PATH"),
    ({"kbtest-broken": BROKEN}, "credHelpers", "kbtest-broken", "keychain is locked"),
])
def test_missing_or_failing_helper_is_a_registry_auth_error(
        testbed: Testbed, tmp_path: Path, helpers: dict[str, str], config_key: str,
        program: str, detail: str) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, text in helpers.items():
        _install(bindir, name, text)
    if config_key == "credsStore":
        doc: dict[str, object] = {"credsStore": program}
    else:
        doc = {"credHelpers": {testbed.registry_tls: program}}
    config = _docker_config(tmp_path, doc)
    run, _ = _push(testbed, tmp_path, _env(bindir, config), "kbtest-credhelper/fail")
    assert run.code == ExitCode.REGISTRY_AUTH, (run.code, run.stderr[-3000:])
    last = run.stderr.strip().splitlines()[-1]
    assert f"docker-credential-{program}" in last and detail in last, last
    assert config_key in last and str(config / "config.json") in last, last
    assert "Traceback" not in run.stderr
    assert testbed.env["KB_REGISTRY_PASSWORD"] not in run.stderr
