"""Nodes and per-architecture builders on the test-bed cluster (issue 5, native placement).

They need `hack/testbed up cluster` running and FAIL, never skip, otherwise. Each test
uses a fresh namespace and deletes it.
"""

from __future__ import annotations

import json
import platform
import threading
from pathlib import Path

import pytest

from kubectl_build.console import Console
from kubectl_build.errors import BuilderError, ExitCode
from kubectl_build.kube import builder_manifest
from kubectl_build.kube.builder import Builder, BuilderSpec, create_builder, ensure_arch_builder
from kubectl_build.kube.nodes import list_nodes
from kubectl_build.planning.planner import builder_name
from kubectl_build.platforms.matching import node_selector
from kubectl_build.platforms.platform import Platform
from tests.e2e.cluster.support import kube_for, kubectl, namespace, sa_kubeconfig

pytestmark = pytest.mark.cluster

HOST = Platform("linux", {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()))


@pytest.fixture(scope="module")
def env(cluster_env: dict[str, str]) -> dict[str, str]:
    return cluster_env


def test_list_nodes_gives_the_test_bed_nodes_with_their_platform(env: dict[str, str]) -> None:
    with namespace(env, "kb-nodes") as ns:
        nodes = {n.name: n for n in list_nodes(kube_for(env, ns))}
    main = nodes[env["KB_CLUSTER_NODE"]]
    assert (main.platform, main.ready, main.schedulable) == (HOST, True, True)
    if "KB_CLUSTER_ARM64_NODE" in env:  # the opt-in second node says it is arm64
        assert nodes[env["KB_CLUSTER_ARM64_NODE"]].platform == Platform("linux", "arm64")
    # What kubectl says, node for node.
    listed = json.loads(kubectl(env, "get", "nodes", "-o", "json").stdout)["items"]
    assert sorted(nodes) == sorted(item["metadata"]["name"] for item in listed)


def test_a_user_who_may_not_list_nodes_gets_none(env: dict[str, str], tmp_path: Path) -> None:
    with namespace(env, "kb-nodes") as ns:
        limited = sa_kubeconfig(
            env, ns, tmp_path, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
        )
        assert list_nodes(kube_for(env, ns, limited)) == ()


def test_arch_builder_copies_the_default_is_pinned_idempotent_and_race_safe(env: dict[str, str]) -> None:
    selector = node_selector(HOST)
    name = builder_name("buildkit", HOST)
    with namespace(env, "kb-arch") as ns:
        kube = kube_for(env, ns)
        quiet = Console(quiet=True)
        default = BuilderSpec(
            worker="runc",
            host_network=True,
            config_toml="debug = true\n",
            requests={"cpu": "10m"},
            env={"KB_MARK": "copied"},
            tolerations=({"key": "kb-test", "operator": "Exists", "effect": "NoSchedule"},),
        )
        create_builder(kube, default, quiet, timeout=240)

        results: list[Builder | BaseException] = []

        def one() -> None:
            try:  # each thread is its own invocation, with its own connection
                results.append(
                    ensure_arch_builder(kube_for(env, ns), "buildkit", name, selector, quiet, timeout=240)
                )
            except BaseException as err:  # noqa: BLE001 - reported by the assertion below
                results.append(err)

        threads = [threading.Thread(target=one) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        assert len(results) == 2 and all(isinstance(r, Builder) for r in results), results
        first = results[0]
        assert isinstance(first, Builder) and first.name == name
        assert [p.node for p in first.ready_pods()] == [env["KB_CLUSTER_NODE"]]

        deployments = kubectl(env, "-n", ns, "get", "deployments", "-o", "name").stdout.split()
        assert sorted(deployments) == ["deployment.apps/buildkit", f"deployment.apps/{name}"]
        made = json.loads(kubectl(env, "-n", ns, "get", "deployment", name, "-o", "json").stdout)
        pod = made["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "kubernetes.io/arch": HOST.architecture}
        assert made["spec"]["replicas"] == 1
        assert made["metadata"]["labels"][builder_manifest.LABEL_WORKER] == "runc"
        assert pod["hostNetwork"] is True
        box = pod["containers"][0]
        assert {"name": "KB_MARK", "value": "copied"} in box["env"]
        assert box["resources"] == {"requests": {"cpu": "10m"}}
        assert pod["tolerations"] == [{"key": "kb-test", "operator": "Exists", "effect": "NoSchedule"}]
        toml = kubectl(
            env, "-n", ns, "get", "configmap", name, "-o", "jsonpath={.data.buildkitd\\.toml}"
        ).stdout
        assert toml == "debug = true\n"

        again = ensure_arch_builder(kube, "buildkit", name, selector, quiet, timeout=60)
        assert again.created == first.created and again.pods == first.pods

        other = Platform("linux", "s390x" if HOST.architecture != "s390x" else "arm64")
        with pytest.raises(BuilderError) as err:
            ensure_arch_builder(kube, "buildkit", name, node_selector(other), quiet, timeout=60)
        assert err.value.exit_code == ExitCode.BUILDER
        assert f"its node selector is kubernetes.io/arch={HOST.architecture}" in err.value.message
        assert f"kubectl buildkit rm {name} -n {ns}" in (err.value.hint or "")


def test_arch_builder_without_a_default_is_a_first_use_builder(env: dict[str, str]) -> None:
    """No default builder to copy: what `kubectl build` creates on first use (on the test
    bed: the containerd worker with the paths the node's annotations give)."""
    with namespace(env, "kb-arch") as ns:
        kube = kube_for(env, ns)
        name = builder_name("buildkit", HOST)
        made = ensure_arch_builder(
            kube, "buildkit", name, node_selector(HOST), Console(quiet=True), timeout=240
        )
        assert made.worker == "containerd" and made.ready_pods()
        deployments = kubectl(env, "-n", ns, "get", "deployments", "-o", "name").stdout.split()
        assert deployments == [f"deployment.apps/{name}"]
        volumes = json.loads(kubectl(env, "-n", ns, "get", "deployment", name, "-o", "json").stdout)["spec"][
            "template"
        ]["spec"]["volumes"]
        sock = next(v["hostPath"]["path"] for v in volumes if v["name"] == "containerd-sock")
        assert sock == env["KB_CLUSTER_CONTAINERD_SOCK"]
