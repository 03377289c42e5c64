"""Multi-arch builds on the test-bed cluster (issue 5): the plan, cross and qemu, the merge.

The single-node test bed (amd64) has no node of another architecture, so the planner puts
everything on the default builder there (cross or qemu). The merge of several builders'
by-digest pushes runs here through the internal API on two real builders; the opt-in
arm64 node (``-m arm64node``) covers the real native + native merge through the CLI.

They need `hack/testbed up cluster` (and core) running and FAIL, never skip, otherwise.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from kubectl_build.buildkit.session.auth import Credential, CredentialStore
from kubectl_build.console import Console
from kubectl_build.context.sources import LocalSources
from kubectl_build.errors import BuildFailedError, ExitCode, RegistryError
from kubectl_build.kube.builder import find_builder
from kubectl_build.kube.config import KubeOptions, connect
from kubectl_build.options.build import BuildFlags, build_options, parse_platforms
from kubectl_build.planning.groups import BuilderGroup, group_description, group_label, group_options
from kubectl_build.planning.solve import prepare_solve
from kubectl_build.registry import merge
from kubectl_build.registry.client import OCI_INDEX, RegistryClient
from kubectl_build.run import cluster
from kubectl_build.run.jobs import JobCancelledError
from kubectl_build.run.model import BuildInputs, SolveJob
from kubectl_build.run.solve import SolveWatch, run_solves, session_services, solve_on
from tests.e2e.cluster import support
from tests.e2e.cluster.support import (
    UNAME,
    build,
    deployments,
    images_by_platform,
    kubectl,
    plan_lines,
    pushing_builder,
    registry_secret,
)
from tests.e2e.helpers import REPO, STATE, Run, load_testbed, run_cli
from tests.e2e.registry_helpers import platforms_of, read_file_from_image, tls_registry

pytestmark = pytest.mark.cluster

SIX = "linux/386,linux/amd64,linux/arm/v6,linux/arm/v7,linux/arm64,windows/amd64"


@pytest.fixture(scope="module")
def namespace(cluster_env: dict[str, str]) -> Iterator[str]:
    """One namespace with a pushing builder and its registry Secret, shared by the module."""
    with support.namespace(cluster_env, "kb-ma", wait=False) as name:
        pushing_builder(cluster_env, name, "buildkit")
        registry_secret(cluster_env, name)
        yield name


def test_cross_example_six_platforms_one_index(cluster_env: dict[str, str], namespace: str) -> None:
    testbed = load_testbed()
    repo = f"cluster/{namespace}-cross"
    run = build(cluster_env, namespace, str(REPO / "examples"), "-f",
                 str(REPO / "examples" / "Dockerfile.cross"), "--platform", SIX, "--push",
                 "-t", f"{testbed.registry_tls}/{repo}:cross")
    assert run.code == 0, run.stderr[-4000:]
    plan = plan_lines(run.stderr)
    assert list(plan) == SIX.split(","), run.stderr[:3000]
    for platform in ("linux/arm/v6", "linux/arm/v7", "linux/arm64", "windows/amd64"):
        assert plan[platform].startswith("cross on "), plan
    assert plan["linux/amd64"].startswith("native on "), plan
    index = tls_registry(testbed).manifest(repo, "cross")
    assert index.digest == run.stdout.strip()
    assert set(images_by_platform(index.json())) == set(SIX.split(","))
    assert platforms_of({"manifests": [m for m in index.json()["manifests"]
                                       if m["platform"]["os"] != "unknown"]}) == set(SIX.split(","))


def test_qemu_for_run_on_target_and_the_arch_baked_in(cluster_env: dict[str, str], namespace: str,
                                                      tmp_path: Path) -> None:
    testbed = load_testbed()
    (tmp_path / "Dockerfile").write_text(UNAME)
    repo = f"cluster/{namespace}-qemu"
    run = build(cluster_env, namespace, str(tmp_path), "--platform", "linux/arm64,linux/arm/v7",
                 "--push", "-t", f"{testbed.registry_tls}/{repo}:qemu")
    assert run.code == 0, run.stderr[-4000:]
    plan = plan_lines(run.stderr)
    assert plan["linux/arm64"].startswith("qemu on "), plan
    assert plan["linux/arm/v7"].startswith("qemu on "), plan
    assert "Dockerfile runs RUN on the target platform" in plan["linux/arm64"]
    client = tls_registry(testbed)
    index = client.manifest(repo, "qemu")
    images = images_by_platform(index.json())
    assert set(images) == {"linux/arm64", "linux/arm/v7"}
    assert read_file_from_image(client, repo, images["linux/arm64"], "/arch") == b"aarch64\n"
    assert read_file_from_image(client, repo, images["linux/arm/v7"], "/arch") == b"armv7l\n"


def test_mode_cross_with_run_on_target_is_a_usage_error(cluster_env: dict[str, str],
                                                        namespace: str, tmp_path: Path) -> None:
    testbed = load_testbed()
    (tmp_path / "Dockerfile").write_text(UNAME)
    before = deployments(cluster_env, namespace)
    repo = f"cluster/{namespace}-refused"
    run = build(cluster_env, namespace, str(tmp_path), "--platform", "linux/arm64,linux/arm/v7",
                 "--mode", "cross", "--push", "-t", f"{testbed.registry_tls}/{repo}:no")
    assert run.code == ExitCode.USAGE, run.stderr
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot build linux/arm64: --mode cross"), lines
    assert "linux/arm/v7" in lines[0] and "--mode auto or qemu" in lines[0]
    assert deployments(cluster_env, namespace) == before  # no per-architecture builder
    with pytest.raises(RegistryError):
        tls_registry(testbed).manifest(repo, "no")  # nothing pushed


def test_warm_plan_uses_remembered_nodes_and_lists_them_when_they_matter(
        cluster_env: dict[str, str], namespace: str, tmp_path: Path) -> None:
    """A warm multi-platform build plans from the nodes the last build listed (no API
    call); remembered nodes that would send a platform to another builder (a node gone
    since) are listed again, so a stale entry never creates a builder nor breaks the build."""
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text(UNAME)
    env = {"KUBECONFIG": cluster_env["KUBECONFIG"], "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def run() -> tuple[Run, dict[str, str]]:
        done = run_cli(str(tmp_path / "ctx"), "-n", namespace, "--progress", "plain", "--debug",
                       "--platform", "linux/amd64,linux/arm64", "-o", "type=cacheonly",
                       timeout=900, env=env)
        assert done.code == 0, done.stderr[-4000:]
        return done, plan_lines(done.stderr)

    first, plan = run()
    assert "no API call" not in first.stderr
    node = cluster_env["KB_CLUSTER_NODE"]
    assert plan["linux/amd64"].startswith(f"native on {node}"), plan
    assert plan["linux/arm64"].startswith(f"qemu on {node}"), plan
    second, again = run()
    assert "dialled remembered builder pod" in second.stderr, second.stderr[-3000:]
    assert "nodes as listed recently (no API call)" in second.stderr
    assert again == plan
    # An arm64 node remembered that is not there: the plan would create buildkit-arm64 for it.
    [entry] = (tmp_path / "cache").rglob("builders/*.json")
    doc = json.loads(entry.read_text())
    doc["nodes"].append(["kb-gone-arm64", "linux", "arm64", "", True, True])
    entry.write_text(json.dumps(doc))
    third, fresh = run()
    assert "the remembered nodes send a platform to another builder: listing the nodes" \
        in third.stderr, third.stderr[-3000:]
    assert fresh == plan
    assert "deployment.apps/buildkit-arm64" not in deployments(cluster_env, namespace)
    assert "kb-gone-arm64" not in entry.read_text()  # the fresh listing replaced it


def _ours(cluster_env: dict[str, str], namespace: str) -> list[str]:
    """Every workload, pod, service and ConfigMap of the namespace but its CA bundle."""
    out = kubectl(cluster_env, "-n", namespace, "get", "all,cm", "-o", "name").stdout.split()
    return [name for name in out if name != "configmap/kube-root-ca.crt"]


def test_a_refused_plan_creates_no_builder_in_a_fresh_namespace(cluster_env: dict[str, str],
                                                                tmp_path: Path) -> None:
    """The plan is made from the nodes' platform before the default builder would be
    created: refusals (--mode cross with RUN on the target, RUN in a Windows stage) leave
    nothing behind, and a valid build afterwards creates the builder as usual."""
    with support.namespace(cluster_env, "kb-ahead", wait=False) as name:
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "Dockerfile").write_text(UNAME)
        (tmp_path / "win").mkdir()
        (tmp_path / "win" / "Dockerfile").write_text(
            "FROM mcr.microsoft.com/windows/nanoserver:ltsc2022\nRUN echo hi > C:\\hi.txt\n")
        refusals = [
            (tmp_path / "run", ("--platform", "linux/arm64", "--mode", "cross"),
             "error: cannot build linux/arm64: --mode cross: Dockerfile runs RUN on the target"),
            (tmp_path / "win", ("--platform", "windows/amd64"),
             "error: cannot build windows/amd64: stage"),
        ]
        for ctx, flags, start in refusals:
            run = build(cluster_env, name, str(ctx), *flags, timeout=120)
            assert run.code == ExitCode.USAGE, run.stderr
            lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
            assert len(lines) == 1 and lines[0].startswith(start), lines
            assert _ours(cluster_env, name) == []

        (tmp_path / "copy").mkdir()
        (tmp_path / "copy" / "msg").write_text(name)
        (tmp_path / "copy" / "Dockerfile").write_text("FROM scratch\nCOPY msg /msg\n")
        out = tmp_path / "out"
        run = build(cluster_env, name, str(tmp_path / "copy"), "--platform", "linux/arm64",
                     "--mode", "cross", "--output", f"type=local,dest={out}", "--debug",
                     timeout=600)
        assert run.code == 0, run.stderr[-4000:]
        plan = plan_lines(run.stderr)
        assert plan["linux/arm64"].startswith(f"cross on {cluster_env['KB_CLUSTER_NODE']} "), plan
        # copies only, on the node's own platform: what the new builder reports cannot change that
        assert "ListWorkers not asked" in run.stderr, run.stderr[-4000:]
        assert (out / "msg").read_text() == name
        assert "deployment.apps/buildkit" in _ours(cluster_env, name)


# ---------------------------------------------------------------------------- the merge


@pytest.fixture(scope="module")
def two_builders(cluster_env: dict[str, str], namespace: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """Clients of two real builders (the default one and a second one) for the internal API."""
    pushing_builder(cluster_env, namespace, "second")
    kube = connect(KubeOptions(kubeconfig=cluster_env["KUBECONFIG"], namespace=namespace))
    ctx = tmp_path_factory.mktemp("ctx")
    (ctx / "Dockerfile").write_text(UNAME)
    options = build_options(BuildFlags(context=str(ctx), namespace=namespace,
                                       kubeconfig=cluster_env["KUBECONFIG"]), {})
    with ExitStack() as stack:
        clients = {}
        for name in ("buildkit", "second"):
            builder = find_builder(kube, name)
            assert builder is not None
            opening = cluster.Opening(options, Console(), str(REPO), False)
            _, opened = cluster.open_pods(kube, builder, opening, stack)
            clients[name] = opened[0]
        yield clients


def _credentials() -> CredentialStore:
    testbed = load_testbed()
    return CredentialStore({testbed.registry_tls: Credential(testbed.env["KB_REGISTRY_USER"],
                                                             testbed.env["KB_REGISTRY_PASSWORD"])})


def _connector(host: str, plain_http: bool) -> RegistryClient:
    testbed = load_testbed()
    cred = _credentials().lookup(host)
    return RegistryClient(host, cred, ca_file=testbed.env["KB_REGISTRY_CA"], plain_http=plain_http)


def _runs(tmp_path: Path, dockerfile: str, tags: tuple[str, ...], clients: dict[str, object],
          split: dict[str, str]) -> tuple[list[SolveJob], LocalSources]:
    (tmp_path / "Dockerfile").write_text(dockerfile)
    options = build_options(BuildFlags(context=str(tmp_path), tag=tags, push=True), {})
    runs = []
    for name, platforms in split.items():
        group = BuilderGroup(name, name == "buildkit", parse_platforms([platforms], {}), (), {},
                             (), False)
        runs.append(SolveJob(name, [clients[name]],  # type: ignore[list-item]
                             group_options(options, group, by_digest=True),
                             label=group_label(group), description=group_description(group)))
    return runs, LocalSources(str(tmp_path), str(tmp_path), "Dockerfile")


def test_two_builders_push_by_digest_and_the_client_merges(two_builders: dict[str, object],
                                                          namespace: str, tmp_path: Path) -> None:
    testbed = load_testbed()
    repo = f"cluster/{namespace}-merged"
    tags = (f"{testbed.registry_tls}/{repo}:one", f"{testbed.registry_tls}/{repo}:two")
    runs, local = _runs(tmp_path, UNAME, tags, two_builders,
                        {"buildkit": "linux/amd64", "second": "linux/arm64,linux/arm/v7"})
    stderr = io.StringIO()
    console = Console(stdout=io.StringIO(), stderr=stderr)
    responses = run_solves(runs, BuildInputs(local, {}, _credentials()), console, "plain")
    digests = [merge.pushed_digest(r, "x") for r in responses]
    client = tls_registry(testbed)
    # nothing is tagged before the merge: each builder pushed by digest only
    with pytest.raises(RegistryError):
        client.manifest(repo, "one")
    index = merge.merge_and_push(digests, list(tags), _connector)
    for tag in ("one", "two"):
        assert client.manifest(repo, tag).digest == index.digest
    doc = client.manifest(repo, "one").json()
    assert index.media_type == OCI_INDEX == doc["mediaType"]
    images = images_by_platform(doc)
    assert set(images) == {"linux/amd64", "linux/arm64", "linux/arm/v7"}
    expect = {"linux/amd64": b"x86_64\n", "linux/arm64": b"aarch64\n", "linux/arm/v7": b"armv7l\n"}
    for platform, digest in images.items():
        assert read_file_from_image(client, repo, digest, "/arch") == expect[platform]
    # attestations the builders pushed stay, pointing at images of the index
    for entry in doc["manifests"]:
        subject = (entry.get("annotations") or {}).get("vnd.docker.reference.digest")
        assert subject is None or subject in images.values()
    # progress: each builder's steps are labelled with it
    text = stderr.getvalue()
    assert "[buildkit linux/amd64" in text and "[second linux/arm64" in text, text[:3000]


def test_one_builder_failing_cancels_the_other(two_builders: dict[str, object], namespace: str,
                                               tmp_path: Path) -> None:
    testbed = load_testbed()
    repo = f"cluster/{namespace}-failed"
    dockerfile = (f"FROM busybox\nARG TARGETARCH\nRUN echo {uuid.uuid4()}; "
                  'if [ "$TARGETARCH" = arm64 ]; then exit 7; fi; sleep 300\n')
    runs, local = _runs(tmp_path, dockerfile, (f"{testbed.registry_tls}/{repo}:x",), two_builders,
                        {"buildkit": "linux/amd64", "second": "linux/arm64"})
    console = Console(stdout=io.StringIO(), stderr=io.StringIO())
    started = time.monotonic()
    with pytest.raises(BuildFailedError) as info:
        run_solves(runs, BuildInputs(local, {}, _credentials()), console, "plain")
    assert time.monotonic() - started < 120  # the amd64 solve's sleep 300 was cancelled
    assert info.value.one_line().startswith("builder second (linux/arm64): "), info.value.one_line()
    assert "exit code" in info.value.one_line()


def test_cancelled_group_stops_its_solve_in_the_daemon(two_builders: dict[str, object],
                                                       tmp_path: Path) -> None:
    """The cancel event stops a running solve: solve_on returns soon after it is set."""
    dockerfile = f"FROM busybox\nRUN echo {uuid.uuid4()}; sleep 300\n"
    runs, local = _runs(tmp_path, dockerfile, ("127.0.0.1:5000/unused/x:1",), two_builders,
                        {"buildkit": "linux/amd64"})
    plan = prepare_solve(runs[0].options, local, {})
    cancel = threading.Event()
    outcome: list[BaseException] = []
    progress = io.StringIO()  # the running step shows here: the moment to cancel

    def run() -> None:
        from kubectl_build.buildkit.session.session import Session
        from kubectl_build.progress.display import select_display

        console = Console(stdout=io.StringIO(), stderr=progress)
        with ExitStack() as stack:
            inputs = BuildInputs(local, {}, _credentials())
            services, _ = session_services(runs[0].options, inputs, plan, stack)
            try:
                solve_on(runs[0].clients[0], Session(services, "x"), plan,  # type: ignore[arg-type]
                         SolveWatch(select_display("plain", console), console), cancel=cancel)
            except BaseException as err:  # noqa: BLE001 - inspected below
                outcome.append(err)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 180
    while "sleep 300" not in progress.getvalue() and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "sleep 300" in progress.getvalue(), (outcome, progress.getvalue()[-3000:])
    cancel.set()
    thread.join(60)
    assert not thread.is_alive()
    assert outcome and isinstance(outcome[0], JobCancelledError), outcome


# ---------------------------------------------------------------------------- opt-in arm64 node


@pytest.mark.arm64node
def test_native_on_both_nodes_merged_into_one_index(cluster_env: dict[str, str],
                                                    tmp_path: Path) -> None:
    """amd64 native on the first node, arm64 native on the arm64 node (buildkit-arm64, created
    on demand), pushed by digest and merged by the client (which reaches the TLS registry
    through DOCKER_CONFIG/certs.d, as Docker does)."""
    assert "KB_CLUSTER_ARM64_NODE" in cluster_env, \
        "second node not enabled: KB_CLUSTER_ARM64_NODE=1 hack/testbed up cluster"
    testbed = load_testbed()
    arm_node = cluster_env["KB_CLUSTER_ARM64_NODE"]
    with support.namespace(cluster_env, "kb-ma", wait=False) as name:
        pushing_builder(cluster_env, name, "buildkit")
        registry_secret(cluster_env, name)
        (tmp_path / "ctx").mkdir()
        (tmp_path / "ctx" / "Dockerfile").write_text(UNAME)
        docker = tmp_path / "docker"
        certs = docker / "certs.d" / testbed.registry_tls
        certs.mkdir(parents=True)
        (certs / "ca.crt").write_bytes(Path(testbed.env["KB_REGISTRY_CA"]).read_bytes())
        repo = f"cluster/{name}-native"
        run = run_cli(str(tmp_path / "ctx"), "-n", name, "--progress", "plain", "--platform",
                      "linux/amd64,linux/arm64", "--push", "-t", f"{testbed.registry_tls}/{repo}:n",
                      timeout=900, env={"KUBECONFIG": cluster_env["KUBECONFIG"],
                                        "DOCKER_CONFIG": str(docker),
                                        "PATH": os.environ.get("PATH", "")})
        assert run.code == 0, run.stderr[-4000:]
        plan = plan_lines(run.stderr)
        assert plan["linux/amd64"].startswith(f"native on {cluster_env['KB_CLUSTER_NODE']}"), plan
        assert plan["linux/arm64"].startswith(f"native on {arm_node}"), plan
        assert "deployment.apps/buildkit-arm64" in deployments(cluster_env, name)
        pod = json.loads(kubectl(cluster_env, "-n", name, "get", "pods", "-l",
                                 "kubectl-build.dev/builder=buildkit-arm64", "-o", "json").stdout)
        assert {p["spec"]["nodeName"] for p in pod["items"]} == {arm_node}
        client = tls_registry(testbed)
        index = client.manifest(repo, "n")
        assert index.digest == run.stdout.strip()
        images = images_by_platform(index.json())
        assert set(images) == {"linux/amd64", "linux/arm64"}
        assert read_file_from_image(client, repo, images["linux/arm64"], "/arch") == b"aarch64\n"
        assert read_file_from_image(client, repo, images["linux/amd64"], "/arch") == b"x86_64\n"


@pytest.mark.arm64node
def test_without_push_each_node_loads_its_own_variant(cluster_env: dict[str, str],
                                                     tmp_path: Path) -> None:
    """No --push on two nodes: the containerd builders load linux/amd64 into the first node's
    image store and linux/arm64 into the arm64 node's, both under the name a pod spec uses."""
    assert "KB_CLUSTER_ARM64_NODE" in cluster_env, \
        "second node not enabled: KB_CLUSTER_ARM64_NODE=1 hack/testbed up cluster"
    testbed = load_testbed()
    with support.namespace(cluster_env, "kb-ml", wait=False) as name:
        config = Path(STATE) / "cluster" / f"buildkitd-{name}.toml"
        config.write_text(f'[registry."docker.io"]\n  mirrors = ["{testbed.registry}"]\n'
                          f'[registry."{testbed.registry}"]\n  http = true\n')
        created = run_cli("create", "buildkit", "-n", name, "--worker", "containerd",
                          "--host-network", "--config", str(config), "--timeout", "240",
                          program="kubectl-buildkit", env={"KUBECONFIG": cluster_env["KUBECONFIG"]})
        assert created.code == 0, created.stderr[-3000:]
        (tmp_path / "ctx").mkdir()
        (tmp_path / "ctx" / "Dockerfile").write_text(UNAME)
        tag = f"kb-ml:{name}"
        run = run_cli(str(tmp_path / "ctx"), "-n", name, "--progress", "plain", "--platform",
                      "linux/amd64,linux/arm64", "-t", tag, timeout=900,
                      env={"KUBECONFIG": cluster_env["KUBECONFIG"]})
        assert run.code == 0, run.stderr[-4000:]
        plan = plan_lines(run.stderr)
        assert plan["linux/arm64"].startswith(f"native on {cluster_env['KB_CLUSTER_ARM64_NODE']}"), plan
        # What a user does next: a pod with imagePullPolicy Never on each node runs the
        # variant that node loaded (the arm64 node's runtime is amd64: binfmt runs arm64).
        for node, want in ((cluster_env["KB_CLUSTER_NODE"], "x86_64"),
                           (cluster_env["KB_CLUSTER_ARM64_NODE"], "aarch64")):
            pod = f"run-{want.replace('_', '-')}"
            kubectl(cluster_env, "-n", name, "run", pod, f"--image={tag}", "--restart=Never",
                    "--image-pull-policy=Never",
                    f'--overrides={{"spec": {{"nodeName": "{node}"}}}}', "--command", "--",
                    "cat", "/arch")
            kubectl(cluster_env, "-n", name, "wait", f"pod/{pod}", "--timeout=120s",
                    "--for=jsonpath={.status.phase}=Succeeded")
            assert kubectl(cluster_env, "-n", name, "logs", pod).stdout == f"{want}\n"
