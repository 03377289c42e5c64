"""Builders without a cluster: spec parsing, the manifests, diffing, and the wait reasons."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from kubectl_build.cli import builders as builder_cmds
from kubectl_build.errors import UsageError
from kubectl_build.kube import builder_manifest as m
from kubectl_build.kube import builder_spec as bs
from kubectl_build.kube.builder import Builder, BuilderPod, builder_from
from kubectl_build.kube.builder_spec import BuilderSpec, NodeFacts, resolve
from kubectl_build.kube.waiting import event_problem, last_line, pod_problem, pod_ready, poll, rolled_out

CONTAINERD = [NodeFacts("containerd://1.7.24")]


def spec(**kw: Any) -> BuilderSpec:
    return bs.frozen(resolve(BuilderSpec(**kw), CONTAINERD))


def box(manifest: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = manifest["spec"]["template"]["spec"]["containers"]
    return containers[0]


# ---------------------------------------------------------------------------- parsing


def test_pairs_and_resources() -> None:
    assert bs.parse_pairs("--node-selector", ["a=b,kubernetes.io/arch=arm64", "c="]) == {
        "a": "b",
        "kubernetes.io/arch": "arm64",
        "c": "",
    }
    assert bs.parse_resources("--requests", ["cpu=500m,memory=2Gi", "ephemeral-storage=1e3"]) == {
        "cpu": "500m",
        "memory": "2Gi",
        "ephemeral-storage": "1e3",
    }
    for bad in ("a", "=b", "a=b c", "a=" + "x" * 64):
        with pytest.raises(UsageError):
            bs.parse_pairs("--node-selector", [bad])
    for bad in ("cpu", "cpu=1.5.0", "memory=2GB", "cpu=-1"):
        with pytest.raises(UsageError):
            bs.parse_resources("--limits", [bad])


def test_tolerations() -> None:
    parsed = bs.parse_tolerations(
        [
            "key=gpu,operator=Exists,effect=NoSchedule;key=arch,value=arm64",
            "key=x,value=y,effect=NoExecute,tolerationSeconds=30",
        ]
    )
    assert parsed == (
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "arch", "value": "arm64", "operator": "Equal"},
        {"key": "x", "value": "y", "effect": "NoExecute", "tolerationSeconds": "30", "operator": "Equal"},
    )
    assert bs.parse_tolerations(["operator=Exists"]) == ({"operator": "Exists"},)
    for bad in (
        "key=a,colour=red",
        "key=a,operator=Maybe",
        "key=a,operator=Exists,value=b",
        "value=b",
        "key=a,effect=Sometimes",
        "key=a,tolerationSeconds=5",
        "key=a,effect=NoExecute,tolerationSeconds=soon",
    ):
        with pytest.raises(UsageError):
            bs.parse_tolerations([bad])


def test_first_use_spec_carries_the_proxies() -> None:
    spec = bs.first_use_spec(
        "bk", {"HTTPS_PROXY": "http://p:3128", "no_proxy": ".svc", "HOME": "/h", "HTTP_PROXY": ""}
    )
    assert spec.name == "bk" and dict(spec.env) == {"HTTPS_PROXY": "http://p:3128", "no_proxy": ".svc"}


def test_env_takes_bare_names_from_the_client() -> None:
    env = bs.parse_env(["HTTPS_PROXY", "NO_PROXY=.svc,10.0.0.0/8", "A=b=c"], {"HTTPS_PROXY": "http://p:3128"})
    assert env == {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".svc,10.0.0.0/8", "A": "b=c"}
    with pytest.raises(UsageError, match="not set in your environment"):
        bs.parse_env(["MISSING"], {})
    with pytest.raises(UsageError):
        bs.parse_env(["1X=2"], {})


@pytest.mark.parametrize(
    "bad",
    [
        BuilderSpec(name="Upper"),
        BuilderSpec(name="x" * 53),
        BuilderSpec(worker="kata"),
        BuilderSpec(runtime="crio"),
        BuilderSpec(replicas=0),
        BuilderSpec(worker="containerd", runtime="docker"),
        BuilderSpec(cache_volume="lots"),
        BuilderSpec(worker="containerd", cache_volume="10Gi"),
        BuilderSpec(config_toml="debug = ["),
    ],
)
def test_validate_rejects(bad: BuilderSpec) -> None:
    with pytest.raises(UsageError):
        bs.validate_spec(bad)


def test_resolve_auto() -> None:
    def nodes(*runtimes: str) -> list[NodeFacts]:
        return [NodeFacts(r) for r in runtimes]

    assert resolve(BuilderSpec(), CONTAINERD).worker == "containerd"
    assert resolve(BuilderSpec(), nodes("docker://24.0")).worker == "runc"
    assert resolve(BuilderSpec(), nodes("cri-o://1.30")).worker == "runc"
    assert resolve(BuilderSpec(), nodes("containerd://1.7", "cri-o://1.30")).worker == "runc"
    assert resolve(BuilderSpec(), None).worker == "runc"  # nodes not listable
    assert resolve(BuilderSpec(worker="runc"), CONTAINERD).runtime == "containerd"
    rootless = resolve(BuilderSpec(worker="rootless"), CONTAINERD)
    assert rootless.image == "docker.io/moby/buildkit:v0.34.2-rootless"
    assert resolve(BuilderSpec(worker="rootless", image="my/bk:1"), CONTAINERD).image == "my/bk:1"


def test_resolve_takes_the_nodes_containerd_paths() -> None:
    k3s = resolve(BuilderSpec(), [NodeFacts("containerd://1.7.23-k3s2")] * 2)
    assert (k3s.containerd_sock, k3s.containerd_root, k3s.containerd_state) == (
        "/run/k3s/containerd/containerd.sock",
        "/var/lib/rancher/k3s/agent/containerd",
        "/run/k3s/containerd",
    )
    micro = resolve(BuilderSpec(), [NodeFacts("containerd://1.7.27", {"microk8s.io/cluster": "true"})])
    assert micro.containerd_sock == "/var/snap/microk8s/common/run/containerd.sock"
    annotated = NodeFacts(
        "containerd://1.7.24",
        {},
        {
            "kubectl-build.dev/containerd-sock": "/srv/c.sock",
            "kubectl-build.dev/containerd-root": "/srv/root",
        },
    )
    got = resolve(BuilderSpec(), [annotated])
    assert (got.containerd_sock, got.containerd_root, got.containerd_state) == (
        "/srv/c.sock",
        "/srv/root",
        "/run/containerd",
    )
    # the user's flags win
    assert resolve(BuilderSpec(containerd_sock="/x.sock"), [annotated]).containerd_sock == "/x.sock"
    # nodes that differ: the builder goes to the largest group of alike nodes, pinned by name
    plain = [NodeFacts("containerd://1.7.24", name=n) for n in ("b", "c")]
    mixed = resolve(BuilderSpec(), [replace(annotated, name="a"), *plain])
    assert mixed.containerd_sock == "/run/containerd/containerd.sock" and mixed.nodes == ("b", "c")
    tie = resolve(BuilderSpec(), [replace(annotated, name="a"), plain[0]])
    assert tie.containerd_sock == "/srv/c.sock" and tie.nodes == ("a",)
    pinned = m.workload(bs.frozen(tie), "ns")["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
    assert pinned["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}
    ]
    assert resolve(BuilderSpec(), plain).nodes == ()
    assert (
        resolve(BuilderSpec(worker="runc"), [annotated]).containerd_sock == "/run/containerd/containerd.sock"
    )


def test_spec_from_flags_reads_files(tmp_path: Any) -> None:
    (tmp_path / "bk.toml").write_text('[registry."docker.io"]\n  mirrors = ["127.0.0.1:5000"]\n')
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    got = builder_cmds.spec_from_flags(
        {
            "name": "ci",
            "replicas": 2,
            "worker": "runc",
            "node_selector": ("a=b",),
            "config": str(tmp_path / "bk.toml"),
            "custom_ca": str(tmp_path / "ca.pem"),
            "env": ("X=1",),
            "host_network": True,
            "cache_size": "20Gi",
        },
        {},
    )
    assert (got.name, got.replicas, got.worker, dict(got.node_selector), got.host_network) == (
        "ci",
        2,
        "runc",
        {"a": "b"},
        True,
    )
    assert got.config_toml and "mirrors" in got.config_toml and got.custom_ca and got.cache_volume == "20Gi"
    with pytest.raises(UsageError, match="cannot read --config"):
        builder_cmds.spec_from_flags({"config": str(tmp_path / "nope.toml")}, {})
    with pytest.raises(UsageError, match="holds no PEM certificate"):
        builder_cmds.spec_from_flags({"custom_ca": str(tmp_path / "bk.toml")}, {})


def test_durations_and_sizes() -> None:
    assert builder_cmds.parse_duration("--x", "1h30m") == 5400 * 10**9
    assert builder_cmds.parse_duration("--x", "7d") == 7 * 86400 * 10**9
    assert builder_cmds.parse_duration("--x", "90") == 90 * 10**9
    assert builder_cmds.parse_duration("--x", "1.5s") == 1_500_000_000
    assert builder_cmds.parse_size("--x", "10GB") == 10**10
    assert builder_cmds.parse_size("--x", "512Mi") == 512 * 2**20
    assert builder_cmds.parse_size("--x", "1000") == 1000
    for bad in ("", "h", "1x", "1h 2m", "-1s"):
        with pytest.raises(UsageError):
            builder_cmds.parse_duration("--x", bad)
    for bad in ("", "ten", "10XB"):
        with pytest.raises(UsageError):
            builder_cmds.parse_size("--x", bad)


# ---------------------------------------------------------------------------- manifests


def test_default_containerd_builder() -> None:
    s = spec()
    deploy = m.workload(s, "ci")
    pod = deploy["spec"]["template"]["spec"]
    c = box(deploy)
    assert deploy["kind"] == "Deployment" and deploy["spec"]["strategy"] == {"type": "Recreate"}
    assert deploy["metadata"]["labels"][m.LABEL_BUILDER] == "buildkit"
    assert deploy["spec"]["selector"] == {"matchLabels": {m.LABEL_BUILDER: "buildkit"}}
    assert c["securityContext"] == {"privileged": True}
    assert c["args"] == [
        "--config",
        "/etc/buildkit/buildkitd.toml",
        "--root",
        "/var/lib/buildkit/ci/buildkit",
        "--oci-worker=false",
        "--containerd-worker=true",
        "--containerd-worker-addr",
        "/run/containerd/containerd.sock",
    ]
    assert c["readinessProbe"]["exec"]["command"] == ["buildctl", "debug", "workers"]
    assert {"name": "TMPDIR", "value": "/var/lib/buildkit/ci/buildkit"} in c["env"]
    mounts = {v["mountPath"]: v for v in c["volumeMounts"]}
    host = {v["name"]: v["hostPath"] for v in pod["volumes"] if "hostPath" in v}
    # Every node path is mounted at the same path in the pod: containerd resolves them on the node.
    for volume in pod["volumes"]:
        if "hostPath" in volume:
            assert mounts[volume["hostPath"]["path"]]["name"] == volume["name"]
    assert host["containerd-sock"] == {"path": "/run/containerd/containerd.sock", "type": "Socket"}
    assert host["containerd-root"] == {"path": "/var/lib/containerd", "type": "Directory"}
    # /run/containerd is the state dir by default: mounted once.
    assert [v["path"] for v in host.values()].count("/run/containerd") == 1
    assert mounts["/var/lib/buildkit/ci/buildkit"]["mountPropagation"] == "Bidirectional"
    assert "mountPropagation" not in mounts["/var/lib/containerd"]
    assert (
        pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"]
        == "kubernetes.io/hostname"
    )
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert "hostNetwork" not in pod
    config = m.configmap(s, "ci")
    assert config["data"] == {
        "buildkitd.toml": 'debug = false\n\n[worker.containerd]\n  namespace = "k8s.io"\n'
    }
    assert deploy["spec"]["template"]["metadata"]["annotations"][m.ANNOTATION_CONFIG] == m.config_hash(s)


def test_containerd_paths_of_a_non_standard_node() -> None:
    s = spec(
        containerd_sock="/srv/ctrd/containerd.sock",
        containerd_root="/srv/ctrd/root",
        containerd_state="/srv/ctrd/state",
        host_network=True,
    )
    deploy = m.workload(s, "ns")
    paths = sorted(
        v["hostPath"]["path"] for v in deploy["spec"]["template"]["spec"]["volumes"] if "hostPath" in v
    )
    assert paths == [
        "/run/containerd",
        "/srv/ctrd/containerd.sock",
        "/srv/ctrd/root",
        "/srv/ctrd/state",
        "/var/lib/buildkit/ns/buildkit",
    ]
    assert box(deploy)["args"][-1] == "/srv/ctrd/containerd.sock"
    pod = deploy["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True and pod["dnsPolicy"] == "ClusterFirstWithHostNet"


def test_runc_and_rootless() -> None:
    runc = m.workload(spec(worker="runc", replicas=3), "ns")
    pod = runc["spec"]["template"]["spec"]
    assert box(runc)["args"][-2:] == ["--oci-worker=true", "--containerd-worker=false"]
    assert {"name": "state", "emptyDir": {}} in pod["volumes"]
    assert not any("hostPath" in v for v in pod["volumes"])
    assert "preferredDuringSchedulingIgnoredDuringExecution" in pod["affinity"]["podAntiAffinity"]
    assert runc["spec"]["strategy"] == {"type": "RollingUpdate"}
    assert m.configmap(spec(worker="runc"), "ns")["data"]["buildkitd.toml"] == "debug = false\n"

    rootless = m.workload(spec(worker="rootless"), "ns")
    c = box(rootless)
    assert c["image"].endswith("-rootless")
    assert c["securityContext"] == {
        "runAsUser": 1000,
        "runAsGroup": 1000,
        "seccompProfile": {"type": "Unconfined"},
        "appArmorProfile": {"type": "Unconfined"},
    }
    assert "privileged" not in c["securityContext"]
    assert "--oci-worker-no-process-sandbox" in c["args"]
    capped = box(m.workload(spec(worker="rootless", capabilities=("SYS_ADMIN",)), "ns"))
    assert capped["securityContext"]["capabilities"] == {"add": ["SYS_ADMIN"]}
    with pytest.raises(UsageError, match="rootless worker only"):
        bs.validate_spec(BuilderSpec(worker="runc", capabilities=("SYS_ADMIN",)))
    with pytest.raises(UsageError, match="invalid --cap-add"):
        bs.validate_spec(BuilderSpec(worker="rootless", capabilities=("sys admin",)))
    # The rootless daemon (uid 1000) looks in ~/.config/buildkit; --config says it too.
    assert {"name": "config", "mountPath": "/home/user/.config/buildkit", "readOnly": True} in c[
        "volumeMounts"
    ]
    assert c["args"][:2] == ["--config", "/home/user/.config/buildkit/buildkitd.toml"]


def test_cache_volume_makes_a_statefulset() -> None:
    sts = m.workload(spec(worker="runc", cache_volume="20Gi", replicas=2), "ns")
    assert sts["kind"] == "StatefulSet" and sts["spec"]["podManagementPolicy"] == "Parallel"
    claim = sts["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert claim["metadata"]["labels"] == {m.LABEL_BUILDER: "buildkit"}
    assert {"name": m.CACHE_CLAIM, "mountPath": "/var/lib/buildkit"} in box(sts)["volumeMounts"]
    assert all(v["name"] != m.CACHE_CLAIM for v in sts["spec"]["template"]["spec"]["volumes"])


def test_scheduling_resources_env_and_ca() -> None:
    s = bs.frozen(
        resolve(
            BuilderSpec(
                worker="runc",
                node_selector={"disk": "ssd"},
                service_account="builder",
                tolerations=(
                    {
                        "key": "x",
                        "operator": "Equal",
                        "value": "y",
                        "effect": "NoExecute",
                        "tolerationSeconds": "30",
                    },
                ),
                requests={"cpu": "1"},
                limits={"memory": "4Gi"},
                env={"HTTPS_PROXY": "http://p"},
                custom_ca="-----BEGIN CERTIFICATE-----\n",
            ),
            CONTAINERD,
        )
    )
    deploy = m.workload(s, "ns")
    pod, c = deploy["spec"]["template"]["spec"], box(deploy)
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "disk": "ssd"}
    assert pod["tolerations"][0]["tolerationSeconds"] == 30
    assert pod["serviceAccountName"] == "builder"
    assert c["resources"] == {"requests": {"cpu": "1"}, "limits": {"memory": "4Gi"}}
    assert c["env"] == [
        {"name": "HTTPS_PROXY", "value": "http://p"},
        {"name": "SSL_CERT_DIR", "value": "/etc/ssl/certs:/etc/buildkit/certs"},
    ]
    assert m.configmap(s, "ns")["data"]["ca.pem"].startswith("-----BEGIN")
    config = next(v for v in pod["volumes"] if v["name"] == "config")
    assert {"key": "ca.pem", "path": "certs/ca.pem"} in config["configMap"]["items"]
    rootless = m.workload(
        bs.frozen(resolve(BuilderSpec(worker="rootless", custom_ca="PEM"), CONTAINERD)), "ns"
    )
    assert {"name": "ca", "mountPath": "/etc/buildkit/certs", "readOnly": True} in box(rootless)[
        "volumeMounts"
    ]


def test_no_credentials_anywhere_in_the_pod() -> None:
    for worker in ("containerd", "runc", "rootless"):
        text = repr(m.workload(spec(worker=worker), "ns")).lower()
        assert "secret" not in text and "dockerconfig" not in text and "password" not in text


def test_user_config_and_the_containerd_namespace() -> None:
    user = '[registry."docker.io"]\n  mirrors = ["m:5000"]\n'
    assert m.buildkitd_toml(spec(config_toml=user)).endswith('[worker.containerd]\n  namespace = "k8s.io"\n')
    own = '[worker.containerd]\n  namespace = "k8s.io"\n  gc = true\n'
    assert m.buildkitd_toml(spec(config_toml=own)) == own
    with pytest.raises(UsageError, match="sets worker.containerd.namespace 'other'"):
        m.buildkitd_toml(spec(config_toml='[worker.containerd]\nnamespace = "other"\n'))
    with pytest.raises(UsageError, match="without namespace"):
        m.buildkitd_toml(spec(config_toml="[worker.containerd]\ngc = true\n"))
    assert m.buildkitd_toml(spec(worker="runc", config_toml=user)) == user
    assert m.config_hash(spec(config_toml=user)) != m.config_hash(spec())


# ---------------------------------------------------------------------------- diffing


def as_api(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns for it: our fields plus defaults and status."""
    out = copy.deepcopy(manifest)
    out["metadata"].update(
        resourceVersion="7", uid="u", generation=1, creationTimestamp="2026-01-01T00:00:00Z"
    )
    pod = out["spec"]["template"]["spec"]
    pod.update(
        restartPolicy="Always",
        dnsPolicy=pod.get("dnsPolicy", "ClusterFirst"),
        schedulerName="x",
        securityContext={},
        terminationGracePeriodSeconds=30,
    )
    pod["containers"][0].update(terminationMessagePath="/dev/termination-log")
    out["spec"]["revisionHistoryLimit"] = 10
    out["status"] = {"replicas": 1}
    return out


