"""Cluster mode: find or create the builder, pick pods, and credentials from Secrets.

Imports of the kubernetes client happen here (lazily, through kube/), only when a
build targets the cluster.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace

from kubectl_build.buildkit.client import BuildKitClient
from kubectl_build.buildkit.session.auth import CredentialStore
from kubectl_build.console import Console
from kubectl_build.errors import BuilderError
from kubectl_build.options import DEFAULT_BUILDER, BuildOptions, OutputSpec
from kubectl_build.registry import Reference

READY_TIMEOUT = 30.0


@dataclass(frozen=True)
class ClusterTarget:
    """Connected clients for one build, plus where credentials came from."""

    clients: Sequence[BuildKitClient]
    credentials: CredentialStore
    secret: str | None
    worker: str
    builder: str
    namespace: str


def canonical_name(name: str) -> str:
    """The name a pod spec resolves to: `app:dev` is `docker.io/library/app:dev`."""
    ref = Reference.parse(name)
    sep = "@" if ref.reference.startswith("sha256:") else ":"
    return f"{ref.host}/{ref.repository}{sep}{ref.reference}"


def pick_pod(pods: Sequence[str], key: str) -> str:
    """Sticky choice: the same context goes to the same replica while it lives."""
    return max(pods, key=lambda pod: hashlib.sha256(f"{key}\0{pod}".encode()).digest())


def load_outputs(options: BuildOptions, worker: str, builder: str) -> tuple[OutputSpec, ...]:
    """Without --push/--output, images go into the nodes' image store (containerd worker)."""
    if options.outputs or not options.tags:
        return options.outputs
    if worker != "containerd":
        raise BuilderError(
            f"builder {builder} uses the {worker} worker, which cannot load images into the "
            "cluster's image store",
            "pass --push (with -t REGISTRY/NAME), an --output, or use a containerd builder",
        )
    names = ",".join(dict.fromkeys(canonical_name(t) for t in options.tags))
    # unpack: the kubelet starts containers from unpacked snapshots only.
    return (OutputSpec("image", {"name": names, "unpack": "true", "store": "true"}, None),)


def _kube_options(options: BuildOptions) -> object:
    from kubectl_build.kube.config import KubeOptions

    return KubeOptions(kubeconfig=options.kubeconfig, context=options.kube_context,
                       namespace=options.namespace)


@contextmanager
def open_target(options: BuildOptions, console: Console, context_key: str,
                load: bool) -> Iterator[ClusterTarget]:
    """Connect to the builder's pods (creating the default builder on first use)."""
    from kubectl_build.kube.builder import BuilderSpec, ensure_builder
    from kubectl_build.kube.config import KubeOptions, connect
    from kubectl_build.kube.registry_secret import load_credentials
    from kubectl_build.kube.transport import PodTarget, open_client

    kube_opts = _kube_options(options)
    assert isinstance(kube_opts, KubeOptions)
    kube = connect(kube_opts)
    creds = load_credentials(kube, options.registry_secret, options.builder)
    # Only the default builder is created on first use; another name must exist.
    create = options.builder == DEFAULT_BUILDER
    builder = ensure_builder(kube, BuilderSpec(name=options.builder), console, create=create)
    ready = builder.ready_pods()
    if not ready:
        raise BuilderError(f"builder {builder.name} has no ready pod",
                           f"check kubectl -n {kube.namespace} get pods -l app={builder.name}")
    if load:
        by_node = {pod.node: pod for pod in ready}  # one per node: each loads its own node
        chosen = list(by_node.values())
    else:
        name = pick_pod(sorted(p.name for p in ready), context_key)
        chosen = [p for p in ready if p.name == name]
    with ExitStack() as stack:
        clients = []
        for pod in chosen:
            target = PodTarget(kube.namespace, pod.name, pod.container)
            client = stack.enter_context(open_client(kube, target, options_transport(options)))
            client.wait_ready(READY_TIMEOUT)
            clients.append(client)
        yield ClusterTarget(clients, creds.store, creds.secret, builder.worker, builder.name,
                            kube.namespace)


def options_transport(options: BuildOptions) -> str:
    """The exec bridge to use (kubectl unless the environment asks otherwise)."""
    import os

    return os.environ.get("KUBECTL_BUILD_TRANSPORT", "kubectl")


def with_outputs(options: BuildOptions, outputs: tuple[OutputSpec, ...]) -> BuildOptions:
    """Options with the cluster's load outputs filled in."""
    return replace(options, outputs=outputs)
