"""Builders in the cluster: create (race-safely), update, remove; ensure one is there and ready.

A builder is a Deployment (or a StatefulSet when it has a cache volume per replica)
plus a ConfigMap with its buildkitd.toml, all labelled ``kubectl-build.dev/builder=NAME``
so `list_builders` finds them. The manifests are built by `builder_manifest` (pure);
reading a builder and waiting for it are `builder_state`'s (re-exported here); this
module makes the changes, each API call through `kube.api.call`.

Reading comes first everywhere: a user who may only get Deployments, list pods and
exec can use a builder somebody else created. Creating tolerates a concurrent creator
(409 AlreadyExists just means "wait for it"), and an invocation that created a builder
which never became ready deletes it again, so nothing is left half-created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kubectl_build.console import Console
from kubectl_build.errors import BuilderError, UsageError
from kubectl_build.kube import builder_manifest as manifest
from kubectl_build.kube.api import as_json as _json
from kubectl_build.kube.api import call as _api
from kubectl_build.kube.builder_manifest import builder_diff
from kubectl_build.kube.builder_spec import BuilderSpec, NodeFacts, frozen, resolve, validate_spec
from kubectl_build.kube.builder_state import (
    Builder,
    BuilderPod,
    builder_from,
    builder_pods,
    find_builder,
    list_builders,
    pod_selector,
    read_workload,
    wait_ready,
)
from kubectl_build.kube.config import Kube
from kubectl_build.kube.waiting import PodWatch, poll

__all__ = ["Builder", "BuilderPod", "BuilderSpec", "builder_diff", "builder_from", "create_builder",
           "ensure_arch_builder", "ensure_builder", "find_builder", "list_builders", "remove_builder"]

PSA_LABEL = "pod-security.kubernetes.io/enforce"


# ---------------------------------------------------------------------------- preparing a spec


def prepare(kube: Kube, spec: BuilderSpec, console: Console) -> BuilderSpec:
    """Validate `spec`, settle its ``auto`` choices against the nodes, check Pod Security."""
    spec = resolve(frozen(validate_spec(spec)), _nodes(kube, spec, console))
    if spec.worker == "containerd" and spec.cache_volume is not None:
        raise UsageError("--cache-size does not apply to the containerd worker",
                         "its cache persists on the node already; use --worker runc for a volume")
    manifest.buildkitd_toml(spec)  # config conflicts are usage errors, before any API call
    _check_pod_security(kube, spec)
    return spec


def _nodes(kube: Kube, spec: BuilderSpec, console: Console) -> list[NodeFacts] | None:
    if spec.runtime != "auto" and spec.worker not in ("auto", "containerd"):
        return None
    selector = ",".join(f"{k}={v}" for k, v in spec.node_selector.items()) or None
    found = _api(kube, "list nodes", kube.core().list_node, label_selector=selector, absent=(403,))
    if found is None:
        if spec.worker == "auto":
            console.info("cannot list nodes (forbidden), so the container runtime is unknown: using the "
                         "runc worker (pass --worker containerd to load images into the nodes)")
        return None
    return [NodeFacts(str(n.status.node_info.container_runtime_version if n.status.node_info else ""),
                      n.metadata.labels or {}, n.metadata.annotations or {}, n.metadata.name)
            for n in found.items]


def _check_pod_security(kube: Kube, spec: BuilderSpec) -> None:
    ns = _api(kube, f"get namespace {kube.namespace}", kube.core().read_namespace, kube.namespace,
              absent=(403, 404))
    level = ((ns.metadata.labels or {}).get(PSA_LABEL) if ns is not None else None) or "privileged"
    if level == "privileged":
        return
    needs = ("seccomp and AppArmor Unconfined (rootlesskit needs user namespaces and mounts)"
             if spec.worker == "rootless" else "a privileged container")
    raise BuilderError(
        f"the {spec.worker} builder needs {needs}, which Pod Security level {level!r} of namespace "
        f"{kube.namespace} forbids",
        f"use a namespace labelled {PSA_LABEL}=privileged (kubectl label ns NAME {PSA_LABEL}=privileged, "
        "as an admin), or build with --buildkit-host against a daemon outside the cluster")


def with_name(spec: BuilderSpec, name: str) -> BuilderSpec:
    """`spec` renamed (the CLI's positional NAME)."""
    return replace(spec, name=name)


# ---------------------------------------------------------------------------- lifecycle


def ensure_builder(kube: Kube, spec: BuilderSpec, console: Console, *, timeout: float = 180,
                   create: bool = True) -> Builder:
    """The builder `spec.name`, created from `spec` if absent, with at least one ready pod.

    Args:
        kube: Cluster connection (its namespace is the builder's).
        spec: What to create when the builder does not exist; an existing builder is
            used as it is.
        console: For progress lines.
        timeout: Seconds to wait for a ready pod.
        create: False to fail instead of creating.

    Raises:
        BuilderError: Absent and not `create`; forbidden to create; a pod problem that
            waiting cannot fix (named, with the `kubectl describe` to run).
        WaitTimeoutError: No ready pod within `timeout` (with the reason seen last).
    """
    existing = find_builder(kube, spec.name)
    if existing is not None:
        return existing if existing.ready_pods() else wait_ready(kube, spec.name, console, timeout)
    if not create:
        raise BuilderError(f"no builder {spec.name} in namespace {kube.namespace}",
                           f"create it with `kubectl buildkit create {spec.name} -n {kube.namespace}`")
    return _create_and_wait(kube, prepare(kube, spec, console), console, timeout)


def create_builder(kube: Kube, spec: BuilderSpec, console: Console, *, timeout: float = 180,
                   force: bool = False) -> Builder:
    """`kubectl buildkit create`: create, or check an existing builder against `spec`.

    An existing builder with a different spec is an error listing what differs (each
    difference also goes to the console), unless `force`, which updates it in place
    (or re-creates it when its kind or cache volume changes).
    """
    spec = prepare(kube, spec, console)
    existing = read_workload(kube, spec.name)
    if existing is None:
        return _create_and_wait(kube, spec, console, timeout)
    diff = builder_diff(existing, manifest.workload(spec, kube.namespace))
    if not diff:
        console.info(f"builder {spec.name} already exists in namespace {kube.namespace} with this spec")
        return wait_ready(kube, spec.name, console, timeout)
    for line in diff:
        console.info(f"  {line}")
    if not force:
        changed = ", ".join(line.partition(":")[0] for line in diff)
        raise BuilderError(
            f"builder {spec.name} in namespace {kube.namespace} exists with a different spec "
            f"({changed}: see above)", "pass --force to update it, or choose another name")
    return _update(kube, spec, existing, console, timeout)


def _create_and_wait(kube: Kube, spec: BuilderSpec, console: Console, timeout: float) -> Builder:
    created = _create(kube, spec, console)
    try:
        return wait_ready(kube, spec.name, console, timeout)
    except BaseException:
        if created:
            # Ctrl-C included: what this invocation created and never saw ready goes.
            console.info(f"removing builder {spec.name}, which never became ready")
            remove_builder(kube, spec.name, timeout=60)
        raise


def _create(kube: Kube, spec: BuilderSpec, console: Console) -> bool:
    """Create ConfigMap and workload; False if a concurrent invocation created the workload."""
    ns, core, apps = kube.namespace, kube.core(), kube.apps()
    console.info(f"creating builder {spec.name} in namespace {ns} ({spec.worker} worker, {spec.image})")
    config = manifest.configmap(spec, ns)
    if _api(kube, f"create configmap {spec.name}", core.create_namespaced_config_map, ns, config,
            absent=(409,)) is None:
        existing = _api(kube, f"get configmap {spec.name}", core.read_namespaced_config_map, spec.name, ns)
        _refuse_foreign("ConfigMap", spec.name, ns, (existing.metadata.labels or {}) if existing else None)
        # Left over from an interrupted run, or a concurrent creator's identical one.
        _api(kube, f"replace configmap {spec.name}", core.replace_namespaced_config_map,
             spec.name, ns, config)
    body = manifest.workload(spec, ns)
    create = apps.create_namespaced_deployment if body["kind"] == "Deployment" \
        else apps.create_namespaced_stateful_set
    made = _api(kube, f"create {body['kind'].lower()} {spec.name}", create, ns, body, absent=(409,))
    if made is None:
        other = read_workload(kube, spec.name)
        labels = (other["metadata"].get("labels") or {}) if other is not None else None
        _refuse_foreign(str(other["kind"] if other else body["kind"]), spec.name, ns, labels)
        console.info(f"builder {spec.name} is being created by another invocation; waiting for it")
    return made is not None


def _refuse_foreign(kind: str, name: str, namespace: str, object_labels: Mapping[str, str] | None) -> None:
    # Never adopt, overwrite or wait on somebody else's object of the same name.
    if object_labels is not None and manifest.LABEL_BUILDER not in object_labels:
        raise BuilderError(f"a {kind} named {name} already exists in namespace {namespace} and is not a "
                           "builder", "choose another builder name (--builder, or kubectl buildkit create "
                           "NAME)")


def _update(kube: Kube, spec: BuilderSpec, existing: dict[str, Any], console: Console,
            timeout: float) -> Builder:
    ns, apps, kind = kube.namespace, kube.apps(), existing.get("kind")
    body = manifest.workload(spec, ns)
    same_cache = manifest.facts(existing)["cache volume"] == manifest.facts(body)["cache volume"]
    if body["kind"] != kind or not same_cache:
        # Neither the kind nor a StatefulSet's volume claims can change in place.
        console.info(f"re-creating builder {spec.name} in namespace {ns}")
        remove_builder(kube, spec.name, timeout=timeout)
        return _create_and_wait(kube, spec, console, timeout)
    console.info(f"updating builder {spec.name} in namespace {ns}")
    _api(kube, f"replace configmap {spec.name}", kube.core().replace_namespaced_config_map, spec.name, ns,
         manifest.configmap(spec, ns))
    body["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
    replace_fn = apps.replace_namespaced_deployment
    if kind == "StatefulSet":
        # Keep the claims (and the cache in them) exactly as the API server has them.
        body["spec"]["volumeClaimTemplates"] = existing["spec"]["volumeClaimTemplates"]
        replace_fn = apps.replace_namespaced_stateful_set
    _api(kube, f"replace {str(kind).lower()} {spec.name}", replace_fn, spec.name, ns, body)
    return wait_ready(kube, spec.name, console, timeout, rollout=True)


def remove_builder(kube: Kube, name: str, *, timeout: float = 120) -> None:
    """Delete a builder's workload, ConfigMap and cache claims; wait until its pods are gone.

    Objects of the same name without the builder label are not touched.

    Raises:
        BuilderError: There is no such builder.
        WaitTimeoutError: Pods still exist after `timeout` seconds.
    """
    from kubectl_build.errors import WaitTimeoutError

    ns, core, apps = kube.namespace, kube.core(), kube.apps()
    workload = read_workload(kube, name)
    ours = workload is not None and manifest.LABEL_BUILDER in (workload["metadata"].get("labels") or {})
    if ours and workload is not None:
        delete = apps.delete_namespaced_deployment if workload["kind"] == "Deployment" \
            else apps.delete_namespaced_stateful_set
        _api(kube, f"delete {workload['kind'].lower()} {name}", delete, name, ns,
             propagation_policy="Background")
    config = _api(kube, f"get configmap {name}", core.read_namespaced_config_map, name, ns)
    if config is not None and manifest.LABEL_BUILDER in (config.metadata.labels or {}):
        _api(kube, f"delete configmap {name}", core.delete_namespaced_config_map, name, ns)
        ours = True
    claims = _api(kube, "list persistentvolumeclaims", core.list_namespaced_persistent_volume_claim, ns,
                  label_selector=f"{manifest.LABEL_BUILDER}={name}", absent=(403,))
    for claim in claims.items if claims is not None else []:
        _api(kube, f"delete persistentvolumeclaim {claim.metadata.name}",
             core.delete_namespaced_persistent_volume_claim, claim.metadata.name, ns)
        ours = True
    if not ours and not builder_pods(kube, name):
        raise BuilderError(f"no builder {name} in namespace {ns}", "list builders with `kubectl buildkit ls`")
    watch = PodWatch(kube, pod_selector(name))
    if poll(lambda: True if not builder_pods(kube, name, watch) else None, timeout=timeout,
            sleep=watch.sleep) is None:
        left = ", ".join(p["metadata"]["name"] for p in builder_pods(kube, name))
        raise WaitTimeoutError(f"builder {name} removed but its pods are still terminating after "
                               f"{timeout:.0f}s ({left})", f"check `kubectl -n {ns} describe pod {left}`")


def ensure_arch_builder(kube: Kube, default: str, name: str, node_selector: Mapping[str, str],
                        console: Console, *, timeout: float = 180) -> Builder:
    """Per-architecture builder `name`, pinned by `node_selector`, created on demand; ready.

    A new one copies default builder `default`'s spec (``arch_builder.arch_spec``), or is
    a first-use builder when there is no default. An existing one is used as it is, as
    long as its node selector has every label of `node_selector`. Creating is race-safe
    like `ensure_builder`: a concurrent creator's builder is waited for, and one this call
    created that never became ready is removed again.

    Args:
        kube: Cluster connection (its namespace is the builder's).
        default: The default builder's name (``--builder``).
        name: ``planner.builder_name(default, platform)``, e.g. ``buildkit-arm64``.
        node_selector: ``planner.BuilderGroup.node_selector``.
        console: For progress lines.
        timeout: Seconds to wait for a ready pod.

    Raises:
        BuilderError: `name` exists with another node selector or is not a builder;
            forbidden to create; a pod problem that waiting cannot fix.
        WaitTimeoutError: No ready pod within `timeout`.
    """
    from kubectl_build.kube import arch_builder

    ns = kube.namespace
    existing = read_workload(kube, name)
    if existing is not None:
        _refuse_foreign(str(existing["kind"]), name, ns, existing["metadata"].get("labels") or {})
        mismatch = arch_builder.selector_mismatch(existing, node_selector)
        if mismatch:
            raise BuilderError(
                f"builder {name} in namespace {ns} exists but {mismatch}",
                f"remove it with `kubectl buildkit rm {name} -n {ns}` to have it re-created on the right "
                "nodes, or pass --mode cross or --mode qemu")
        found = builder_from(existing, builder_pods(kube, name))
        return found if found.ready_pods() else wait_ready(kube, name, console, timeout)
    return _create_and_wait(kube, _arch_spec(kube, default, name, node_selector, console), console, timeout)


def _arch_spec(kube: Kube, default: str, name: str, node_selector: Mapping[str, str],
               console: Console) -> BuilderSpec:
    """The prepared spec of a new per-architecture builder: a copy of `default`'s, if any."""
    import os

    from kubectl_build.kube import arch_builder

    base = read_workload(kube, default)
    if base is not None and manifest.LABEL_BUILDER not in (base["metadata"].get("labels") or {}):
        base = None  # somebody else's object of that name: nothing to copy
    config = None
    if base is not None:
        found_config = _api(kube, f"get configmap {default}", kube.core().read_namespaced_config_map, default,
                            kube.namespace, absent=(403, 404))
        config = (_json(kube, found_config).get("data") or {}) if found_config is not None else None
        if config is None:
            console.trace(f"cannot read ConfigMap {default}: builder {name} gets the default buildkitd.toml")
    copied = arch_builder.arch_spec(name, node_selector, base, config, os.environ)
    console.trace(f"builder {name}: {'copy of builder ' + default if base is not None else 'first-use spec'}")
    # The copied paths are where containerd lives on the default builder's nodes: the new
    # nodes are asked first (their annotations), the copy fills in where they say nothing.
    spec = prepare(kube, arch_builder.without_containerd_paths(copied), console)
    if spec.worker == "containerd":
        spec = arch_builder.keep_containerd_paths(spec, copied)
    return spec
