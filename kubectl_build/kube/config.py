"""Load cluster access exactly as kubectl does; a kubeconfig that cannot be used is a ClusterError.

`KUBECONFIG` (several files, merged), `--kubeconfig`, `--context`, `--cluster`,
`--user`, `-n/--namespace`, `--request-timeout`, in-cluster service-account config
when running inside a pod, and exec/OIDC credential plugins (handled by the
kubernetes client). This module and its siblings are the only importers of
`kubernetes`; nothing imports them on paths that do not need the cluster. Loading errors
are translated here; the API calls' failures once, in `kube.api`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubectl_build.errors import ClusterError

DEFAULT_KUBECONFIG = Path.home() / ".kube" / "config"
SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True)
class KubeOptions:
    """How to reach the cluster, as kubectl's global flags say it."""

    kubeconfig: str | None = None
    context: str | None = None
    cluster: str | None = None
    user: str | None = None
    namespace: str | None = None
    request_timeout: float = 30.0


@dataclass
class Kube:
    """A connected API client plus the facts every command needs."""

    api_client: Any
    namespace: str
    context: str | None
    options: KubeOptions
    # kubectl's own flags for the same cluster (for the kubectl exec transport).
    kubectl_args: list[str] = field(default_factory=list)

    def core(self) -> Any:
        """CoreV1Api."""
        from kubernetes import client

        return client.CoreV1Api(self.api_client)

    def apps(self) -> Any:
        """AppsV1Api."""
        from kubernetes import client

        return client.AppsV1Api(self.api_client)


def _kubeconfig_paths(opts: KubeOptions) -> list[str]:
    if opts.kubeconfig:
        return [opts.kubeconfig]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [p for p in env.split(os.pathsep) if p]
    return [str(DEFAULT_KUBECONFIG)]


def _in_cluster(opts: KubeOptions, paths: list[str]) -> bool:
    return (not opts.kubeconfig and not os.environ.get("KUBECONFIG")
            and not any(os.path.exists(p) for p in paths)
            and bool(os.environ.get("KUBERNETES_SERVICE_HOST")))


def import_client() -> None:
    """Import the kubernetes client now, ahead of any connection.

    The local agent does, once, so the builds it forks find it imported.
    """
    import kubernetes.client  # noqa: F401


def connect(opts: KubeOptions) -> Kube:
    """Build an API client for the selected context; fail with a hint if impossible."""
    from kubernetes import client
    from kubernetes import config as kconfig
    from kubernetes.config.kube_config import KubeConfigLoader

    paths = _kubeconfig_paths(opts)
    if _in_cluster(opts, paths):
        try:
            kconfig.load_incluster_config()
            namespace = opts.namespace or (SA_DIR / "namespace").read_text().strip()
        except (kconfig.ConfigException, OSError) as err:
            raise ClusterError(f"the in-cluster service account is not usable: {err}",
                               "check the pod's service account token, or set KUBECONFIG") from err
        return Kube(client.ApiClient(), namespace, None, opts)
    existing = [p for p in paths if os.path.exists(p)]
    if not existing:
        raise ClusterError(
            f"no kubeconfig found (looked at {os.pathsep.join(paths)})",
            "set KUBECONFIG or pass --kubeconfig; or build on a standing daemon with "
            "--buildkit-host",
        )
    merged = _merged(existing)
    doc = merged.config.value
    context_name = opts.context or doc.get("current-context")
    entry = _context_entry(doc, context_name)
    if opts.cluster:
        entry["cluster"] = opts.cluster
    if opts.user:
        entry["user"] = opts.user
    configuration = client.Configuration()
    try:
        # The merged node keeps each file's location, so relative certificate paths
        # resolve against the file that named them, as kubectl does; that needs
        # config_base_path=None (its default "" means the working directory).
        loader = KubeConfigLoader(config_dict=merged.config, config_base_path=None,
                                  active_context=context_name)
        loader.load_and_set(configuration)
    except (kconfig.ConfigException, ValueError, OSError) as err:
        raise ClusterError(f"kubeconfig context {context_name!r} is not usable: {err}",
                           "check it with kubectl config view --minify") from err
    namespace = opts.namespace or entry.get("namespace") or "default"
    return Kube(client.ApiClient(configuration), namespace, context_name, opts,
                _kubectl_args(opts, existing, context_name))


def _merged(paths: list[str]) -> Any:
    from kubernetes.config.kube_config import KubeConfigMerger

    try:
        return KubeConfigMerger(os.pathsep.join(paths))
    except Exception as err:  # any parse failure is the same user error
        raise ClusterError(f"cannot read kubeconfig {os.pathsep.join(paths)}: {err}",
                           "fix the file or point KUBECONFIG at a valid one") from err


def _context_entry(doc: dict[str, Any], name: str | None) -> dict[str, Any]:
    for item in doc.get("contexts") or []:
        value = getattr(item, "value", item)  # merged files wrap entries in ConfigNode
        if value.get("name") == name:
            context: dict[str, Any] = value.setdefault("context", {})
            return context
    raise ClusterError(f"kubeconfig has no context {name!r}",
                       "list them with kubectl config get-contexts")


def _kubectl_args(opts: KubeOptions, paths: list[str], context: str | None) -> list[str]:
    args = ["--kubeconfig", os.pathsep.join(paths)] if opts.kubeconfig else []
    if context:
        args += ["--context", context]
    if opts.cluster:
        args += ["--cluster", opts.cluster]
    if opts.user:
        args += ["--user", opts.user]
    args += ["--request-timeout", f"{int(opts.request_timeout)}s"]
    return args
