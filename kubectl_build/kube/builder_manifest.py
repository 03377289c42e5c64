"""A builder as Kubernetes objects: ConfigMap (buildkitd.toml) and Deployment/StatefulSet.

Pure dict builders (the JSON kubectl would print), plus `builder_diff`, which compares
the fields these builders own so an existing builder can be checked against a spec.
The spec must be resolved first (`builder_spec.resolve`): no ``auto`` left.

Worker modes and why their pods look as they do:

* containerd: buildkitd drives the node's containerd, so built images land in the
  store the kubelet runs pods from. containerd and its shims run on the host and are
  handed paths by buildkitd (socket, snapshot directories, FIFOs), so each is a
  hostPath mounted at the *same* path. buildkitd mounts every RUN step's root file
  system (and secret tmpfs) under its TMPDIR, set to its state directory
  /var/lib/buildkit/NAMESPACE/NAME on the node: the one Bidirectional mount, so the node
  needs only that directory on a shared mount (systemd nodes have / shared). The
  namespace in the path keeps same-named builders of two namespaces apart (one bolt
  database each); at most one replica per node (required anti-affinity) and Recreate
  updates for the same reason.
* runc: self-contained (push/export only); state in an emptyDir, or with a cache size
  in one PersistentVolumeClaim per replica (a StatefulSet), so the cache survives
  restarts and upgrades.
* rootless: no privileged container; the -rootless image as uid 1000 with seccomp and
  AppArmor Unconfined (rootlesskit needs user namespaces and mount), config in
  ~/.config/buildkit where that daemon looks for it.

No registry credentials ever appear here: they travel through the BuildKit session.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from kubectl_build import __version__
from kubectl_build.errors import UsageError
from kubectl_build.kube.builder_spec import BuilderSpec, parse_config

LABEL_BUILDER = "kubectl-build.dev/builder"
LABEL_WORKER = "kubectl-build.dev/worker"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubectl-build"
ANNOTATION_VERSION = "kubectl-build.dev/created-by"
ANNOTATION_CONFIG = "kubectl-build.dev/config-sha256"
CONTAINER = "buildkitd"
CONFIG_KEY = "buildkitd.toml"
CA_KEY = "ca.pem"
CACHE_CLAIM = "buildkit-cache"
ROOTLESS_HOME = "/home/user"
CA_DIR = "/etc/buildkit/certs"
"""Where --custom-ca is mounted (as ca.pem): buildkitd.toml may name it in registry ca=[...]."""


def selector(name: str) -> dict[str, str]:
    """Labels that select a builder's pods (and PVCs): stable across updates."""
    return {LABEL_BUILDER: name}


def labels(spec: BuilderSpec) -> dict[str, str]:
    """Labels on every object of a builder; `ls` lists by LABEL_BUILDER."""
    return {**selector(spec.name), LABEL_WORKER: spec.worker, LABEL_MANAGED: MANAGED_BY,
            "app.kubernetes.io/name": "buildkit", "app.kubernetes.io/instance": spec.name}


def buildkitd_toml(spec: BuilderSpec) -> str:
    """The buildkitd.toml to store: the user's, plus the containerd namespace if needed."""
    text = spec.config_toml if spec.config_toml is not None else "debug = false\n"
    if spec.worker != "containerd":
        return text
    worker = parse_config(text).get("worker")
    table = worker.get("containerd") if isinstance(worker, dict) else None
    namespace = table.get("namespace") if isinstance(table, dict) else None
    if namespace is not None:
        if namespace != spec.containerd_namespace:
            raise UsageError(
                f"--config sets worker.containerd.namespace {namespace!r} but the builder "
                f"uses {spec.containerd_namespace!r}",
                "drop one of them, or pass --containerd-namespace with the same value",
            )
        return text
    if table is not None:
        # Rewriting an existing table's text safely needs a TOML writer; ask instead.
        raise UsageError("--config has a [worker.containerd] table without namespace",
                         f'add namespace = "{spec.containerd_namespace}" to it')
    return text.rstrip("\n") + f'\n\n[worker.containerd]\n  namespace = "{spec.containerd_namespace}"\n'


