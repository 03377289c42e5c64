"""Every Kubernetes API call of the package goes through `call`, which translates failures once.

A caller says what it was doing (``get secret ns/name``) and which answers are not failures
there (`absent`: 404 on a lookup, 409 on a racing create, 403 where less detail will do);
it may phrase a refusal it knows more about (`refused`: the Pod Security level that forbids
the emulator installer, the registry Secret that is missing). Everything else gets the
one mapping here: the cluster rejected our credentials (401), RBAC refused (403, on a
create: the builder cannot be created), a conflict (409), an invalid object (422), a failing
API server (5xx), or no answer at all (connection refused, TLS, DNS, timeouts).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from kubectl_build.errors import BuilderError, ClusterError, KubectlBuildError
from kubectl_build.kube.config import Kube

_CHECK_CLUSTER = "check the cluster is up and your kubeconfig context (kubectl cluster-info)"


@dataclass(frozen=True)
class ApiRefusal:
    """The API server's answer to a request it did not carry out."""

    what: str
    """What the caller was doing (``create pod (emulator installer)``)."""
    status: int | None
    """HTTP status (403, 404, 409, 422, 500...); None when the client refused before sending."""
    reason: str
    """The server's own message (the Status object's), else the HTTP reason phrase."""


Refused = Callable[[ApiRefusal], KubectlBuildError | None]
"""A caller's phrasing of a refusal it knows more about; None leaves it to `translate`."""


def call(kube: Kube, what: str, fn: Callable[..., Any], *args: Any, absent: Collection[int] = (404,),
         refused: Refused | None = None, chain: bool = True, **kwargs: Any) -> Any:
    """Call the API with the request timeout; None when the answer's status is in `absent`.

    Args:
        kube: Cluster connection (its request timeout applies unless `kwargs` set one).
        what: What the call does, for the error (``get deployment NAME``).
        fn: The client method (``kube.core().read_namespaced_pod``).
        *args: Its positional arguments.
        absent: Statuses that mean "not there" here, answered as None.
        refused: Phrases a refusal the caller knows more about; consulted first.
        chain: False for calls whose failure must not carry the client's exception as its
            cause (a Secret's read: nothing of it reaches an error, not even ``--debug``).
        **kwargs: Its keyword arguments.

    Raises:
        ClusterError, BuilderError: The translated failure (see `translate`), or what
            `refused` made of it.
    """
    from kubernetes.client.exceptions import ApiException

    kwargs.setdefault("_request_timeout", kube.options.request_timeout)
    try:
        return fn(*args, **kwargs)
    except ApiException as err:
        if err.status in absent:
            return None
        refusal = ApiRefusal(what, err.status, _reason(err))
        error = (refused(refusal) if refused is not None else None) or translate(kube, refusal)
        raise error from (err if chain else None)
    except KubectlBuildError:
        raise
    except Exception as err:  # noqa: BLE001 - no answer at all: connection, TLS, DNS, credential plugin
        raise unreachable(kube, what, err) from (err if chain else None)


def translate(kube: Kube, refusal: ApiRefusal) -> KubectlBuildError:
    """The project error for a refusal nobody phrased better."""
    what, status, reason = refusal.what, refusal.status, refusal.reason
    if status == 401:
        return ClusterError(f"{what}: the cluster rejected our credentials ({reason})",
                            "refresh your kubeconfig credentials")
    if status == 403 and what.startswith("create"):
        return forbidden(kube, what, reason)
    if status == 403:
        return ClusterError(f"{what}: forbidden ({reason})",
                            "ask for the RBAC permission, or use an existing builder")
    server_failed = status is not None and status >= 500
    return ClusterError(f"{what}: {status} {reason}",
                        _SERVER_HINT if server_failed else _STATUS_HINTS.get(status or 0))


_STATUS_HINTS = {
    409: "another client changed it meanwhile: run the command again",
    422: "the API server found the object invalid: check the flags it was made from",
}
_SERVER_HINT = f"the API server failed the request: run the command again; if it persists, {_CHECK_CLUSTER}"


def unreachable(kube: Kube | None, what: str, err: Exception) -> ClusterError:
    """A request that got no answer: the cluster is down, unreachable, or its TLS is wrong."""
    where = kube.api_client.configuration.host if kube else "the cluster"
    first = str(err).splitlines()[0] if str(err) else ""
    return ClusterError(f"{what}: cannot reach {where} ({type(err).__name__}: {first})", _CHECK_CLUSTER)


def forbidden(kube: Kube, what: str, reason: str) -> BuilderError:
    """A clear error for an RBAC refusal to create part of a builder."""
    return BuilderError(
        f"cannot {what} in namespace {kube.namespace}: forbidden ({reason})",
        f"ask someone allowed to create Deployments and ConfigMaps to run `kubectl buildkit create "
        f"-n {kube.namespace}` once; using an existing builder needs only get/list and pods/exec")


def as_json(kube: Kube, obj: Any) -> Any:
    """The JSON form of a client model object (camelCase keys, as kubectl prints it)."""
    return kube.api_client.sanitize_for_serialization(obj)


def _reason(err: Any) -> str:
    try:
        body = json.loads(err.body or "{}")
    except (TypeError, ValueError):
        return str(err.reason)
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or err.reason)