def test_no_diff_against_the_api_form_of_the_same_spec() -> None:
    for s in (spec(), spec(worker="runc", cache_volume="1Gi"), spec(worker="rootless", host_network=True)):
        wanted = m.workload(s, "ns")
        assert m.builder_diff(as_api(wanted), wanted) == []


def test_diff_compares_quantities_by_value() -> None:
    old = as_api(m.workload(spec(worker="runc", requests={"cpu": "1", "memory": "1Gi"}), "ns"))
    same = m.workload(spec(worker="runc", requests={"cpu": "1000m", "memory": "1024Mi"}), "ns")
    assert m.builder_diff(old, same) == []
    more = m.workload(spec(worker="runc", requests={"cpu": "1100m", "memory": "1Gi"}), "ns")
    assert m.builder_diff(old, more) == [
        'resources: {"requests":{"cpu":"1","memory":"1Gi"}} -> {"requests":{"cpu":"1100m","memory":"1Gi"}}'
    ]
    sts = as_api(m.workload(spec(worker="runc", cache_volume="10Gi"), "ns"))
    assert m.builder_diff(sts, m.workload(spec(worker="runc", cache_volume="10240Mi"), "ns")) == []


def test_diff_lines_name_what_changed() -> None:
    old = as_api(m.workload(spec(), "ns"))
    new = m.workload(spec(image="docker.io/moby/buildkit:v0.35.0", replicas=2), "ns")
    assert m.builder_diff(old, new) == [
        "image: docker.io/moby/buildkit:v0.34.2 -> docker.io/moby/buildkit:v0.35.0",
        "replicas: 1 -> 2",
    ]
    lines = m.builder_diff(old, m.workload(spec(config_toml="debug = true\n"), "ns"))
    assert [line.split(":")[0] for line in lines] == ["config"]
    lines = m.builder_diff(old, m.workload(spec(worker="runc"), "ns"))
    assert {line.split(":")[0] for line in lines} >= {"worker", "args", "host paths"}


