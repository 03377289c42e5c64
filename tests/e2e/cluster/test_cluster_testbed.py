"""Acceptance tests of the test-bed Kubernetes cluster (hack/testbed up cluster).

They need the cluster running and FAIL (never skip) when it is not.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest

from tests.e2e.cluster.support import ENV_FILE, read_env
from tests.e2e.helpers import REPO, STATE

pytestmark = pytest.mark.cluster

BUSYBOX = "docker.io/library/busybox:1.36"
BUILDKIT_IMAGE = "docker.io/moby/buildkit:v0.34.2"


class Cluster:
    def __init__(self, env: dict[str, str], core: dict[str, str]):
        self.env = env
        self.core = core
        self.kubeconfig = env["KUBECONFIG"]
        self.node = env["KB_CLUSTER_NODE"]

    def kubectl(
        self,
        *args: str,
        input: bytes | str | None = None,  # noqa: A002 - subprocess.run's own name
        check: bool = True,
        timeout: float = 180,
        text: bool = True,
    ) -> subprocess.CompletedProcess:
        data = input.encode() if isinstance(input, str) and not text else input
        proc = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *args],
            input=data,
            capture_output=True,
            text=text,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def apply(self, namespace: str, manifest: dict, node: str | None = None) -> None:
        """Apply a Pod or Deployment, pinned to ``node`` (default: the main node)."""
        spec = manifest["spec"]["template"]["spec"] if manifest["kind"] == "Deployment" else manifest["spec"]
        spec.setdefault("nodeSelector", {"kubernetes.io/hostname": node or self.node})
        self.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(manifest))

    def wait_ready(self, namespace: str, pod: str, timeout: int = 180) -> None:
        proc = self.kubectl(
            "-n",
            namespace,
            "wait",
            "--for=condition=Ready",
            f"pod/{pod}",
            f"--timeout={timeout}s",
            check=False,
            timeout=timeout + 30,
        )
        if proc.returncode != 0:
            desc = self.kubectl("-n", namespace, "describe", "pod", pod, check=False).stdout
            raise AssertionError(f"pod {pod} not Ready: {proc.stderr}\n{desc[-3000:]}")


@pytest.fixture(scope="module")
def cluster(cluster_env: dict[str, str]) -> Cluster:
    core_file = STATE / "env.json"
    core = json.loads(core_file.read_text()) if core_file.exists() else {}
    return Cluster(cluster_env, core)


@pytest.fixture
def ns(cluster: Cluster):
    name = "kb-e2e-" + uuid.uuid4().hex[:8]
    cluster.kubectl("create", "namespace", name)
    deadline = time.time() + 60
    while cluster.kubectl("-n", name, "get", "serviceaccount", "default", check=False).returncode != 0:
        assert time.time() < deadline, "default service account never appeared"
        time.sleep(0.5)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pod(name: str, image: str, command: list[str] | None = None, **spec) -> dict:
    container = {"name": "main", "image": image, "imagePullPolicy": "IfNotPresent"}
    if command:
        container["command"] = command
    container.update(spec.pop("container", {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [container], **spec},
    }


SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def test_node_ready(cluster: Cluster) -> None:
    out = cluster.kubectl("get", "node", cluster.node, "-o", "json").stdout
    node = json.loads(out)
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", ready
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://1.7")
    assert node["status"]["nodeInfo"]["kubeletVersion"] == cluster.env["KB_CLUSTER_K8S_VERSION"]
    addrs = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addrs.get("InternalIP") == cluster.env["KB_CLUSTER_NODE_IP"]


def test_deployment_of_two_busybox_replicas_rolls_out(cluster: Cluster, ns: str) -> None:
    cluster.apply(
        ns,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "bb"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "bb"}},
                "template": {
                    "metadata": {"labels": {"app": "bb"}},
                    "spec": pod("x", BUSYBOX, SLEEPER)["spec"],
                },
            },
        },
    )
    cluster.kubectl("-n", ns, "rollout", "status", "deployment/bb", "--timeout=180s", timeout=210)
    pods = json.loads(cluster.kubectl("-n", ns, "get", "pods", "-l", "app=bb", "-o", "json").stdout)["items"]
    running = [p for p in pods if p["status"]["phase"] == "Running"]
    assert len(running) == 2
    ips = {p["status"]["podIP"] for p in running}
    assert len(ips) == 2 and all(ip.startswith("10.244.0.") for ip in ips), ips
    # pod-to-pod over the CNI bridge, and pod-to-node (the bridge address)
    a = running[0]["metadata"]["name"]
    other = running[1]["status"]["podIP"]
    out = cluster.kubectl("-n", ns, "exec", a, "--", "ping", "-c", "1", "-W", "5", other).stdout
    assert "1 packets received" in out, out
    node_ip = cluster.env["KB_CLUSTER_NODE_IP"]
    out = cluster.kubectl("-n", ns, "exec", a, "--", "ping", "-c", "1", "-W", "5", node_ip).stdout
    assert "1 packets received" in out, out
    # no route out of the machine
    proc = cluster.kubectl("-n", ns, "exec", a, "--", "ip", "route", check=False)
    assert "default" not in proc.stdout, proc.stdout


def test_exec_streams_100mb_binary_intact(cluster: Cluster, ns: str) -> None:
    cluster.apply(ns, pod("streamer", BUSYBOX, SLEEPER))
    cluster.wait_ready(ns, "streamer")
    data = os.urandom(100 * 1024 * 1024)
    want = hashlib.sha256(data).hexdigest()
    # host -> pod: stdin, checksummed inside the pod
    proc = cluster.kubectl(
        "-n",
        ns,
        "exec",
        "-i",
        "streamer",
        "--",
        "sh",
        "-c",
        "cat > /tmp/blob && sha256sum /tmp/blob",
        input=data,
        text=False,
        timeout=300,
    )
    assert proc.stdout.split()[0].decode() == want
    # pod -> host: stdout, checksummed here
    proc = cluster.kubectl("-n", ns, "exec", "streamer", "--", "cat", "/tmp/blob", text=False, timeout=300)
    assert len(proc.stdout) == len(data)
    assert hashlib.sha256(proc.stdout).hexdigest() == want
    # both directions in one stream
    proc = cluster.kubectl(
        "-n", ns, "exec", "-i", "streamer", "--", "cat", input=data, text=False, timeout=300
    )
    assert hashlib.sha256(proc.stdout).hexdigest() == want


def test_port_forward(cluster: Cluster, ns: str) -> None:
    token = uuid.uuid4().hex
    cluster.apply(
        ns,
        pod(
            "web",
            BUSYBOX,
            ["sh", "-c", f"mkdir -p /www && echo {token} > /www/index.html && exec httpd -f -p 8080 -h /www"],
            container={"ports": [{"containerPort": 8080}]},
        ),
    )
    cluster.wait_ready(ns, "web")
    pf = subprocess.Popen(
        [
            "kubectl",
            "--kubeconfig",
            cluster.kubeconfig,
            "-n",
            ns,
            "port-forward",
            "--address",
            "127.0.0.1",
            "pod/web",
            ":8080",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = pf.stdout.readline()
        m = re.search(r"127\.0\.0\.1:(\d+) ->", line)
        assert m, (
            f"unexpected port-forward output: {line!r} {pf.stderr.read() if pf.poll() is not None else ''}"
        )
        body = urllib.request.urlopen(f"http://127.0.0.1:{m.group(1)}/index.html", timeout=30).read().decode()
        assert body.strip() == token
    finally:
        pf.terminate()
        pf.wait(timeout=10)


def test_logs(cluster: Cluster, ns: str) -> None:
    token = uuid.uuid4().hex
    cluster.apply(
        ns,
        pod(
            "talker",
            BUSYBOX,
            ["sh", "-c", f"for i in 1 2 3; do echo {token}-$i; done; echo err-line >&2; " + SLEEPER[2]],
        ),
    )
    cluster.wait_ready(ns, "talker")
    deadline = time.time() + 30
    while True:
        out = cluster.kubectl("-n", ns, "logs", "talker").stdout
        if f"{token}-3" in out or time.time() > deadline:
            break
        time.sleep(0.5)
    assert [f"{token}-{i}" for i in (1, 2, 3)] == [ln for ln in out.splitlines() if ln.startswith(token)]
    assert "err-line" in out


def test_privileged_pod_with_containerd_socket(cluster: Cluster, ns: str) -> None:
    sock = cluster.env["KB_CLUSTER_CONTAINERD_SOCK"]
    cluster.apply(
        ns,
        pod(
            "priv",
            BUSYBOX,
            SLEEPER,
            container={
                "securityContext": {"privileged": True},
                "volumeMounts": [{"name": "sock", "mountPath": "/run/containerd/containerd.sock"}],
            },
            volumes=[{"name": "sock", "hostPath": {"path": sock, "type": "Socket"}}],
        ),
    )
    cluster.wait_ready(ns, "priv")
    cluster.kubectl("-n", ns, "exec", "priv", "--", "test", "-S", "/run/containerd/containerd.sock")
    # privileged: all capabilities, so e.g. a mount works
    cluster.kubectl("-n", ns, "exec", "priv", "--", "sh", "-c", "mkdir -p /mnt/t && mount -t tmpfs t /mnt/t")


def test_pull_from_tls_registry_with_image_pull_secret(cluster: Cluster, ns: str) -> None:
    core = cluster.core
    for k in ("KB_REGISTRY_TLS", "KB_REGISTRY_USER", "KB_REGISTRY_PASSWORD", "KB_REGISTRY_CA"):
        assert core.get(k), f"core test bed env lacks {k}"
    reg = core["KB_REGISTRY_TLS"]
    tag = uuid.uuid4().hex[:12]
    marker = "pulled-with-secret-" + tag
    subprocess.run(
        [
            sys.executable,
            str(REPO / "hack/cluster/small_images.py"),
            "busybox",
            reg,
            f"kb-e2e/private:{tag}",
            "--https",
            "--cafile",
            core["KB_REGISTRY_CA"],
            "--user",
            core["KB_REGISTRY_USER"],
            "--password",
            core["KB_REGISTRY_PASSWORD"],
            "--marker",
            marker,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = f"{reg}/kb-e2e/private:{tag}"
    # without credentials the node is refused
    cluster.apply(ns, pod("nosecret", image, SLEEPER))
    deadline = time.time() + 60
    reason = ""
    while time.time() < deadline:
        st = json.loads(cluster.kubectl("-n", ns, "get", "pod", "nosecret", "-o", "json").stdout)["status"]
        waiting = (st.get("containerStatuses") or [{}])[0].get("state", {}).get("waiting", {})
        reason = waiting.get("reason", "")
        if reason in ("ErrImagePull", "ImagePullBackOff"):
            break
        time.sleep(1)
    assert reason in ("ErrImagePull", "ImagePullBackOff"), reason
    # with an imagePullSecret it runs
    cluster.kubectl(
        "-n",
        ns,
        "create",
        "secret",
        "docker-registry",
        "regcred",
        f"--docker-server={reg}",
        f"--docker-username={core['KB_REGISTRY_USER']}",
        f"--docker-password={core['KB_REGISTRY_PASSWORD']}",
    )
    cluster.apply(ns, pod("withsecret", image, SLEEPER, imagePullSecrets=[{"name": "regcred"}]))
    cluster.wait_ready(ns, "withsecret")
    out = cluster.kubectl("-n", ns, "exec", "withsecret", "--", "cat", "/etc/testbed-marker").stdout
    assert out.strip() == marker


def test_buildkitd_pod_from_local_image_reports_workers(cluster: Cluster, ns: str) -> None:
    image = cluster.env.get("KB_CLUSTER_BUILDKIT_IMAGE", BUILDKIT_IMAGE)
    probe = {
        "exec": {"command": ["buildctl", "debug", "workers"]},
        "periodSeconds": 2,
        "failureThreshold": 60,
    }
    cluster.apply(
        ns,
        pod(
            "buildkitd",
            image,
            None,
            container={
                "args": ["--addr", "unix:///run/buildkit/buildkitd.sock"],
                "securityContext": {"privileged": True},
                "readinessProbe": probe,
                "volumeMounts": [{"name": "state", "mountPath": "/var/lib/buildkit"}],
            },
            volumes=[{"name": "state", "emptyDir": {}}],
        ),
    )
    cluster.wait_ready(ns, "buildkitd", timeout=240)
    out = cluster.kubectl("-n", ns, "exec", "buildkitd", "--", "buildctl", "debug", "workers", "-v").stdout
    assert "linux/amd64" in out, out
    assert re.search(r"Platforms:.*linux/arm64", out, re.S), out  # emulated through binfmt/qemu
    ver = cluster.kubectl("-n", ns, "exec", "buildkitd", "--", "buildkitd", "--version").stdout
    assert "v0.34.2" in ver
    # the image the node ran is the locally assembled one, pulled under its public name
    st = json.loads(cluster.kubectl("-n", ns, "get", "pod", "buildkitd", "-o", "json").stdout)["status"]
    assert st["containerStatuses"][0]["image"] == image


def test_buildkitd_reachable_with_buildctl_dial_stdio(cluster: Cluster, ns: str) -> None:
    """buildctl on the host talks to the in-pod buildkitd through `kubectl exec ... buildctl dial-stdio`."""
    buildctl = cluster.core.get("KB_BUILDCTL")
    assert buildctl and os.access(buildctl, os.X_OK), "core test bed env lacks KB_BUILDCTL"
    image = cluster.env.get("KB_CLUSTER_BUILDKIT_IMAGE", BUILDKIT_IMAGE)
    cluster.apply(
        ns,
        pod(
            "bk2",
            image,
            None,
            container={
                "args": ["--addr", "unix:///run/buildkit/buildkitd.sock"],
                "securityContext": {"privileged": True},
                "readinessProbe": {
                    "exec": {"command": ["buildctl", "debug", "workers"]},
                    "periodSeconds": 2,
                    "failureThreshold": 60,
                },
                "volumeMounts": [{"name": "state", "mountPath": "/var/lib/buildkit"}],
            },
            volumes=[{"name": "state", "emptyDir": {}}],
        ),
    )
    cluster.wait_ready(ns, "bk2", timeout=240)
    # buildctl's kube-pod:// connection helper runs `kubectl exec -i POD -- buildctl dial-stdio`
    env = dict(os.environ, KUBECONFIG=cluster.kubeconfig)
    proc = subprocess.run(
        [buildctl, "--addr", f"kube-pod://bk2?namespace={ns}", "debug", "workers"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "linux/amd64" in proc.stdout, proc.stdout


def test_rootless_buildkitd_pod_reports_workers(cluster: Cluster, ns: str) -> None:
    """The -rootless variant runs as uid 1000 under rootlesskit.

    On this machine's kernel, newuidmap (setuid root) may only write the user
    namespace's maps with CAP_SYS_ADMIN in the container's bounding set, so the pod
    adds it (measured: default capabilities -> "write to uid_map failed: EPERM").
    """
    image = cluster.env.get("KB_CLUSTER_BUILDKIT_IMAGE_ROOTLESS", BUILDKIT_IMAGE + "-rootless")
    cluster.apply(
        ns,
        pod(
            "rootless",
            image,
            None,
            container={
                "args": [
                    "--oci-worker-no-process-sandbox",
                    "--addr",
                    "unix:///run/user/1000/buildkit/buildkitd.sock",
                ],
                "securityContext": {
                    "runAsUser": 1000,
                    "runAsGroup": 1000,
                    "seccompProfile": {"type": "Unconfined"},
                    "appArmorProfile": {"type": "Unconfined"},
                    "capabilities": {"add": ["SYS_ADMIN"]},
                },
                "readinessProbe": {
                    "exec": {"command": ["buildctl", "debug", "workers"]},
                    "periodSeconds": 2,
                    "failureThreshold": 60,
                },
                "volumeMounts": [{"name": "state", "mountPath": "/home/user/.local/share/buildkit"}],
            },
            volumes=[{"name": "state", "emptyDir": {}}],
        ),
    )
    cluster.wait_ready(ns, "rootless", timeout=240)
    out = cluster.kubectl("-n", ns, "exec", "rootless", "--", "buildctl", "debug", "workers").stdout
    assert "linux/amd64" in out, out
    assert cluster.kubectl("-n", ns, "exec", "rootless", "--", "id", "-u").stdout.strip() == "1000"


def test_host_network_pod_reaches_node_registries(cluster: Cluster, ns: str) -> None:
    """Registries listen on the node's 127.0.0.1 only: pods that talk to them (builders
    pushing) use hostNetwork; the node's containerd pulls from 127.0.0.1 directly."""
    reg = cluster.core.get("KB_REGISTRY", "127.0.0.1:5000")
    cluster.apply(ns, pod("hostnet", BUSYBOX, SLEEPER, hostNetwork=True))
    cluster.wait_ready(ns, "hostnet")
    out = cluster.kubectl(
        "-n", ns, "exec", "hostnet", "--", "wget", "-qO-", f"http://{reg}/v2/_catalog"
    ).stdout
    assert "moby/buildkit" in json.loads(out)["repositories"], out


