"""API calls for the builder modules: absent objects as None, 403 on create as BuilderError.

`Kube.call` translates every other failure once; these wrappers only decide which
answers are not failures here (404 on a lookup, 409 on a racing create).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubectl_build.errors import BuilderError
from kubectl_build.kube.config import Kube


def as_json(kube: Kube, obj: Any) -> Any:
    """The JSON form of a client model object (camelCase keys, as kubectl prints it)."""
    return kube.api_client.sanitize_for_serialization(obj)


def call(kube: Kube, what: str, fn: Callable[..., Any], *args: Any,
         absent: tuple[int, ...] = (404,), **kwargs: Any) -> Any:
    """Call the API through Kube.call; None when the answer's status is in `absent` (404 = not there)."""
    def run(*a: Any, **kw: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*a, **kw)
        except ApiException as err:
            if err.status in absent:
                return None
            if err.status == 403 and what.startswith("create"):
                raise forbidden(kube, what, err) from err
            raise
    return kube.call(what, run, *args, **kwargs)


def forbidden(kube: Kube, what: str, err: Any) -> BuilderError:
    """A clear error for an RBAC refusal to create part of a builder."""
    import json

    try:
        reason = json.loads(err.body or "{}").get("message") or err.reason
    except ValueError:
        reason = err.reason
    return BuilderError(
        f"cannot {what} in namespace {kube.namespace}: forbidden ({reason})",
        f"ask someone allowed to create Deployments and ConfigMaps to run `kubectl buildkit create "
        f"-n {kube.namespace}` once; using an existing builder needs only get/list and pods/exec")