def config_hash(spec: BuilderSpec) -> str:
    """Digest of everything in the ConfigMap; a change rolls the pods."""
    data = json.dumps(configmap_data(spec), sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()


def configmap_data(spec: BuilderSpec) -> dict[str, str]:
    """The ConfigMap's data: buildkitd.toml and the custom CA, if any."""
    data = {CONFIG_KEY: buildkitd_toml(spec)}
    if spec.custom_ca is not None:
        data[CA_KEY] = spec.custom_ca
    return data


def configmap(spec: BuilderSpec, namespace: str) -> dict[str, Any]:
    """The builder's ConfigMap."""
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": spec.name, "namespace": namespace, "labels": labels(spec),
                     "annotations": {ANNOTATION_VERSION: f"kubectl-build {__version__}"}},
        "data": configmap_data(spec),
    }


def workload(spec: BuilderSpec, namespace: str) -> dict[str, Any]:
    """The builder's Deployment, or StatefulSet when it has a cache volume per replica."""
    meta = {"name": spec.name, "namespace": namespace, "labels": labels(spec),
            "annotations": {ANNOTATION_VERSION: f"kubectl-build {__version__}"}}
    body: dict[str, Any] = {
        "replicas": spec.replicas,
        "selector": {"matchLabels": selector(spec.name)},
        "template": pod_template(spec, namespace),
    }
    if spec.cache_volume is None:
        # containerd replicas hold the node's hostPath state: the old pod must be gone
        # before the new one starts, and a surge pod could not be scheduled anyway.
        strategy = "Recreate" if spec.worker == "containerd" else "RollingUpdate"
        body["strategy"] = {"type": strategy}
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": body}
    body["serviceName"] = spec.name
    body["podManagementPolicy"] = "Parallel"
    body["volumeClaimTemplates"] = [{
        "metadata": {"name": CACHE_CLAIM, "labels": selector(spec.name)},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": spec.cache_volume}}},
    }]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": body}


def pod_template(spec: BuilderSpec, namespace: str) -> dict[str, Any]:
    """The pod template shared by both workload kinds."""
    pod: dict[str, Any] = {
        "containers": [container(spec, namespace)],
        # A claim-template volume comes with the StatefulSet, not the pod template.
        "volumes": [volume for volume, _ in mounts(spec, namespace) if volume],
        "nodeSelector": {"kubernetes.io/os": "linux", **spec.node_selector},
        "affinity": _anti_affinity(spec),
    }
    if spec.tolerations:
        pod["tolerations"] = [_toleration(t) for t in spec.tolerations]
    if spec.service_account:
        pod["serviceAccountName"] = spec.service_account
    if spec.host_network:
        pod["hostNetwork"] = True
        # Keep cluster DNS for the daemon (git sources, in-cluster registries).
        pod["dnsPolicy"] = "ClusterFirstWithHostNet"
    return {"metadata": {"labels": labels(spec), "annotations": {ANNOTATION_CONFIG: config_hash(spec)}},
            "spec": pod}


