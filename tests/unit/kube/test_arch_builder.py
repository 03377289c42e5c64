"""Per-architecture builder specs, copied from the default builder's manifests."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from kubectl_build.kube import builder_manifest as m
from kubectl_build.kube import builder_spec as bs
from kubectl_build.kube.arch_builder import (
    arch_spec,
    keep_containerd_paths,
    selector_mismatch,
    spec_from_workload,
    without_containerd_paths,
)
from kubectl_build.kube.builder_spec import BuilderSpec, NodeFacts, resolve

CONTAINERD = [NodeFacts("containerd://1.7.24")]
ANNOTATED = [
    NodeFacts(
        "containerd://1.7.24",
        annotations={
            "kubectl-build.dev/containerd-sock": "/srv/ctrd/containerd.sock",
            "kubectl-build.dev/containerd-root": "/srv/ctrd/root",
            "kubectl-build.dev/containerd-state": "/srv/ctrd/state",
        },
        name="n1",
    )
]
DOCKER = [NodeFacts("docker://24.0.7")]
ARM64 = {"kubernetes.io/os": "linux", "kubernetes.io/arch": "arm64"}
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

SPECS: dict[str, tuple[BuilderSpec, list[NodeFacts]]] = {
    "first use on containerd": (BuilderSpec(), CONTAINERD),
    "containerd, node paths, own config and namespace": (
        BuilderSpec(
            config_toml='debug = true\n[worker.containerd]\n  namespace = "builds"\n',
            containerd_namespace="builds",
            env={"HTTPS_PROXY": "http://proxy:3128"},
        ),
        ANNOTATED,
    ),
    "runc, everything set": (
        BuilderSpec(
            worker="runc",
            image="registry.example/buildkit:v1",
            replicas=3,
            host_network=True,
            node_selector={"pool": "build"},
            tolerations=(
                {"key": "dedicated", "value": "build", "effect": "NoSchedule"},
                {"key": "t", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": "30"},
            ),
            requests={"cpu": "500m", "memory": "1Gi"},
            limits={"memory": "4Gi"},
            service_account="builder",
            config_toml='[registry."r.example"]\n  http = true\n',
            custom_ca=CA,
            env={"NO_PROXY": "10.0.0.0/8"},
        ),
        CONTAINERD,
    ),
    "runc with a cache volume": (BuilderSpec(worker="runc", cache_volume="20Gi"), CONTAINERD),
    "runc on docker nodes": (BuilderSpec(worker="runc"), DOCKER),
    "rootless with a CA and SYS_ADMIN": (
        BuilderSpec(worker="rootless", custom_ca=CA, capabilities=("SYS_ADMIN",)),
        CONTAINERD,
    ),
}


def api_form(body: dict[str, Any]) -> dict[str, Any]:
    """What the API server gives back: JSON, with defaults of its own added."""
    data: dict[str, Any] = json.loads(json.dumps(body))
    pod = data["spec"]["template"]["spec"]
    pod.update(
        {
            "dnsPolicy": pod.get("dnsPolicy", "ClusterFirst"),
            "restartPolicy": "Always",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
        }
    )
    box = pod["containers"][0]
    box.update({"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"})
    box.setdefault("resources", {})
    box.setdefault("env", []).append(
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
    )
    return data


@pytest.mark.parametrize("case", list(SPECS))
def test_a_copy_makes_the_same_builder_on_other_nodes(case: str) -> None:
    requested, nodes = SPECS[case]
    default = bs.frozen(resolve(replace(requested, name="buildkit"), nodes))
    copied = arch_spec(
        "buildkit-arm64", ARM64, api_form(m.workload(default, "ns")), m.configmap_data(default), {}
    )
    made = resolve(copied, nodes)
    expected = replace(default, name="buildkit-arm64", node_selector=ARM64, replicas=1, nodes=())
    assert m.facts(m.workload(made, "ns")) == m.facts(m.workload(expected, "ns"))
    assert m.configmap_data(made) == m.configmap_data(expected)
    assert m.workload(made, "ns")["spec"]["template"]["spec"]["nodeSelector"] == {
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "arm64",
    }


def test_without_a_default_builder_it_is_the_first_use_builder() -> None:
    spec = arch_spec("buildkit-arm64", ARM64, None, None, {"HTTPS_PROXY": "http://p:3128", "HOME": "/root"})
    assert spec == bs.frozen(
        replace(bs.first_use_spec("buildkit-arm64", {"HTTPS_PROXY": "http://p:3128"}), node_selector=ARM64)
    )
    assert spec.worker == "auto" and dict(spec.env) == {"HTTPS_PROXY": "http://p:3128"}


def test_an_unreadable_configmap_gives_the_default_config() -> None:
    default = bs.frozen(resolve(BuilderSpec(worker="runc", config_toml="debug = true\n"), CONTAINERD))
    copied = arch_spec("buildkit-arm64", ARM64, m.workload(default, "ns"), None, {})
    assert copied.config_toml is None
    assert m.buildkitd_toml(resolve(copied, CONTAINERD)) == "debug = false\n"


def test_worker_read_from_the_args_when_the_label_is_missing() -> None:
    for worker in ("containerd", "runc", "rootless"):
        body = m.workload(bs.frozen(resolve(BuilderSpec(worker=worker), CONTAINERD)), "ns")
        del body["metadata"]["labels"][m.LABEL_WORKER]
        assert spec_from_workload(body, None).worker == worker


def test_new_nodes_containerd_paths_win_else_the_defaults_are_kept() -> None:
    copied = replace(
        BuilderSpec(), containerd_sock="/a/c.sock", containerd_root="/a/root", containerd_state="/a/st"
    )
    at_standard = resolve(
        replace(
            copied,
            containerd_sock=BuilderSpec().containerd_sock,
            containerd_root=BuilderSpec().containerd_root,
            containerd_state=BuilderSpec().containerd_state,
        ),
        CONTAINERD,
    )
    kept = keep_containerd_paths(at_standard, copied)
    assert (kept.containerd_sock, kept.containerd_root, kept.containerd_state) == (
        "/a/c.sock",
        "/a/root",
        "/a/st",
    )
    from_nodes = resolve(replace(BuilderSpec()), ANNOTATED)
    assert keep_containerd_paths(from_nodes, copied) == from_nodes


def test_a_copy_of_a_builder_on_other_nodes_takes_their_containerd_paths() -> None:
    # The default builder's paths came from its own node's annotations; the new node has its own.
    copied = replace(
        BuilderSpec(worker="containerd"), containerd_sock="/a/c.sock", containerd_root="/a/root",
        containerd_state="/a/st",
    )
    spec = keep_containerd_paths(resolve(without_containerd_paths(copied), ANNOTATED), copied)
    assert (spec.containerd_sock, spec.containerd_root, spec.containerd_state) == (
        "/srv/ctrd/containerd.sock", "/srv/ctrd/root", "/srv/ctrd/state")
    spec = keep_containerd_paths(resolve(without_containerd_paths(copied), CONTAINERD), copied)
    assert (spec.containerd_sock, spec.containerd_root, spec.containerd_state) == (
        "/a/c.sock", "/a/root", "/a/st")


def test_selector_of_an_existing_builder() -> None:
    def existing(selector: dict[str, str]) -> dict[str, Any]:
        return m.workload(
            bs.frozen(
                resolve(BuilderSpec(name="buildkit-arm64", worker="runc", node_selector=selector), CONTAINERD)
            ),
            "ns",
        )

    assert selector_mismatch(existing(ARM64), ARM64) is None
    assert (
        selector_mismatch(existing({"kubernetes.io/arch": "arm64"}), ARM64) is None
    )  # os=linux is always set
    assert selector_mismatch(existing({**ARM64, "pool": "arm"}), ARM64) is None  # narrower, same arch
    found = selector_mismatch(existing({"kubernetes.io/arch": "amd64"}), ARM64)
    assert found == (
        "its node selector is kubernetes.io/arch=amd64,kubernetes.io/os=linux, "
        "not kubernetes.io/arch=arm64,kubernetes.io/os=linux"
    )
    bare = existing({})
    del bare["spec"]["template"]["spec"]["nodeSelector"]
    assert (
        selector_mismatch(bare, ARM64) == "its node selector is (none), not "
        "kubernetes.io/arch=arm64,kubernetes.io/os=linux"
    )
