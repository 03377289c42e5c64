"""`kubectl buildkit` builders on the test-bed cluster: create, ls, inspect, diff, rm, failures.

They need `hack/testbed up cluster` (and core, for the node-local registry) running and
FAIL, never skip, otherwise. Each test uses a fresh namespace and deletes it.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubectl_build.errors import ExitCode
from tests.e2e.cluster import support
from tests.e2e.cluster.support import kubectl, sa_kubeconfig
from tests.e2e.helpers import Run, run_cli

pytestmark = pytest.mark.cluster

@pytest.fixture(scope="module")
def env(cluster_env: dict[str, str]) -> dict[str, str]:
    support.shared_state_dir()
    return cluster_env


@pytest.fixture
def ns(env: dict[str, str]) -> Iterator[str]:
    with support.namespace(env, "kb-bld", wait=False) as name:
        yield name


def buildkit(
    env: dict[str, str], ns: str, *args: str, kubeconfig: str | None = None, timeout: float = 400
) -> Run:
    return run_cli(
        *args,
        "-n",
        ns,
        program="kubectl-buildkit",
        timeout=timeout,
        env={"KUBECONFIG": kubeconfig or env["KUBECONFIG"]},
    )


def containerd_flags(env: dict[str, str]) -> list[str]:
    """The test bed's containerd lives at non-standard paths (its own root and state); the
    second node has its own containerd, so the builder is pinned to the first node."""
    sock = env["KB_CLUSTER_CONTAINERD_SOCK"]
    base = str(Path(sock).parent)
    return [
        "--containerd-sock",
        sock,
        "--containerd-root",
        f"{base}/root",
        "--containerd-state",
        f"{base}/state",
        "--node-selector",
        f"kubernetes.io/hostname={env['KB_CLUSTER_NODE']}",
    ]


def objects(env: dict[str, str], ns: str) -> list[str]:
    out = kubectl(
        env, "-n", ns, "get", "deployments,statefulsets,replicasets,pods,configmaps,pvc", "-o", "name"
    ).stdout.split()
    return [o for o in out if o != "configmap/kube-root-ca.crt"]


def deployment(env: dict[str, str], ns: str, name: str = "buildkit") -> dict:  # type: ignore[type-arg]
    return json.loads(kubectl(env, "-n", ns, "get", "deployment", name, "-o", "json").stdout)  # type: ignore[no-any-return]


def test_containerd_builder_lifecycle(env: dict[str, str], ns: str) -> None:
    run = buildkit(env, ns, "create", *containerd_flags(env), "--host-network")
    assert run.code == 0, run.stderr
    assert run.stdout == "buildkit\n"
    assert "creating builder buildkit in namespace" in run.stderr and "(containerd worker" in run.stderr
    pod = deployment(env, ns)["spec"]["template"]["spec"]
    assert pod["containers"][0]["securityContext"] == {"privileged": True}

    ls = buildkit(env, ns, "ls")
    assert ls.code == 0, ls.stderr
    header, row = ls.stdout.splitlines()
    everywhere = buildkit(env, "default", "ls", "-A")
    assert any(line.split()[:2] == ["buildkit", ns] for line in everywhere.stdout.splitlines()), everywhere
    assert header.split() == ["NAME", "NAMESPACE", "WORKER", "PODS", "NODES", "IMAGE", "AGE"]
    assert row.split()[:6] == [
        "buildkit",
        ns,
        "containerd",
        "1/1",
        env["KB_CLUSTER_NODE"],
        env["KB_CLUSTER_BUILDKIT_IMAGE"],
    ]

    inspect = buildkit(env, ns, "inspect")
    assert inspect.code == 0, inspect.stderr
    assert "BuildKit:  github.com/moby/buildkit v0.34.2" in inspect.stdout
    assert "Worker:    containerd" in inspect.stdout and "linux/amd64" in inspect.stdout

    # The worker really runs steps through the node's containerd, and the image lands in
    # the kubelet's store (k8s.io).
    _buildctl_build(env, ns, f"docker.io/library/kb-bld:{ns}")
    images = kubectl(
        env, "get", "node", env["KB_CLUSTER_NODE"], "-o", "jsonpath={.status.images[*].names}", timeout=30
    ).stdout
    ctr = subprocess.run(
        [env["KB_CLUSTER_CTR"], "-a", env["KB_CLUSTER_CONTAINERD_SOCK"], "-n", "k8s.io",
         "images", "ls", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert f"docker.io/library/kb-bld:{ns}" in ctr.stdout + images

    _diff_then_force(env, ns)

    rm = buildkit(env, ns, "rm", "buildkit")
    assert rm.code == 0, rm.stderr
    assert f"of build cache on {env['KB_CLUSTER_NODE']}" in rm.stderr  # containerd's leases released
    assert objects(env, ns) == []
    again = buildkit(env, ns, "rm", "buildkit")
    assert again.code == ExitCode.BUILDER and "no builder buildkit" in again.stderr


def _buildctl_build(env: dict[str, str], ns: str, name: str) -> None:
    pod = kubectl(
        env,
        "-n",
        ns,
        "get",
        "pod",
        "-l",
        "kubectl-build.dev/builder=buildkit",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ).stdout
    script = (
        "set -e; d=$(mktemp -d); cd $d; echo s3cr3t > s; "
        "printf 'FROM 127.0.0.1:5000/library/busybox:1.36 AS a\\nRUN echo from-a > /a\\n"
        "FROM 127.0.0.1:5000/library/busybox:1.36\\nRUN --mount=type=secret,id=s cp /run/secrets/s /got\\n"
        "RUN --mount=from=a,target=/m cat /m/a /got\\n' > Dockerfile; "
        "buildctl build --frontend dockerfile.v0 --local context=. --local dockerfile=. --secret id=s,src=s "
        f"--progress plain --output type=image,name={name} 2>&1"
    )
    done = kubectl(env, "-n", ns, "exec", pod, "--", "sh", "-c", script, check=False, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "from-a" in done.stdout and "s3cr3t" in done.stdout


def _diff_then_force(env: dict[str, str], ns: str) -> None:
    other = "docker.io/moby/buildkit:v0.34.2-rootless"
    run = buildkit(env, ns, "create", *containerd_flags(env), "--host-network", "--image", other)
    assert run.code == ExitCode.BUILDER, run.stderr
    assert f"  image: {env['KB_CLUSTER_BUILDKIT_IMAGE']} -> {other}" in run.stderr
    assert "exists with a different spec (image: see above); pass --force to update it" in run.stderr
    assert (
        deployment(env, ns)["spec"]["template"]["spec"]["containers"][0]["image"]
        == env["KB_CLUSTER_BUILDKIT_IMAGE"]
    )
    # same spec again: nothing to do
    same = buildkit(env, ns, "create", *containerd_flags(env), "--host-network")
    assert same.code == 0 and "already exists" in same.stderr, same.stderr
    forced = buildkit(
        env,
        ns,
        "create",
        *containerd_flags(env),
        "--host-network",
        "--env",
        "KB_E2E=1",
        "--requests",
        "cpu=10m",
        "--force",
    )
    assert forced.code == 0, forced.stderr
    assert "  env: " in forced.stderr and "updating builder buildkit" in forced.stderr
    box = deployment(env, ns)["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "KB_E2E", "value": "1"} in box["env"] and box["resources"]["requests"] == {"cpu": "10m"}
    pods = kubectl(env, "-n", ns, "get", "pods", "-o", "json").stdout
    assert len(json.loads(pods)["items"]) == 1  # the old pod is gone, the new one ready


def test_node_annotations_give_a_default_builder_the_node_paths(env: dict[str, str], ns: str) -> None:
    """An admin annotates nodes whose containerd is not at the standard paths; a builder
    created without path flags (as `kubectl build` does on first use) then fits them."""
    node = env["KB_CLUSTER_NODE"]
    base = str(Path(env["KB_CLUSTER_CONTAINERD_SOCK"]).parent)
    wanted = {
        "kubectl-build.dev/containerd-sock": env["KB_CLUSTER_CONTAINERD_SOCK"],
        "kubectl-build.dev/containerd-root": f"{base}/root",
        "kubectl-build.dev/containerd-state": f"{base}/state",
    }
    before = json.loads(kubectl(env, "get", "node", node, "-o", "json").stdout)["metadata"].get(
        "annotations", {}
    )
    kubectl(env, "annotate", "--overwrite", "node", node, *(f"{k}={v}" for k, v in wanted.items()))
    try:
        # No flags at all, as `kubectl build` creates it. Where the second node's containerd
        # lives elsewhere, the builder is pinned to the annotated node.
        run = buildkit(env, ns, "create")
        assert run.code == 0, run.stderr
        box = deployment(env, ns)["spec"]["template"]["spec"]["containers"][0]
        assert box["args"][-2:] == ["--containerd-worker-addr", env["KB_CLUSTER_CONTAINERD_SOCK"]]
        row = buildkit(env, ns, "ls").stdout.splitlines()[1].split()
        assert row[2:5] == ["containerd", "1/1", node], row
        assert buildkit(env, ns, "rm", "buildkit").code == 0
    finally:
        # Leave the shared node as it was.
        restore = [f"{k}={before[k]}" if k in before else f"{k}-" for k in wanted]
        kubectl(env, "annotate", "--overwrite", "node", node, *restore)


def test_rootless_builder_reads_its_config_and_builds(env: dict[str, str], ns: str, tmp_path: Path) -> None:
    config = tmp_path / "buildkitd.toml"
    config.write_text('[worker.oci]\n  labels = { "kb-e2e" = "rootless-config-read" }\n')
    # SYS_ADMIN: this kernel lets the setuid newuidmap write uid maps only with it (see
    # the test bed's rootless test); the pod stays unprivileged and runs as uid 1000.
    run = buildkit(
        env,
        ns,
        "create",
        "rl",
        "--worker",
        "rootless",
        "--cap-add",
        "SYS_ADMIN",
        "--config",
        str(config),
        "--host-network",
    )
    assert run.code == 0, run.stderr
    box = deployment(env, ns, "rl")["spec"]["template"]["spec"]["containers"][0]
    assert box["image"] == env["KB_CLUSTER_BUILDKIT_IMAGE_ROOTLESS"]
    assert "privileged" not in box["securityContext"] and box["securityContext"]["runAsUser"] == 1000
    pod = kubectl(
        env,
        "-n",
        ns,
        "get",
        "pod",
        "-l",
        "kubectl-build.dev/builder=rl",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ).stdout
    workers = kubectl(env, "-n", ns, "exec", pod, "--", "buildctl", "debug", "workers", "-v").stdout
    assert "rootless-config-read" in workers  # read from ~/.config/buildkit, where uid 1000 looks
    script = (
        "set -e; d=$(mktemp -d); cd $d; "
        "printf 'FROM 127.0.0.1:5000/library/busybox:1.36\\nRUN id -u > /u && echo built-as-$(cat /u)\\n' "
        "> Dockerfile; buildctl build --frontend dockerfile.v0 --local context=. --local dockerfile=. "
        "--progress plain 2>&1"
    )
    done = kubectl(env, "-n", ns, "exec", pod, "--", "sh", "-c", script, check=False, timeout=300)
    assert done.returncode == 0 and "built-as-0" in done.stdout, done.stdout[-3000:] + done.stderr
    assert buildkit(env, ns, "rm", "rl").code == 0
    assert objects(env, ns) == []


def test_runc_builder_with_two_replicas_du_and_prune_each(env: dict[str, str], ns: str) -> None:
    run = buildkit(env, ns, "create", "rb", "--worker", "runc", "--host-network", "--replicas", "2")
    assert run.code == 0, run.stderr
    pod = deployment(env, ns, "rb")["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and not any("hostPath" in v for v in pod["volumes"])
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:  # create returns at the first ready pod
        row = buildkit(env, ns, "ls").stdout.splitlines()[1].split()
        if row[3] == "2/2":
            break
        time.sleep(2)
    assert row[:4] == ["rb", ns, "runc", "2/2"], row
    inspect = buildkit(env, ns, "inspect", "rb")
    assert inspect.code == 0, inspect.stderr
    assert inspect.stdout.count("Worker:    oci") == 2 and inspect.stdout.count("BuildKit:  ") == 2
    du = buildkit(env, ns, "du", "rb")
    assert du.code == 0, du.stderr
    lines = du.stdout.splitlines()
    assert lines[0].split() == ["POD", "NODE", "RECORDS", "SIZE", "RECLAIMABLE"]
    assert len(lines) == 4 and lines[-1].startswith("TOTAL")  # one row per replica
    prune = buildkit(env, ns, "prune", "rb", "--all", "--keep-duration", "1h")
    assert prune.code == 0 and prune.stdout.startswith("Total: "), prune.stderr
    assert prune.stderr.count("reclaimed") == 2
    assert buildkit(env, ns, "rm", "rb").code == 0
    assert objects(env, ns) == []


def test_quota_rejection_is_named_and_nothing_is_left(env: dict[str, str], ns: str) -> None:
    kubectl(env, "-n", ns, "create", "quota", "nopods", "--hard=pods=0")
    run = buildkit(env, ns, "create", "--worker", "runc", "--timeout", "120s")
    assert run.code == ExitCode.BUILDER, run.stderr
    error = run.stderr.splitlines()[-1]
    assert "FailedCreate" in error and "exceeded quota" in error, error
    assert (
        "raise the namespace's ResourceQuota" in error
        and f"kubectl -n {ns} describe replicasets -l kubectl-build.dev/builder=buildkit" in error
    )
    assert objects(env, ns) == []


@pytest.fixture
def volume(env: dict[str, str], ns: str, tmp_path: Path) -> Iterator[str]:
    """A 1Gi PersistentVolume (the test bed has no provisioner), removed afterwards."""
    name = f"{ns}-pv"
    pv = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": name},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(tmp_path / "pv"), "type": "DirectoryOrCreate"},
        },
    }
    kubectl(env, "apply", "-f", "-", stdin=json.dumps(pv))
    yield name
    kubectl(env, "delete", "pv", name, "--wait=false", check=False)


def test_cache_volume_survives_an_update_and_goes_with_rm(env: dict[str, str], ns: str, volume: str) -> None:
    run = buildkit(env, ns, "create", "--worker", "runc", "--cache-size", "1Gi", "--host-network")
    assert run.code == 0, run.stderr
    claim = json.loads(kubectl(env, "-n", ns, "get", "pvc", "-o", "json").stdout)["items"]
    assert [c["spec"]["volumeName"] for c in claim] == [volume]
    pod = "buildkit-0"
    script = (
        "set -e; d=$(mktemp -d); cd $d; "
        "printf 'FROM 127.0.0.1:5000/library/busybox:1.36\\nRUN echo cached\\n' > Dockerfile; "
        "buildctl build --frontend dockerfile.v0 --local context=. --local dockerfile=. 2>&1"
    )
    done = kubectl(env, "-n", ns, "exec", pod, "--", "sh", "-c", script, check=False, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    before = buildkit(env, ns, "du").stdout.splitlines()[1].split()
    forced = buildkit(
        env,
        ns,
        "create",
        "--worker",
        "runc",
        "--cache-size",
        "1Gi",
        "--host-network",
        "--env",
        "KB_E2E=2",
        "--force",
    )
    assert forced.code == 0 and "updating builder buildkit" in forced.stderr, forced.stderr
    after_claims = json.loads(kubectl(env, "-n", ns, "get", "pvc", "-o", "json").stdout)["items"]
    assert [c["metadata"]["uid"] for c in after_claims] == [c["metadata"]["uid"] for c in claim]
    after = buildkit(env, ns, "du").stdout.splitlines()[1].split()
    assert after[2:4] == before[2:4] and int(after[2]) > 0  # same records, same size: the cache stayed
    assert buildkit(env, ns, "rm", "buildkit").code == 0
    assert objects(env, ns) == []


def test_unpullable_image_fails_with_the_reason_and_leaves_nothing(env: dict[str, str], ns: str) -> None:
    image = "docker.io/moby/buildkit:no-such-tag"
    started = time.monotonic()
    run = buildkit(env, ns, "create", "--worker", "runc", "--image", image, "--timeout", "150s")
    elapsed = time.monotonic() - started
    assert run.code == ExitCode.BUILDER, run.stderr
    error = run.stderr.splitlines()[-1]
    assert error.startswith("error: builder buildkit in namespace") and "ImagePullBackOff" in error, error
    assert image in error and f"kubectl -n {ns} describe pod buildkit-" in error
    assert "removing builder buildkit, which never became ready" in run.stderr
    assert elapsed < 150
    assert objects(env, ns) == []


def test_pod_security_baseline_fails_early(env: dict[str, str], ns: str) -> None:
    kubectl(env, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=baseline")
    for worker in ("runc", "rootless"):
        run = buildkit(env, ns, "create", "--worker", worker, timeout=60)
        assert run.code == ExitCode.BUILDER, run.stderr
        assert "Pod Security level 'baseline'" in run.stderr
        assert "pod-security.kubernetes.io/enforce=privileged" in run.stderr
    assert objects(env, ns) == []


def test_same_named_objects_of_others_are_never_touched(env: dict[str, str], ns: str) -> None:
    kubectl(env, "-n", ns, "create", "configmap", "buildkit", "--from-literal=app=mine")
    run = buildkit(env, ns, "create", "--worker", "runc", timeout=60)
    assert run.code == ExitCode.BUILDER, run.stderr
    assert "a ConfigMap named buildkit already exists in namespace" in run.stderr
    rm = buildkit(env, ns, "rm", "buildkit", timeout=60)
    assert rm.code == ExitCode.BUILDER and "no builder buildkit" in rm.stderr, rm.stderr
    data = kubectl(env, "-n", ns, "get", "configmap", "buildkit", "-o", "jsonpath={.data.app}").stdout
    assert data == "mine"
    assert objects(env, ns) == ["configmap/buildkit"]


def test_parallel_ensure_makes_one_builder(env: dict[str, str], ns: str) -> None:
    from kubectl_build.console import Console
    from kubectl_build.kube.builder import BuilderSpec, ensure_builder
    from kubectl_build.kube.config import KubeOptions, connect

    spec = BuilderSpec(worker="runc", host_network=True)
    results: list[object] = []

    def one() -> None:
        kube = connect(KubeOptions(kubeconfig=env["KUBECONFIG"], namespace=ns))
        try:
            results.append(ensure_builder(kube, spec, Console(quiet=True), timeout=180))
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            results.append(err)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert len(results) == 3 and all(getattr(r, "ready_pods", None) for r in results), results
    names = kubectl(env, "-n", ns, "get", "deployments", "-o", "name").stdout.split()
    assert names == ["deployment.apps/buildkit"]


# May use builders (read them, exec into their pods) but not create them.
BUILDER_USER_RULES = (
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "create"]},
    {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create", "get"]},
)


def test_rbac_user_uses_existing_builder_but_cannot_create(
    env: dict[str, str], ns: str, tmp_path: Path
) -> None:
    from kubectl_build.console import Console
    from kubectl_build.errors import BuilderError
    from kubectl_build.kube.builder import BuilderSpec, ensure_builder, find_builder
    from kubectl_build.kube.config import KubeOptions, connect

    assert buildkit(env, ns, "create", "--worker", "runc", "--host-network").code == 0
    dev = sa_kubeconfig(env, ns, tmp_path, BUILDER_USER_RULES)
    kube = connect(KubeOptions(kubeconfig=dev))
    found = find_builder(kube, "buildkit")
    assert found is not None and found.ready_pods() and found.worker == "runc"
    used = ensure_builder(kube, BuilderSpec(), Console(quiet=True), timeout=30)
    assert used.ready_pods()[0].name == found.ready_pods()[0].name

    ls = buildkit(env, ns, "ls", kubeconfig=dev)
    assert ls.code == 0 and ls.stdout.splitlines()[1].split()[:4] == ["buildkit", ns, "runc", "1/1"], (
        ls.stderr
    )
    inspect = buildkit(env, ns, "inspect", kubeconfig=dev)  # exec into the pod: allowed
    assert inspect.code == 0 and "BuildKit:  github.com/moby/buildkit v0.34.2" in inspect.stdout, (
        inspect.stderr
    )

    with pytest.raises(BuilderError, match="forbidden"):
        ensure_builder(kube, BuilderSpec(name="mine", worker="runc"), Console(quiet=True), timeout=30)
    run = buildkit(env, ns, "create", "mine", "--worker", "runc", kubeconfig=dev)
    assert run.code == ExitCode.BUILDER, run.stderr
    error = run.stderr.splitlines()[-1]
    assert error.startswith(f"error: cannot create configmap mine in namespace {ns}: forbidden"), error
    assert f"kubectl buildkit create -n {ns}" in error
    assert [o for o in objects(env, ns) if "mine" in o] == []