def _toleration(toleration: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(toleration)
    if "tolerationSeconds" in out:
        out["tolerationSeconds"] = int(out["tolerationSeconds"])
    return out


def _anti_affinity(spec: BuilderSpec) -> dict[str, Any]:
    term = {"labelSelector": {"matchLabels": selector(spec.name)}, "topologyKey": "kubernetes.io/hostname"}
    if spec.worker == "containerd":
        affinity: dict[str, Any] = {
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    else:
        affinity = {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": term}]}}
    if spec.nodes:
        affinity["nodeAffinity"] = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": list(spec.nodes)}]}]}}
    return affinity


def state_dir(spec: BuilderSpec, namespace: str) -> str:
    """The buildkitd --root inside the pod (and on the node for the containerd worker)."""
    if spec.worker == "containerd":
        return f"/var/lib/buildkit/{namespace}/{spec.name}"
    if spec.worker == "rootless":
        return f"{ROOTLESS_HOME}/.local/share/buildkit"
    return "/var/lib/buildkit"


def config_dir(spec: BuilderSpec) -> str:
    """Where the ConfigMap is mounted; the rootless daemon reads ~/.config/buildkit."""
    return f"{ROOTLESS_HOME}/.config/buildkit" if spec.worker == "rootless" else "/etc/buildkit"


def args(spec: BuilderSpec, namespace: str) -> list[str]:
    """The arguments for buildkitd (the images' entrypoints are buildkitd/rootlesskit)."""
    out = ["--config", f"{config_dir(spec)}/{CONFIG_KEY}", "--root", state_dir(spec, namespace)]
    if spec.worker == "containerd":
        out += ["--oci-worker=false", "--containerd-worker=true",
                "--containerd-worker-addr", spec.containerd_sock]
    elif spec.worker == "rootless":
        out += ["--oci-worker-no-process-sandbox"]
    else:
        out += ["--oci-worker=true", "--containerd-worker=false"]
    return out


def container(spec: BuilderSpec, namespace: str) -> dict[str, Any]:
    """The buildkitd container."""
    env = dict(spec.env)
    if spec.worker == "containerd":
        env["TMPDIR"] = state_dir(spec, namespace)
    if spec.custom_ca is not None:
        # Go reads every PEM file of these directories: the system CAs stay trusted.
        env.setdefault("SSL_CERT_DIR", f"/etc/ssl/certs:{CA_DIR}")
    out: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent",
        "args": args(spec, namespace),
        # Ready means the daemon answers and has a worker; no liveness probe, because a
        # daemon slow to answer under load would be killed with every build on it.
        "readinessProbe": {"exec": {"command": ["buildctl", "debug", "workers"]},
                           "periodSeconds": 2, "timeoutSeconds": 10, "failureThreshold": 3},
        "securityContext": _security_context(spec),
        "volumeMounts": [mount for _, mount in mounts(spec, namespace)],
    }
    if env:
        out["env"] = [{"name": k, "value": v} for k, v in sorted(env.items())]
    resources = {k: dict(v) for k, v in (("requests", spec.requests), ("limits", spec.limits)) if v}
    if resources:
        out["resources"] = resources
    return out


def _security_context(spec: BuilderSpec) -> dict[str, Any]:
    if spec.worker != "rootless":
        return {"privileged": True}
    unconfined = {"type": "Unconfined"}
    context: dict[str, Any] = {"runAsUser": 1000, "runAsGroup": 1000,
                               "seccompProfile": unconfined, "appArmorProfile": dict(unconfined)}
    if spec.capabilities:
        context["capabilities"] = {"add": list(spec.capabilities)}
    return context


def mounts(spec: BuilderSpec, namespace: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(volume, volumeMount) pairs; a claim-template volume has no pod volume entry."""
    pairs = [_config_mount(spec)]
    if spec.custom_ca is not None and spec.worker == "rootless":
        pairs.append(({"name": "ca", "configMap": {"name": spec.name, "items": [
            {"key": CA_KEY, "path": CA_KEY}]}}, {"name": "ca", "mountPath": CA_DIR, "readOnly": True}))
    if spec.worker == "containerd":
        pairs += _containerd_mounts(spec, namespace)
    else:
        pairs.append(_state_mount(spec, namespace))
    if spec.runtime == "docker":
        pairs.append(_host("docker-sock", spec.docker_sock, "Socket", propagate=False))
    return pairs


def _config_mount(spec: BuilderSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    items = [{"key": CONFIG_KEY, "path": CONFIG_KEY}]
    if spec.custom_ca is not None and spec.worker != "rootless":
        # One volume at /etc/buildkit: a second mount nested in a configMap volume would
        # need a directory created in it, which is read-only.
        items.append({"key": CA_KEY, "path": f"{CA_DIR.removeprefix('/etc/buildkit/')}/{CA_KEY}"})
    volume = {"name": "config", "configMap": {"name": spec.name, "items": items}}
    return volume, {"name": "config", "mountPath": config_dir(spec), "readOnly": True}


def _state_mount(spec: BuilderSpec, namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    mount = {"name": CACHE_CLAIM if spec.cache_volume else "state", "mountPath": state_dir(spec, namespace)}
    if spec.cache_volume:
        # The StatefulSet's volumeClaimTemplates provide this volume: no pod volume.
        return {}, mount
    return {"name": "state", "emptyDir": {}}, mount


def _containerd_mounts(spec: BuilderSpec, namespace: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    # containerd and its shims run on the node and are handed paths by buildkitd: the
    # socket, snapshot directories and FIFOs (/run/containerd/fifo, containerd's client
    # default) must be the node's at the node's paths. buildkitd also mounts each RUN
    # step's root filesystem (and secret tmpfs) under its TMPDIR, which is its state
    # directory: only that one needs Bidirectional propagation, so the node needs no
    # more than that directory on a shared mount (systemd makes / shared).
    wanted = [("containerd-sock", spec.containerd_sock, "Socket", False),
              ("containerd-root", spec.containerd_root, "Directory", False),
              ("containerd-state", spec.containerd_state, "Directory", False),
              ("containerd-run", "/run/containerd", "DirectoryOrCreate", False),
              ("buildkit-state", state_dir(spec, namespace), "DirectoryOrCreate", True)]
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    taken: list[str] = []
    for name, path, kind, propagate in wanted:
        if any(path == p or path.startswith(p.rstrip("/") + "/") for p in taken):
            continue  # already visible through a parent mount at the same path
        taken.append(path)
        pairs.append(_host(name, path, kind, propagate=propagate))
    return pairs


def _host(name: str, path: str, kind: str, *, propagate: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    mount: dict[str, Any] = {"name": name, "mountPath": path}
    if propagate:
        mount["mountPropagation"] = "Bidirectional"
    return {"name": name, "hostPath": {"path": path, "type": kind}}, mount


def builder_diff(existing: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """What differs between two builder workloads, as lines like ``image: a -> b``.

    Only the fields these builders set are compared, so the defaults the API server
    adds to an existing object never show up as differences.
    """
    old, new = facts(existing), facts(wanted)
    return [f"{key}: {old[key]} -> {new[key]}" for key in new
            if old.get(key) != new[key] and _quantities(old.get(key, "")) != _quantities(new[key])]


_SUFFIX = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
           "k": Decimal(10) ** 3, "M": Decimal(10) ** 6, "G": Decimal(10) ** 9, "T": Decimal(10) ** 12,
           "P": Decimal(10) ** 15, "E": Decimal(10) ** 18, "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20,
           "Gi": Decimal(2) ** 30, "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60}
_QUANTITY = re.compile(r'"([0-9.]+(?:[eE][-+]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]?)"')


def _quantities(text: str) -> str:
    """`text` with Kubernetes quantities in their value, so 1024Mi equals the API's 1Gi."""
    def value(match: re.Match[str]) -> str:
        try:
            return str((Decimal(match.group(1)) * _SUFFIX[match.group(2)]).normalize())
        except (InvalidOperation, KeyError):
            return match.group(0)
    return _QUANTITY.sub(value, text)


def facts(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The comparable facts of a workload manifest (ours or the API's JSON form)."""
    spec = manifest.get("spec") or {}
    template = spec.get("template") or {}
    pod = template.get("spec") or {}
    box: Mapping[str, Any] = next(
        (c for c in pod.get("containers") or [] if c.get("name") == CONTAINER), {})
    claims = spec.get("volumeClaimTemplates") or []
    requests = claims[0].get("spec", {}).get("resources", {}).get("requests", {}) if claims else {}
    config = ((template.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_CONFIG, "")
    host_paths = sorted(v["hostPath"]["path"] for v in pod.get("volumes") or [] if v.get("hostPath"))
    return {
        "kind": str(manifest.get("kind")),
        "worker": str(((manifest.get("metadata") or {}).get("labels") or {}).get(LABEL_WORKER)),
        "image": str(box.get("image")),
        "replicas": str(spec.get("replicas", 1)),
        "args": " ".join(box.get("args") or []),
        "node selector": _text(pod.get("nodeSelector") or {}),
        "affinity": _text(pod.get("affinity") or {}),
        "tolerations": _text(pod.get("tolerations") or []),
        "resources": _text(box.get("resources") or {}),
        "service account": str(pod.get("serviceAccountName") or "(default)"),
        "env": _text({e.get("name"): e.get("value", "") for e in box.get("env") or []}),
        "security context": _text(box.get("securityContext") or {}),
        "host network": str(bool(pod.get("hostNetwork"))).lower(),
        "host paths": ", ".join(host_paths) or "(none)",
        "config": f"sha256:{config[:12]}" if config else "(none)",
        "cache volume": json.dumps(requests.get("storage") or "(none)"),
    }


def _text(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
