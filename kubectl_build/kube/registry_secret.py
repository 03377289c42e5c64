"""Registry credentials from a Kubernetes docker-registry Secret.

The client reads the Secret with the user's own RBAC and serves what it holds
through the BuildKit session; nothing of it reaches the pod spec, a ConfigMap,
a log line or an error message.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from kubectl_build.buildkit.session.auth import CredentialStore
from kubectl_build.errors import ClusterError, UsageError
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
    from kubernetes.client.exceptions import ApiException

    name = explicit or builder
    try:
        obj = kube.core().read_namespaced_secret(
            name, kube.namespace, _request_timeout=kube.options.request_timeout)
    except ApiException as err:
        if explicit is None and err.status in (403, 404):
            return SecretCredentials(CredentialStore(), None)
        if err.status == 404:
            raise UsageError(f"registry secret {kube.namespace}/{name} not found",
                             "create it with kubectl create secret docker-registry "
                             f"{name} ... or fix --registry-secret") from None
        if err.status == 403:
            raise ClusterError(f"not allowed to read secret {kube.namespace}/{name}",
                               "ask for get on secrets, or drop --registry-secret") from None
        raise ClusterError(f"reading secret {kube.namespace}/{name} failed: {err.status}",
                           None) from None
    except Exception as err:  # noqa: BLE001 - connection problems, translated once
        from kubectl_build.kube.config import translate

        raise translate(err, f"reading secret {kube.namespace}/{name}", kube) from None
    return SecretCredentials(_parse(kube, name, obj), f"{kube.namespace}/{name}")
