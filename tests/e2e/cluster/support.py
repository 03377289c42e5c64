"""The test-bed cluster as the cluster tests use it: env, kubectl, namespaces, builders, runs.

One place for what every cluster test module needs, so none imports another's privates.
They need `hack/testbed up cluster` (and core) running and FAIL, never skip, otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from kubectl_build.kube.config import Kube, KubeOptions, connect
from tests.e2e.helpers import STATE, Run, load_testbed, run_cli

CONTAINERD_WORKER_STATE = Path("/var/lib/buildkit")
BINFMT = Path("/proc/sys/fs/binfmt_misc")
ENV_FILE = STATE / "cluster" / "env"
UNAME = "FROM busybox\nRUN uname -m > /arch\n"  # an image that records the arch it ran on


def read_env(path: Path = ENV_FILE) -> dict[str, str]:
    """The ``export K=V`` lines `hack/testbed up cluster` writes, unquoted."""
    if not path.exists():
        pytest.fail(f"test-bed cluster not running ({path} missing): run hack/testbed up cluster")
    pairs = (
        line.strip().removeprefix("export ").split("=", 1)
        for line in path.read_text().splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    )
    return {k: v.strip("'\"") for k, v in pairs}


def cluster_env() -> dict[str, str]:
    """The test bed's env once its API server answers ``/readyz``."""
    env = read_env()
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
def namespace(
    env: Mapping[str, str], prefix: str, labels: Mapping[str, str] | None = None, wait: bool = True
) -> Iterator[str]:
    """A fresh namespace, deleted afterwards (with a containerd worker's node directory).

    ``wait=False`` leaves the deletion to the cluster: quicker, for namespaces whose pods
    hold no node directory a later test could trip over.
    """
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubectl(env, "create", "namespace", name)
    if labels:
        kubectl(env, "label", "namespace", name, *(f"{k}={v}" for k, v in labels.items()))
    try:
        yield name
    finally:
        if wait:
            kubectl(env, "delete", "namespace", name, "--wait=true", "--timeout=120s", check=False,
                    timeout=150)  # fmt: skip
        else:
            kubectl(env, "delete", "namespace", name, "--wait=false", check=False)
        forget_state_dir(CONTAINERD_WORKER_STATE / name)


def forget_state_dir(path: Path) -> None:
    """Delete a containerd worker's node directory once nothing is mounted under it."""
    mounted = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    if path.exists() and not any(m == str(path) or m.startswith(f"{path}/") for m in mounted):
        shutil.rmtree(path, ignore_errors=True)


def shared_state_dir() -> None:
    """The containerd worker needs /var/lib/buildkit on a shared mount, as systemd nodes have.

    The test bed's root mount is private (no systemd), so make just that directory a
    shared mount point, once; idempotent. A real node needs nothing.
    """
    CONTAINERD_WORKER_STATE.mkdir(parents=True, exist_ok=True)
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(CONTAINERD_WORKER_STATE) and any(f.startswith("shared:") for f in fields[6:]):
            return
    path = str(CONTAINERD_WORKER_STATE)
    if subprocess.run(["mountpoint", "-q", path], check=False).returncode != 0:
        subprocess.run(["mount", "--bind", path, path], check=True)
    subprocess.run(["mount", "--make-rshared", path], check=True)


def build(env: Mapping[str, str], ns: str, *args: str, timeout: float = 900,
          extra_env: Mapping[str, str] | None = None) -> Run:  # fmt: skip
    """`kubectl build ARGS -n NS --progress plain` against the test-bed cluster."""
    return run_cli(*args, "-n", ns, "--progress", "plain", timeout=timeout,
                   env={"KUBECONFIG": env["KUBECONFIG"], **(extra_env or {})})  # fmt: skip


def pushing_builder(env: Mapping[str, str], ns: str, name: str = "buildkit") -> None:
    """A builder that reaches the node-local registries (host network), Docker Hub and MCR
    names through the local mirror, and trusts the TLS registry's CA."""
    testbed = load_testbed()
    config = STATE / "cluster" / f"buildkitd-{ns}-{name}.toml"
    config.write_text(
        f'[registry."docker.io"]\n  mirrors = ["{testbed.registry}"]\n'
        f'[registry."mcr.microsoft.com"]\n  mirrors = ["{testbed.registry}"]\n'
        f'[registry."{testbed.registry}"]\n  http = true\n'
        f'[registry."{testbed.registry_tls}"]\n  http = false\n  ca = ["/etc/buildkit/certs/ca.pem"]\n'
    )
    run = run_cli("create", name, "-n", ns, "--worker", "runc", "--host-network", "--config", str(config),
                  "--custom-ca", testbed.env["KB_REGISTRY_CA"], "--timeout", "240",
                  program="kubectl-buildkit", env={"KUBECONFIG": env["KUBECONFIG"]})  # fmt: skip
    assert run.code == 0, run.stderr[-3000:]


def registry_secret(
    env: Mapping[str, str], ns: str, name: str = "buildkit", password: str | None = None
) -> None:
    """A docker-registry Secret for the test bed's TLS registry."""
    testbed = load_testbed()
    kubectl(env, "-n", ns, "create", "secret", "docker-registry", name,
            f"--docker-server={testbed.registry_tls}",
            f"--docker-username={testbed.env['KB_REGISTRY_USER']}",
            f"--docker-password={password or testbed.env['KB_REGISTRY_PASSWORD']}")  # fmt: skip


def deployments(env: Mapping[str, str], ns: str) -> list[str]:
    return kubectl(env, "-n", ns, "get", "deployments,statefulsets", "-o", "name").stdout.split()


def static_busybox_context(tmp_path: Path, message: str) -> Path:
    """An image needing no base-image pull: a static busybox and a message."""
    ctx = tmp_path / "ctx"
    ctx.mkdir(parents=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy(busybox, ctx / "busybox")
    (ctx / "msg").write_text(message)
    (ctx / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\nCOPY msg /msg\nENTRYPOINT ["/bin/busybox", "cat", "/msg"]\n'
    )
    return ctx


def run_pod(env: Mapping[str, str], ns: str, image: str, timeout: float = 120) -> str:
    """Run ``image`` (from the node's store, never pulled) to completion; its log."""
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "runner"},
                "spec": {"restartPolicy": "Never", "containers": [
                    {"name": "c", "image": image, "imagePullPolicy": "Never"}]}}  # fmt: skip
    kubectl(env, "-n", ns, "apply", "-f", "-", stdin=json.dumps(manifest))
    deadline = time.monotonic() + timeout
    phase = ""
    while time.monotonic() < deadline:
        phase = kubectl(env, "-n", ns, "get", "pod", "runner", "-o", "jsonpath={.status.phase}").stdout
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(1)
    assert phase == "Succeeded", kubectl(env, "-n", ns, "describe", "pod", "runner").stdout
    return kubectl(env, "-n", ns, "logs", "runner").stdout


def plan_lines(stderr: str) -> dict[str, str]:
    """Plan lines by platform: ``{"linux/arm64": "cross on kb-node (...)"}``."""
    lines = [ln.removeprefix("plan: ") for ln in stderr.splitlines() if ln.startswith("plan: ")]
    return dict(ln.split(": ", 1) for ln in lines)


def images_by_platform(index: Mapping[str, Any]) -> dict[str, str]:
    """Platform -> manifest digest of an index's images (attestations left out)."""
    found = {}
    for entry in index["manifests"]:
        plat = entry["platform"]
        if plat["os"] == "unknown":
            continue
        key = "/".join(p for p in (plat["os"], plat["architecture"], plat.get("variant", "")) if p)
        found[key] = entry["digest"]
    return found


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
