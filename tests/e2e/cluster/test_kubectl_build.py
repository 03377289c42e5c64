"""`kubectl build` on the test-bed cluster: builder on first use, load, push, failures.

They need `hack/testbed up cluster` (and core) running and FAIL, never skip, otherwise.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from kubectl_build.errors import ExitCode
from tests.e2e.cluster.support import (
    build,
    deployments,
    kubectl,
    pushing_builder,
    registry_secret,
    run_pod,
    static_busybox_context,
)
from tests.e2e.helpers import Run, cli_path, load_testbed, run_cli
from tests.e2e.registry_helpers import tls_registry

pytestmark = pytest.mark.cluster


def test_first_build_creates_builder_and_loads_image(cluster_env: dict[str, str], namespace: str,
                                                      tmp_path: Path) -> None:
    message = f"hello from {namespace}"
    ctx = static_busybox_context(tmp_path, message)
    tag = f"kbtest/hello:{namespace}"
    run = build(cluster_env, namespace, str(ctx), "-t", tag)
    assert run.code == 0, run.stderr[-4000:]
    assert deployments(cluster_env, namespace) == ["deployment.apps/buildkit"]
    # the short name a pod spec would use resolves to docker.io/kbtest/hello
    assert run_pod(cluster_env, namespace, tag) == message


def test_three_parallel_first_builds_share_one_builder(cluster_env: dict[str, str],
                                                       namespace: str, tmp_path: Path) -> None:
    results: dict[int, Run] = {}

    def one(i: int) -> None:
        ctx = static_busybox_context(tmp_path / str(i), f"parallel {i}")
        results[i] = build(cluster_env, namespace, str(ctx), "-t", f"kbtest/par:{namespace}-{i}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    assert {i: r.code for i, r in results.items()} == {0: 0, 1: 0, 2: 0}, \
        [r.stderr[-2000:] for r in results.values()]
    assert deployments(cluster_env, namespace) == ["deployment.apps/buildkit"]


def test_push_with_builder_named_secret_and_explicit_secret(cluster_env: dict[str, str],
                                                            namespace: str, tmp_path: Path) -> None:
    testbed = load_testbed()
    pushing_builder(cluster_env, namespace)
    registry_secret(cluster_env, namespace, "buildkit")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM busybox\nRUN echo {namespace} > /stamp\n")
    tag = f"{testbed.registry_tls}/cluster/{namespace}:one"
    run = build(cluster_env, namespace, str(ctx), "-t", tag, "--push")
    assert run.code == 0, run.stderr[-4000:]
    manifest = tls_registry(testbed).manifest(f"cluster/{namespace}", "one")
    assert manifest.digest == run.stdout.strip()
    # the same through an explicitly named secret (and no builder-named one)
    kubectl(cluster_env, "-n", namespace, "delete", "secret", "buildkit")
    registry_secret(cluster_env, namespace, "other-creds")
    tag2 = f"{testbed.registry_tls}/cluster/{namespace}:two"
    run = build(cluster_env, namespace, str(ctx), "-t", tag2, "--push",
                "--registry-secret", "other-creds")
    assert run.code == 0, run.stderr[-4000:]
    assert tls_registry(testbed).manifest(f"cluster/{namespace}", "two").digest


def test_wrong_password_names_registry_and_secret(cluster_env: dict[str, str], namespace: str,
                                                  tmp_path: Path) -> None:
    testbed = load_testbed()
    pushing_builder(cluster_env, namespace)
    registry_secret(cluster_env, namespace, "buildkit", password="not-the-password")
    ctx = static_busybox_context(tmp_path, "x")
    run = build(cluster_env, namespace, str(ctx), "-t",
                f"{testbed.registry_tls}/cluster/{namespace}:denied", "--push")
    assert run.code == ExitCode.REGISTRY_AUTH, run.stderr[-3000:]
    line = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")][-1]
    assert testbed.registry_tls in line and f"{namespace}/buildkit" in line
    assert "not-the-password" not in run.stderr
    spec = kubectl(cluster_env, "-n", namespace, "get", "deployment,configmap", "-o", "json").stdout
    assert "not-the-password" not in spec and testbed.env["KB_REGISTRY_PASSWORD"] not in spec


def test_missing_explicit_secret_fails_before_building(cluster_env: dict[str, str],
                                                      namespace: str, tmp_path: Path) -> None:
    ctx = static_busybox_context(tmp_path, "x")
    run = build(cluster_env, namespace, str(ctx), "-t", "kbtest/x:1", "--registry-secret", "nope")
    assert run.code == ExitCode.USAGE
    assert "nope" in run.stderr and "not found" in run.stderr
    assert deployments(cluster_env, namespace) == []


def test_builder_pod_deleted_mid_build(cluster_env: dict[str, str], namespace: str,
                                       tmp_path: Path) -> None:
    ctx = static_busybox_context(tmp_path, "x")
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY busybox /bin/busybox\n"
                                    f'RUN ["/bin/busybox", "sh", "-c", "echo {uuid.uuid4()}; '
                                    'exec /bin/busybox sleep 300"]\n')
    env = {**os.environ, "KUBECONFIG": cluster_env["KUBECONFIG"]}
    proc = subprocess.Popen([cli_path(), str(ctx), "-n", namespace, "--progress", "plain"],
                            stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    seen = b""
    deadline = time.monotonic() + 300
    while b"sleep 300" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read1(4096)  # type: ignore[attr-defined]
    assert b"sleep 300" in seen, seen.decode(errors="replace")[-3000:]
    kubectl(cluster_env, "-n", namespace, "delete", "pod", "-l",
            "kubectl-build.dev/builder=buildkit", "--wait=false")
    started = time.monotonic()
    try:
        code = proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    rest = proc.stderr.read().decode(errors="replace")
    assert code in (ExitCode.DAEMON_UNREACHABLE, ExitCode.BUILDER), rest
    assert time.monotonic() - started < 60
    assert "Traceback" not in rest
    assert "error:" in rest


def test_unknown_builder_and_unreachable_cluster(cluster_env: dict[str, str], namespace: str,
                                                 tmp_path: Path) -> None:
    ctx = static_busybox_context(tmp_path, "x")
    run = build(cluster_env, namespace, str(ctx), "--builder", "no-such-builder")
    assert run.code == ExitCode.BUILDER
    assert "no-such-builder" in run.stderr and "kubectl buildkit create" in run.stderr
    bad = tmp_path / "kubeconfig"
    bad.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
        "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:1"}}],
        "users": [{"name": "x", "user": {"token": "t"}}]}))
    run = run_cli(str(ctx), "--kubeconfig", str(bad), "--progress", "plain")
    assert run.code == ExitCode.CLUSTER, run.stderr
    assert "cannot reach" in run.stderr
    run = build(cluster_env, namespace, str(tmp_path / "missing"), "-t", "x:1")
    assert run.code == ExitCode.CONTEXT
    assert deployments(cluster_env, namespace) == []


def test_user_without_create_rights_uses_existing_builder(cluster_env: dict[str, str],
                                                          namespace: str, tmp_path: Path) -> None:
    # an existing builder, made by an admin
    ctx = static_busybox_context(tmp_path, "rbac")
    assert build(cluster_env, namespace, str(ctx)).code == 0
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "builder-user"},
            "rules": [
                {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["pods", "secrets", "configmaps", "events"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]}
    kubectl(cluster_env, "-n", namespace, "apply", "-f", "-", stdin=json.dumps(role))
    kubectl(cluster_env, "-n", namespace, "create", "serviceaccount", "dev")
    kubectl(cluster_env, "-n", namespace, "create", "rolebinding", "dev",
            "--role=builder-user", f"--serviceaccount={namespace}:dev")
    token = kubectl(cluster_env, "-n", namespace, "create", "token", "dev").stdout.strip()
    server = kubectl(cluster_env, "config", "view", "--minify", "--raw", "-o",
                     "jsonpath={.clusters[0].cluster.server}").stdout
    ca = kubectl(cluster_env, "config", "view", "--minify", "--raw", "-o",
                 "jsonpath={.clusters[0].cluster.certificate-authority-data}").stdout
    config = tmp_path / "dev-kubeconfig"
    config.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "contexts": [{"name": "dev", "context": {"cluster": "c", "user": "dev",
                                                  "namespace": namespace}}],
        "clusters": [{"name": "c", "cluster": {"server": server,
                                               "certificate-authority-data": ca}}],
        "users": [{"name": "dev", "user": {"token": token}}]}))
    out = tmp_path / "out"
    run = run_cli(str(ctx), "--kubeconfig", str(config), "-o", f"type=local,dest={out}",
                  "--progress", "plain")
    assert run.code == 0, run.stderr[-3000:]
    assert (out / "msg").read_text() == "rbac"
    # in a namespace without a builder, the same user gets a clear "forbidden"
    other = f"{namespace}-empty"
    kubectl(cluster_env, "create", "namespace", other)
    try:
        kubectl(cluster_env, "-n", other, "apply", "-f", "-", stdin=json.dumps(role))
        kubectl(cluster_env, "-n", other, "create", "rolebinding", "dev", "--role=builder-user",
                f"--serviceaccount={namespace}:dev")
        run = run_cli(str(ctx), "--kubeconfig", str(config), "-n", other, "--progress", "plain")
        assert run.code in (ExitCode.BUILDER, ExitCode.CLUSTER), run.stderr
        assert "forbidden" in run.stderr.lower()
        assert deployments(cluster_env, other) == []
    finally:
        kubectl(cluster_env, "delete", "namespace", other, "--wait=false", check=False)


def test_secret_never_in_pod_spec(cluster_env: dict[str, str], namespace: str) -> None:
    pushing_builder(cluster_env, namespace)
    raw = kubectl(cluster_env, "-n", namespace, "get", "deployment", "buildkit", "-o", "json").stdout
    password = load_testbed().env["KB_REGISTRY_PASSWORD"]
    assert password not in raw and base64.b64encode(password.encode()).decode() not in raw


def test_remembered_pod_gone_falls_back_to_the_lookup(cluster_env: dict[str, str],
                                                      namespace: str, tmp_path: Path) -> None:
    """The warm path dials the pod of the last build; when it is gone the early exec's
    failure is noticed (not waited out) and the build goes to the new pod."""
    ctx = static_busybox_context(tmp_path, "warm")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    first = build(cluster_env, namespace, str(ctx), "-o", "type=cacheonly", extra_env=env)
    assert first.code == 0, first.stderr[-4000:]
    kubectl(cluster_env, "-n", namespace, "delete", "pods", "-l",
            "kubectl-build.dev/builder=buildkit", "--wait=true", timeout=180)
    kubectl(cluster_env, "-n", namespace, "rollout", "status", "deployment/buildkit",
            "--timeout=180s", timeout=200)
    again = build(cluster_env, namespace, str(ctx), "-o", "type=cacheonly", "--debug", extra_env=env)
    assert again.code == 0, again.stderr[-4000:]
    assert "is gone; looking it up" in again.stderr
    third = build(cluster_env, namespace, str(ctx), "-o", "type=cacheonly", "--debug", extra_env=env)
    assert third.code == 0 and "is gone" not in third.stderr, third.stderr[-4000:]


def test_create_remembers_the_pod_for_the_first_build(cluster_env: dict[str, str],
                                                      namespace: str, tmp_path: Path) -> None:
    """`kubectl buildkit create` saves what a build's lookup would: the first build after it
    dials the new pod straight away, and plans its platforms from the nodes create listed."""
    env = {"KUBECONFIG": cluster_env["KUBECONFIG"], "XDG_CACHE_HOME": str(tmp_path / "cache")}
    made = run_cli("create", "-n", namespace, "--worker", "runc", "--timeout", "240",
                   program="kubectl-buildkit", env=env)
    assert made.code == 0, made.stderr[-3000:]
    pod = kubectl(cluster_env, "-n", namespace, "get", "pods", "-l",
                  "kubectl-build.dev/builder=buildkit", "-o",
                  "jsonpath={.items[0].metadata.name}").stdout
    ctx = static_busybox_context(tmp_path, "created")
    run = build(cluster_env, namespace, str(ctx), "-o", "type=cacheonly", "--debug",
                "--platform", "linux/amd64,linux/arm64", extra_env=env)
    assert run.code == 0, run.stderr[-4000:]
    assert f"dialled remembered builder pod {pod}" in run.stderr, run.stderr[-4000:]
    assert "nodes as listed recently (no API call)" in run.stderr