ARM64_NODE_ENABLED = "KB_CLUSTER_ARM64_NODE" in (
    read_env() if ENV_FILE.exists() else {}
)


# Opt-in (KB_CLUSTER_ARM64_NODE=1 hack/testbed up cluster): deselected by the default
# test command's `-m "not arm64node"`, and a hard failure when selected without the node.
@pytest.mark.arm64node
def test_second_node_labelled_arm64_runs_builder_with_emulated_arm64(cluster: Cluster, ns: str) -> None:
    """The opt-in second node: its own kubelet (the linux/arm64 build, under qemu-user
    when present, else amd64), containerd and root dir, registered as kubernetes.io/arch=arm64.
    Its container runtime is the amd64 one, so its pods run amd64 images and arm64
    build steps on it run under emulation (binfmt/qemu), which this test states."""
    assert ARM64_NODE_ENABLED, "second node not enabled: KB_CLUSTER_ARM64_NODE=1 hack/testbed up cluster"
    name = cluster.env["KB_CLUSTER_ARM64_NODE"]
    node = json.loads(cluster.kubectl("get", "node", name, "-o", "json").stdout)
    assert node["metadata"]["labels"]["kubernetes.io/arch"] == "arm64"
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    image = cluster.env.get("KB_CLUSTER_BUILDKIT_IMAGE", BUILDKIT_IMAGE)
    manifest = pod(
        "bk-arm64",
        image,
        None,
        container={
            "args": ["--addr", "unix:///run/buildkit/buildkitd.sock"],
            "securityContext": {"privileged": True},
            "readinessProbe": {
                "exec": {"command": ["buildctl", "debug", "workers"]},
                "periodSeconds": 2,
                "failureThreshold": 90,
            },
            "volumeMounts": [{"name": "state", "mountPath": "/var/lib/buildkit"}],
        },
        volumes=[{"name": "state", "emptyDir": {}}],
    )
    manifest["spec"]["nodeSelector"] = {"kubernetes.io/arch": "arm64"}
    cluster.apply(ns, manifest)
    cluster.wait_ready(ns, "bk-arm64", timeout=300)
    st = json.loads(cluster.kubectl("-n", ns, "get", "pod", "bk-arm64", "-o", "json").stdout)
    assert st["spec"]["nodeName"] == name
    out = cluster.kubectl("-n", ns, "exec", "bk-arm64", "--", "buildctl", "debug", "workers").stdout
    assert "linux/arm64" in out, out
    # honest: the runtime on this node is amd64; arm64 runs through qemu-user
    assert cluster.kubectl("-n", ns, "exec", "bk-arm64", "--", "uname", "-m").stdout.strip() == "x86_64"
