"""Registry credentials from a Kubernetes docker-registry Secret.

The client reads the Secret with the user's own RBAC and serves what it holds
through the BuildKit session; nothing of it reaches the pod spec, a ConfigMap,
a log line or an error message.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from kubectl_build.buildkit.session.auth import CredentialStore
from kubectl_build.errors import ClusterError, KubectlBuildError, UsageError
from kubectl_build.kube.api import ApiRefusal, call
from kubectl_build.kube.config import Kube

_KEYS = {
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson", False),
    "kubernetes.io/dockercfg": (".dockercfg", True),
}


@dataclass(frozen=True)
class SecretCredentials:
    """The credentials in use and the Secret they came from (for error hints)."""

    store: CredentialStore
    secret: str | None  # "namespace/name", or None when anonymous


def _parse(kube: Kube, name: str, obj: object) -> CredentialStore:
    return parse_secret(kube.namespace, name, getattr(obj, "type", ""),
                        getattr(obj, "data", None) or {})


def parse_secret(namespace: str, name: str, secret_type: str,
                 data: dict[str, str]) -> CredentialStore:
    """The credentials in a Secret's ``type`` and ``data`` (as the API returns them)."""
    where = f"secret {namespace}/{name}"
    if secret_type not in _KEYS:
        raise UsageError(f"{where} has type {secret_type!r}, not a docker-registry secret",
                         "create it with kubectl create secret docker-registry")
    key, legacy = _KEYS[secret_type]
    if key not in data:
        raise UsageError(f"{where} has no {key} key",
                         "create it with kubectl create secret docker-registry")
    try:
        raw = base64.b64decode(data[key])
    except ValueError as err:
        raise UsageError(f"{where}: {key} is not valid base64",
                         "create it with kubectl create secret docker-registry") from err
    return CredentialStore.from_config_json(raw, where, legacy=legacy)


def load_credentials(kube: Kube, explicit: str | None, builder: str) -> SecretCredentials:
    """Credentials from --registry-secret, else the Secret named like the builder.

    An explicitly named Secret that is missing or malformed is an error before the
    build starts; the builder-named default is optional (anonymous when absent or
    unreadable for this user).
    """
    name = explicit or builder
    where = f"{kube.namespace}/{name}"

    def refused(refusal: ApiRefusal) -> KubectlBuildError:
        if refusal.status == 404:
            return UsageError(f"registry secret {where} not found",
                              f"create it with kubectl create secret docker-registry {name} ... "
                              "or fix --registry-secret")
        if refusal.status == 403:
            return ClusterError(f"not allowed to read secret {where}",
                                "ask for get on secrets, or drop --registry-secret")
        return ClusterError(f"reading secret {where} failed: {refusal.status}", None)

    obj = call(kube, f"reading secret {where}", kube.core().read_namespaced_secret, name, kube.namespace,
               absent=(403, 404) if explicit is None else (), refused=refused, chain=False)
    if obj is None:
        return SecretCredentials(CredentialStore(), None)
    return SecretCredentials(_parse(kube, name, obj), where)
