"""Cluster mode: find or create the builder, pick pods, credentials from Secrets.

The kubernetes client is imported here only when needed: on a warm builder the
remembered pod is dialled straight away (kube/warm.py) and the registry Secret is
read in the background while the build starts.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubectl_build.buildkit.client import BuildKitClient
from kubectl_build.buildkit.session.auth import CredentialStore
from kubectl_build.console import Console
from kubectl_build.errors import (
    BuilderError,
    DaemonUnreachableError,
    KubectlBuildError,
)
from kubectl_build.kube import warm
from kubectl_build.kube.config import Kube, KubeOptions, connect
from kubectl_build.kube.pod_exec import WarmPath
from kubectl_build.options.build import DEFAULT_BUILDER, BuildOptions, OutputSpec
from kubectl_build.run.credentials import DeferredCredentials, read_credentials, secret_from_kubectl

if TYPE_CHECKING:
    from kubectl_build._proto import control_pb2
    from kubectl_build.kube.builder import Builder, BuilderPod
    from kubectl_build.kube.nodes import Node

READY_TIMEOUT = 30.0
WARM_DIAL_TIMEOUT = 8.0


class KubeHandle:
    """The cluster connection, made on first use (the warm path never needs one)."""

    def __init__(self, options: BuildOptions, kube: Kube | None = None) -> None:
        self._options = options
        self._kube = kube
        self._lock = threading.Lock()

    def get(self) -> Kube:
        """The connection (connecting now if not yet)."""
        with self._lock:
            if self._kube is None:
                self._kube = _connect(self._options)
            return self._kube


@dataclass(frozen=True)
class ClusterTarget:
    """Connected clients for one build, plus where credentials come from."""

    clients: Sequence[BuildKitClient]
    credentials: CredentialStore
    worker: str
    builder: str
    namespace: str
    explicit_secret: str | None = None
    kube: KubeHandle | None = None
    """The cluster connection, for planning across nodes and per-architecture builders."""
    pod: str = ""
    """The builder pod dialled (the first one when loading into several nodes)."""
    node: str = ""
    """The node of that pod; empty when not known (a warm entry written before it was kept)."""
    warm_key: str = ""
    """The builder's warm entry (kube/warm.py), which keeps the plan's inputs."""
    workers: tuple[control_pb2.WorkerRecord, ...] | None = None
    """What ``ListWorkers`` answered when the warm path checked the pod; None when not asked."""

    def pod_node(self) -> str:
        """The node the builder pod runs on, asking the API when the warm path skipped it."""
        if self.node or self.kube is None or not self.pod:
            return self.node
        from kubectl_build.kube.api import call

        kube = self.kube.get()
        found = call(kube, f"get pod {self.pod}", kube.core().read_namespaced_pod, self.pod,
                     self.namespace, absent=(403, 404))
        return str(found.spec.node_name or "") if found is not None and found.spec else ""

    def remembered_nodes(self) -> tuple[Node, ...] | None:
        """The nodes a recent build of this builder listed, with the pod's node known.

        None when there are none (or they are too old): list them. Only for a plan a
        stale listing cannot make wrong (see run.planning.make_plan_remembering).
        """
        entry = warm.load(self.warm_key) if self.warm_key and self.node else None
        if entry is None or entry.pod != self.pod:
            return None
        summary = entry.recent_nodes()
        return None if summary is None else nodes_from_summary(summary)

    def remember_nodes(self, nodes: Sequence[Node], node: str) -> None:
        """Keep a fresh node listing (and the pod's node) in the warm entry of this pod."""
        entry = warm.load(self.warm_key) if self.warm_key and nodes else None
        if entry is not None and entry.pod == self.pod:
            warm.save(self.warm_key, entry.with_nodes(summarise_nodes(nodes), node))

    @property
    def secret(self) -> str | None:
        """The Secret the credentials came from (for error hints)."""
        if isinstance(self.credentials, DeferredCredentials):
            return self.credentials.secret
        return self.explicit_secret

    @property
    def secret_problem(self) -> str | None:
        """Why no Secret was used, when reading it failed."""
        if isinstance(self.credentials, DeferredCredentials):
            return self.credentials.problem
        return None


def summarise_nodes(nodes: Sequence[Node]) -> tuple[warm.NodeSummary, ...]:
    """What the warm entry keeps of listed nodes. Pure."""
    return tuple((n.name, *((n.platform.os, n.platform.architecture, n.platform.variant)
                            if n.platform is not None else ("", "", "")), n.ready, n.schedulable)
                 for n in nodes)


def nodes_from_summary(summary: Sequence[warm.NodeSummary]) -> tuple[Node, ...]:
    """The planner's nodes back from ``summarise_nodes``. Pure."""
    from kubectl_build.kube.nodes import Node
    from kubectl_build.platforms.platform import Platform

    return tuple(Node(name, Platform(os_, arch, variant) if os_ else None, ready, schedulable)
                 for name, os_, arch, variant, ready, schedulable in summary)


def canonical_name(name: str) -> str:
    """The name a pod spec resolves to: `app:dev` is `docker.io/library/app:dev`."""
    from kubectl_build.registry.client import Reference  # urllib and ssl: not before Solve

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


def transport_of(options: BuildOptions) -> str:
    """The exec bridge: ``--transport`` (or KUBECTL_BUILD_TRANSPORT), kubectl by default."""
    return options.transport


def _connect(options: BuildOptions) -> Kube:
    return connect(KubeOptions(kubeconfig=options.kubeconfig, context=options.kube_context,
                               namespace=options.namespace))


@dataclass(frozen=True)
class Opening:
    """What connecting a build to its builder is given."""

    options: BuildOptions
    """The build's options (builder, namespace, kubeconfig, transport)."""
    console: Console
    """For progress and --debug lines."""
    context_key: str
    """Picks the replica a context sticks to."""
    load: bool
    """The image goes into the nodes' store: one pod per node is dialled."""
    warm: WarmPath | None = None
    """The invocation's warm path (early exec, early Secret read, the agent's spare)."""


@contextmanager
def open_target(opening: Opening,
                before_create: Callable[[Kube], None] | None = None) -> Iterator[ClusterTarget]:
    """Connect to the builder's pods (creating the default builder on first use).

    Args:
        opening: the build and what was started for it early.
        before_create: called with the connection just before the default builder is
            created (never on the warm path, nor when it exists); raising there creates
            nothing.
    """
    options = opening.options
    key = warm.cache_key(options.kubeconfig, options.kube_context, options.namespace,
                         options.builder)
    with ExitStack() as stack:
        target = None
        entry = warm.load(key)
        if entry is not None and (entry.single_node or not opening.load):
            target = _warm_target(opening, entry, stack, key)
            if target is None:
                warm.forget(key)
        if target is None:
            target = _full_target(opening, key, stack, before_create)
        yield target


def _warm_target(opening: Opening, entry: warm.WarmEntry, stack: ExitStack,
                  key: str) -> ClusterTarget | None:
    from kubectl_build.kube.transport import PodTarget, open_client

    options, console, early = opening.options, opening.console, opening.warm
    if transport_of(options) != "kubectl":
        return None
    inner = ExitStack()
    try:
        client = inner.enter_context(open_client(
            PodTarget(entry.namespace, entry.pod, entry.container), "kubectl",
            kubectl_args=entry.kubectl_args, early=early))
        # One call proves the pod answers (it waits while the channel connects and fails
        # once the exec does); a multi-platform plan needs the workers' platforms anyway, so
        # they are that call. Not wait_ready: its connectivity watch makes closing the
        # channel wait up to 0.2 s more, which a warm build of well under a second pays.
        workers = (tuple(client.list_workers(timeout=WARM_DIAL_TIMEOUT)) if options.platforms
                   else None)
        if workers is None:
            client.info(timeout=WARM_DIAL_TIMEOUT)
    except (KubectlBuildError, DaemonUnreachableError):
        inner.close()
        console.trace(f"remembered builder pod {entry.pod} is gone; looking it up")
        return None
    stack.push(inner)
    ready = " (exec kept ready by the local agent)" if early is not None and early.adopted else ""
    console.trace(f"dialled remembered builder pod {entry.pod}{ready}")
    if options.registry_secret:
        store, secret = read_credentials(options)  # an explicit Secret must exist: check now
        credentials: CredentialStore = store
    else:
        read = early.take_secret((entry.namespace, options.builder, entry.kubectl_args)) \
            if early is not None else None
        pending = [read] if read is not None else []  # used once: a retry asks the API

        def load() -> tuple[CredentialStore, str | None]:
            found = secret_from_kubectl(pending.pop()) if pending else None
            return found if found is not None else read_credentials(options)

        credentials = DeferredCredentials(load, console)
        secret = None
    return ClusterTarget([client], credentials, entry.worker, options.builder, entry.namespace,
                         secret, KubeHandle(options), entry.pod, entry.node, key, workers)


def _full_target(opening: Opening, key: str, stack: ExitStack,
                 before_create: Callable[[Kube], None] | None = None) -> ClusterTarget:
    from kubectl_build.kube.builder import BuilderSpec, ensure_builder, find_builder
    from kubectl_build.kube.registry_secret import load_credentials

    options, console = opening.options, opening.console
    kube = _connect(options)
    creds = load_credentials(kube, options.registry_secret, options.builder)
    # Only the default builder is created on first use; another name must exist.
    create = options.builder == DEFAULT_BUILDER
    builder = None
    if create and before_create is not None:
        existing = find_builder(kube, options.builder)
        if existing is None:
            before_create(kube)
        elif existing.ready_pods():
            builder = existing
    if builder is None:
        builder = ensure_builder(kube, BuilderSpec(name=options.builder), console, create=create)
    chosen, clients = open_pods(kube, builder, opening, stack)
    if len(chosen) == 1:
        single = len({pod.node for pod in builder.ready_pods()}) == 1
        warm.save(key, warm.WarmEntry(kube.namespace, chosen[0].name, chosen[0].container,
                                      builder.worker, tuple(kube.kubectl_args), single,
                                      chosen[0].node))
    return ClusterTarget(clients, creds.store, builder.worker, builder.name, kube.namespace,
                         creds.secret, KubeHandle(options, kube), chosen[0].name, chosen[0].node,
                         key if len(chosen) == 1 else "")


def open_pods(kube: Kube, builder: Builder, opening: Opening,
              stack: ExitStack) -> tuple[list[BuilderPod], list[BuildKitClient]]:
    """Dial a builder's pods; the clients close with ``stack``.

    One per node when loading (each node loads its own), else the sticky pick for the
    opening's context; an exec started early for a pod is adopted.

    Raises:
        BuilderError: the builder has no ready pod.
    """
    from kubectl_build.kube.transport import PodTarget, open_client

    ready = builder.ready_pods()
    if not ready:
        raise BuilderError(f"builder {builder.name} has no ready pod",
                           f"check kubectl -n {kube.namespace} get pods "
                           f"-l kubectl-build.dev/builder={builder.name}")
    if opening.load:
        chosen = list({pod.node: pod for pod in ready}.values())  # each node loads its own
    else:
        name = pick_pod(sorted(p.name for p in ready), opening.context_key)
        chosen = [p for p in ready if p.name == name]
    clients = []
    for pod in chosen:
        client = stack.enter_context(open_client(
            PodTarget(kube.namespace, pod.name, pod.container), transport_of(opening.options),
            kubectl_args=kube.kubectl_args, kube=kube, early=opening.warm))
        client.wait_ready(READY_TIMEOUT)
        clients.append(client)
    return chosen, clients