# ---------------------------------------------------------------------------- reading builders and pods


def api_pod(  # noqa: PLR0913 - test data: one keyword per field it varies
    name: str,
    *,
    ready: bool = False,
    deleting: bool = False,
    node: str = "n1",
    waiting: dict[str, Any] | None = None,
    restarts: int = 0,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "phase": "Running" if ready else "Pending",
        "conditions": conditions or [{"type": "Ready", "status": str(ready)}],
    }
    if waiting is not None or restarts:
        status["containerStatuses"] = [
            {
                "name": "buildkitd",
                "image": "img",
                "restartCount": restarts,
                "state": {"waiting": waiting} if waiting else {"running": {}},
                "lastState": {"terminated": {"exitCode": 1}} if restarts else {},
            }
        ]
    meta: dict[str, Any] = {"name": name, "uid": name + "-uid"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node}, "status": status}


def test_builder_from_json() -> None:
    workload = as_api(m.workload(spec(), "ci"))
    workload["metadata"]["namespace"] = "ci"
    b = builder_from(
        workload, [api_pod("b", ready=True), api_pod("a"), api_pod("c", ready=True, deleting=True)]
    )
    assert (b.name, b.namespace, b.worker, b.image, b.kind) == (
        "buildkit",
        "ci",
        "containerd",
        "docker.io/moby/buildkit:v0.34.2",
        "Deployment",
    )
    assert [p.name for p in b.ready_pods()] == ["b"]
    assert b.pods[2] == BuilderPod("c", "n1", False, "buildkitd", "Terminating")
    assert not pod_ready(api_pod("c", ready=True, deleting=True))


