"""Per-architecture builders: their spec, copied from the default builder. Pure.

A per-architecture builder (``buildkit-arm64``, named by ``planner.builder_name``) is the
default builder moved to other nodes: same image, worker mode, buildkitd.toml, CA,
environment, resources, tolerations, service account, host network and cache size, read
back from the default builder's workload and ConfigMap, with the planner's node
selector. It gets one replica (it is created on demand for one build) and no node list
or node selector of the default's (those name the default's nodes). Where the default
builder does not exist, it is what ``kubectl build`` creates on first use.

The node facts (container runtime, containerd paths) are settled again against the new
nodes by ``builder.prepare``, as for any builder; the default's containerd paths are kept
only where the new nodes say nothing of their own (``keep_containerd_paths``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kubectl_build.kube import builder_manifest as manifest
from kubectl_build.kube.builder_spec import (
    NODE_ANNOTATIONS,
    BuilderSpec,
    first_use_spec,
    frozen,
    parse_config,
)

_DEFAULTS = BuilderSpec()
# hostPath volume names of builder_manifest and the spec fields they carry.
_HOST_PATHS = {"containerd-sock": "containerd_sock", "containerd-root": "containerd_root",
               "containerd-state": "containerd_state", "docker-sock": "docker_sock"}
_TOLERATION_KEYS = ("key", "operator", "value", "effect", "tolerationSeconds")


def arch_spec(name: str, node_selector: Mapping[str, str], default: Mapping[str, Any] | None,
              config: Mapping[str, str] | None, environ: Mapping[str, str]) -> BuilderSpec:
    """The spec of per-architecture builder `name`.

    Args:
        name: Its name.
        node_selector: Where it goes (``planner.BuilderGroup.node_selector``).
        default: The default builder's workload JSON, or None when there is none.
        config: The data of the default builder's ConfigMap (None when absent or unreadable).
        environ: The client's environment (proxies for a first-use spec).
    """
    base = spec_from_workload(default, config) if default is not None else first_use_spec(name, environ)
    return frozen(replace(base, name=name, node_selector=dict(node_selector), replicas=1, nodes=()))


def spec_from_workload(workload: Mapping[str, Any], config: Mapping[str, str] | None) -> BuilderSpec:
    """The spec a builder workload was made from, as far as its manifest tells.

    The inverse of ``builder_manifest.workload``/``configmap``: recreating a builder from
    it gives the same manifests, except for its name, replicas, node selector and node list.
    """
    spec = workload.get("spec") or {}
    pod = ((spec.get("template") or {}).get("spec")) or {}
    boxes = pod.get("containers") or [{}]
    box: Mapping[str, Any] = next((c for c in boxes if c.get("name") == manifest.CONTAINER), boxes[0])
    worker = _worker(workload, box)
    data = dict(config or {})
    custom_ca = data.get(manifest.CA_KEY)
    toml = data.get(manifest.CONFIG_KEY)
    resources = box.get("resources") or {}
    paths = {field: str(v["hostPath"]["path"]) for v in pod.get("volumes") or []
             if v.get("hostPath") and (field := _HOST_PATHS.get(str(v.get("name"))))}
    return BuilderSpec(
        image=str(box.get("image") or _DEFAULTS.image),
        worker=worker,
        tolerations=tuple(_toleration(t) for t in pod.get("tolerations") or []),
        requests=_strings(resources.get("requests")),
        limits=_strings(resources.get("limits")),
        service_account=pod.get("serviceAccountName") or None,
        config_toml=toml,
        custom_ca=custom_ca,
        env=_env(box, worker, custom_ca is not None),
        containerd_namespace=_containerd_namespace(toml, worker),
        host_network=bool(pod.get("hostNetwork")),
        cache_volume=_cache_size(spec),
        capabilities=tuple(((box.get("securityContext") or {}).get("capabilities") or {}).get("add") or ()),
        containerd_sock=paths.get("containerd_sock", _DEFAULTS.containerd_sock),
        containerd_root=paths.get("containerd_root", _DEFAULTS.containerd_root),
        containerd_state=paths.get("containerd_state", _DEFAULTS.containerd_state),
        docker_sock=paths.get("docker_sock", _DEFAULTS.docker_sock),
    )


def without_containerd_paths(spec: BuilderSpec) -> BuilderSpec:
    """`spec` with the standard containerd paths, so resolving settles them for its own nodes."""
    return replace(spec, **{field: getattr(_DEFAULTS, field) for field in NODE_ANNOTATIONS})


def keep_containerd_paths(resolved: BuilderSpec, copied: BuilderSpec) -> BuilderSpec:
    """`resolved` with `copied`'s containerd paths where the new nodes left the standard ones."""
    if any(getattr(resolved, field) != getattr(_DEFAULTS, field) for field in NODE_ANNOTATIONS):
        return resolved  # the new nodes say where their containerd is
    return replace(resolved, **{field: getattr(copied, field) for field in NODE_ANNOTATIONS})


def selector_mismatch(workload: Mapping[str, Any], wanted: Mapping[str, str]) -> str | None:
    """Why an existing builder's pods are not placed by `wanted`, or None when they are.

    A builder whose selector has every wanted label (and maybe more: a narrower choice of
    the same nodes) is accepted.
    """
    pod = (((workload.get("spec") or {}).get("template") or {}).get("spec")) or {}
    have: Mapping[str, str] = pod.get("nodeSelector") or {}
    differ = {k: v for k, v in wanted.items() if have.get(k) != v}
    if not differ:
        return None
    return (f"its node selector is {_pairs(have) or '(none)'}, not {_pairs(wanted)}")


def _pairs(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _worker(workload: Mapping[str, Any], box: Mapping[str, Any]) -> str:
    label = str(((workload.get("metadata") or {}).get("labels") or {}).get(manifest.LABEL_WORKER) or "")
    if label in ("containerd", "runc", "rootless"):
        return label
    args = list(box.get("args") or [])
    if "--containerd-worker=true" in args:
        return "containerd"
    return "rootless" if "--oci-worker-no-process-sandbox" in args else "runc"


def _toleration(toleration: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(toleration[k]) for k in _TOLERATION_KEYS if toleration.get(k) not in (None, "")}


def _strings(values: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (values or {}).items()}


def _env(box: Mapping[str, Any], worker: str, custom_ca: bool) -> dict[str, str]:
    # What builder_manifest.container adds by itself is not the user's environment.
    added = {"TMPDIR"} if worker == "containerd" else set()
    env = {str(e.get("name")): str(e.get("value") or "") for e in box.get("env") or []
           if "valueFrom" not in e and e.get("name") not in added}
    if custom_ca and env.get("SSL_CERT_DIR") == f"/etc/ssl/certs:{manifest.CA_DIR}":
        del env["SSL_CERT_DIR"]
    return env


def _containerd_namespace(toml: str | None, worker: str) -> str:
    if worker != "containerd" or not toml:
        return _DEFAULTS.containerd_namespace
    table = (parse_config(toml).get("worker") or {})
    containerd = table.get("containerd") if isinstance(table, dict) else None
    namespace = containerd.get("namespace") if isinstance(containerd, dict) else None
    return str(namespace) if namespace else _DEFAULTS.containerd_namespace


def _cache_size(spec: Mapping[str, Any]) -> str | None:
    for claim in spec.get("volumeClaimTemplates") or []:
        if (claim.get("metadata") or {}).get("name") == manifest.CACHE_CLAIM:
            requests = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
            storage = requests.get("storage")
            return str(storage) if storage else None
    return None
