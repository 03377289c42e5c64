"""Shared pieces of the multi-arch cluster tests: test-bed env, kubectl, namespaces, kube.

They need `hack/testbed up cluster` running and FAIL, never skip, otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kubectl_build.kube.config import Kube, KubeOptions, connect
from tests.e2e.helpers import STATE

CONTAINERD_WORKER_STATE = Path("/var/lib/buildkit")
BINFMT = Path("/proc/sys/fs/binfmt_misc")


def cluster_env() -> dict[str, str]:
    path = STATE / "cluster" / "env"
    if not path.exists():
        pytest.fail(f"test-bed cluster not running ({path} missing): run hack/testbed up cluster")
    pairs = (
        line.removeprefix("export ").split("=", 1)
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    env = {k: v.strip("'\"") for k, v in pairs}
    ready = subprocess.run(
        ["kubectl", "--kubeconfig", env["KUBECONFIG"], "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if ready.returncode != 0:
        pytest.fail(f"test-bed cluster API not reachable: {ready.stderr.strip()}")
    return env


def kubectl(
    env: Mapping[str, str], *args: str, check: bool = True, timeout: float = 120, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", env["KUBECONFIG"], *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done


@contextmanager
def namespace(env: Mapping[str, str], prefix: str, labels: Mapping[str, str] | None = None) -> Iterator[str]:
    """A fresh namespace, deleted afterwards (with a containerd worker's node directory)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubectl(env, "create", "namespace", name)
    if labels:
        kubectl(env, "label", "namespace", name, *(f"{k}={v}" for k, v in labels.items()))
    try:
        yield name
    finally:
        kubectl(env, "delete", "namespace", name, "--wait=true", "--timeout=120s", check=False, timeout=150)
        _forget_state_dir(CONTAINERD_WORKER_STATE / name)


def _forget_state_dir(path: Path) -> None:
    mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    if path.exists() and not any(m == str(path) or m.startswith(f"{path}/") for m in mounted):
        shutil.rmtree(path, ignore_errors=True)


def kube_for(env: Mapping[str, str], ns: str, kubeconfig: str | None = None) -> Kube:
    return connect(KubeOptions(kubeconfig=kubeconfig or env["KUBECONFIG"], namespace=ns))


def pods(env: Mapping[str, str], ns: str, selector: str | None = None) -> list[dict[str, Any]]:
    args = ["-n", ns, "get", "pods", "-o", "json"] + (["-l", selector] if selector else [])
    items: list[dict[str, Any]] = json.loads(kubectl(env, *args).stdout)["items"]
    return items


def sa_kubeconfig(env: Mapping[str, str], ns: str, tmp_path: Path, rules: Sequence[Mapping[str, Any]]) -> str:
    """A kubeconfig for a new ServiceAccount of `ns` granted only `rules` (a Role)."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "limited"},
        "rules": list(rules),
    }
    kubectl(env, "-n", ns, "apply", "-f", "-", stdin=json.dumps(role))
    kubectl(env, "-n", ns, "create", "serviceaccount", "limited")
    kubectl(
        env, "-n", ns, "create", "rolebinding", "limited", "--role=limited", f"--serviceaccount={ns}:limited"
    )
    token = kubectl(env, "-n", ns, "create", "token", "limited", "--duration=1h").stdout.strip()
    admin = json.loads(kubectl(env, "config", "view", "--raw", "--minify", "-o", "json").stdout)
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "limited",
        "clusters": [cluster],
        "users": [{"name": "limited", "user": {"token": token}}],
        "contexts": [
            {"name": "limited", "context": {"cluster": cluster["name"], "user": "limited", "namespace": ns}}
        ],
    }
    path = tmp_path / "limited.kubeconfig"
    path.write_text(json.dumps(config))
    return str(path)


def worker_platforms(env: Mapping[str, str], ns: str, pod: str) -> list[str]:
    """What the builder's daemon reports now (``ListWorkers`` re-probes emulators)."""
    out = kubectl(
        env, "-n", ns, "exec", pod, "-c", "buildkitd", "--", "buildctl", "debug", "workers", "-v"
    ).stdout
    lines = [line for line in out.splitlines() if line.startswith("Platforms:")]
    assert lines, out
    return lines[0].split(None, 1)[1].split(",")