def test_rolled_out() -> None:
    d = {"kind": "Deployment", "metadata": {"generation": 2}}
    assert not rolled_out({**d, "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1}})
    assert not rolled_out({**d, "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1}})
    assert rolled_out({**d, "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1}})
    s = {"kind": "StatefulSet", "metadata": {"generation": 1}}
    assert not rolled_out(
        {**s, "status": {"observedGeneration": 1, "currentRevision": "a", "updateRevision": "b"}}
    )
    assert rolled_out(
        {**s, "status": {"observedGeneration": 1, "currentRevision": "b", "updateRevision": "b"}}
    )


def test_pod_problems() -> None:
    pull = pod_problem(
        api_pod(
            "p",
            waiting={"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x/y:z": not found'},
        ),
        "x/y:z",
    )
    assert pull is not None and pull.fatal and pull.reason == "ImagePullBackOff"
    assert pull.describe().startswith("ImagePullBackOff (pod p): image x/y:z: Back-off")
    transient = pod_problem(api_pod("p", waiting={"reason": "ErrImagePull", "message": "i/o timeout"}))
    assert transient is not None and not transient.fatal
    crash = pod_problem(
        api_pod("p", waiting={"reason": "CrashLoopBackOff", "message": "back-off"}, restarts=3)
    )
    assert crash is not None and crash.fatal and crash.detail == "exit code 1"
    unsched = pod_problem(
        api_pod(
            "p",
            conditions=[
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available",
                }
            ],
        )
    )
    assert unsched is not None and not unsched.fatal and unsched.detail == "0/1 nodes are available"
    shared = pod_problem(
        api_pod(
            "p",
            waiting={
                "reason": "CreateContainerError",
                "message": 'path "/var/lib/buildkit/a" is mounted on "/" but it is not a shared mount',
            },
        )
    )
    assert shared is not None and shared.fatal and shared.hint and "rshared" in shared.hint
    assert pod_problem(api_pod("p", waiting={"reason": "ContainerCreating"})) is None


def test_event_problems() -> None:
    psa = event_problem(
        [
            {"type": "Normal", "reason": "SuccessfulCreate", "message": "ok"},
            {
                "type": "Warning",
                "reason": "FailedCreate",
                "lastTimestamp": "2026-01-01T00:00:02Z",
                "message": 'pods "b-1" is forbidden: violates PodSecurity "baseline:latest": privileged',
            },
        ]
    )
    assert psa is not None and psa.fatal and psa.hint and "pod-security.kubernetes.io/enforce" in psa.hint
    mount = event_problem(
        [
            {
                "type": "Warning",
                "reason": "FailedMount",
                "message": 'MountVolume.SetUp failed for volume "containerd-sock" : hostPath type check '
                "failed: /run/containerd/containerd.sock is not a socket file",
            }
        ],
        "p",
    )
    assert mount is not None and mount.fatal and "--containerd-sock" in (mount.hint or "")
    assert event_problem([{"type": "Warning", "reason": "BackOff", "message": "x"}]) is None


def test_poll_is_bounded() -> None:
    now = [0.0]
    calls = []

    def check() -> str | None:
        calls.append(now[0])
        return "ok" if now[0] >= 3 else None

    def sleep(s: float) -> None:
        now[0] += s

    assert poll(check, timeout=10, clock=lambda: now[0], sleep=sleep) == "ok"
    now[0] = 0.0
    assert poll(lambda: None, timeout=2.5, clock=lambda: now[0], sleep=sleep) is None
    assert now[0] == 2.5
    assert last_line("a\n\nlast one\n\n") == "last one" and last_line("") == ""
    log = "[rootlesskit:parent] error: failed to setup UID/GID map: newuidmap failed\n: exit status 1\n"
    assert last_line(log).startswith("[rootlesskit:parent] error: failed to setup UID/GID map")


def test_ls_rows_and_age() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    b = Builder(
        "bk",
        "ci",
        "containerd",
        "img",
        (
            BuilderPod("bk-1", "n2", True, "buildkitd", "Running"),
            BuilderPod("bk-2", "n1", False, "buildkitd", "Pending"),
        ),
        created="2026-01-01T23:00:00Z",
    )
    assert builder_cmds.ls_rows([b], now) == [
        ["NAME", "NAMESPACE", "WORKER", "PODS", "NODES", "IMAGE", "AGE"],
        ["bk", "ci", "containerd", "1/2", "n1,n2", "img", "60m"],
    ]
    assert builder_cmds.age("2026-01-01T23:59:15Z", now) == "45s"
    assert builder_cmds.age("2025-12-25T00:00:00Z", now) == "8d"
    assert builder_cmds.human_bytes(999) == "999B" and builder_cmds.human_bytes(3_160_000) == "3.16MB"


# ---------------------------------------------------------------------------- API answers


def fake_kube() -> Any:
    from kubectl_build.kube.config import Kube, KubeOptions

    class Client:
        configuration = type("C", (), {"host": "https://k"})()

    return Kube(Client(), "ci", None, KubeOptions())


def test_api_answers_that_are_not_failures() -> None:
    from kubernetes.client.exceptions import ApiException

    from kubectl_build.errors import BuilderError, ClusterError
    from kubectl_build.kube.api import call

    def answer(status: int) -> Any:
        def fn(*args: Any, **kwargs: Any) -> Any:
            raise ApiException(status=status, reason="Nope")

        return fn

    kube = fake_kube()
    assert call(kube, "get deployment x", answer(404)) is None
    assert call(kube, "create configmap x", answer(409), absent=(409,)) is None
    with pytest.raises(ClusterError, match="get deployment x: 500"):
        call(kube, "get deployment x", answer(500))
    with pytest.raises(BuilderError, match="cannot create deployment x in namespace ci: forbidden"):
        call(kube, "create deployment x", answer(403))
    with pytest.raises(ClusterError, match="list pods: forbidden"):
        call(kube, "list pods", answer(403))
    assert call(kube, "list nodes", answer(403), absent=(403,)) is None
