"""Kubernetes API failures translated once, in kube.api.call, with the callers' own phrasings."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from kubectl_build.console import Console
from kubectl_build.errors import BuilderError, ClusterError, KubectlBuildError, UsageError
from kubectl_build.kube.api import ApiRefusal, call
from kubectl_build.kube.builder import Builder, BuilderPod
from kubectl_build.kube.config import Kube, KubeOptions
from kubectl_build.kube.emulation import ensure_emulators
from kubectl_build.kube.registry_secret import load_credentials
from kubectl_build.platforms.platform import Platform


class _Client:
    configuration = type("C", (), {"host": "https://k"})()


def fake_kube(core: Any = None, timeout: float = 30.0) -> Kube:
    kube = Kube(_Client(), "ci", None, KubeOptions(request_timeout=timeout))
    if core is not None:
        kube.core = lambda: core  # type: ignore[method-assign]
    return kube


def answer(status: int, message: str | None = None) -> Callable[..., Any]:
    def fn(*args: Any, **kwargs: Any) -> Any:
        err = ApiException(status=status, reason="Nope")
        err.body = json.dumps({"message": message}) if message else None
        raise err

    return fn


def test_the_request_timeout_is_passed_unless_the_caller_sets_one() -> None:
    seen: list[Any] = []

    def fn(*args: Any, **kwargs: Any) -> str:
        seen.append(kwargs["_request_timeout"])
        return "ok"

    kube = fake_kube(timeout=7)
    assert call(kube, "get x", fn) == "ok"
    assert call(kube, "get x", fn, _request_timeout=99) == "ok"
    assert seen == [7, 99]


@pytest.mark.parametrize(("status", "message", "hint"), [
    (401, "get pod p: the cluster rejected our credentials (token expired)", "refresh your kubeconfig"),
    (403, "get pod p: forbidden (token expired)", "ask for the RBAC permission"),
    (409, "get pod p: 409 token expired", "another client changed it meanwhile"),
    (422, "get pod p: 422 token expired", "found the object invalid"),
    (503, "get pod p: 503 token expired", "the API server failed the request"),
    (418, "get pod p: 418 token expired", None),
])
def test_statuses_become_cluster_errors(status: int, message: str, hint: str | None) -> None:
    with pytest.raises(ClusterError) as caught:
        call(fake_kube(), "get pod p", answer(status, "token expired"))
    assert caught.value.message == message
    if hint is None:
        assert caught.value.hint is None
    else:
        assert hint in (caught.value.hint or "")
    assert isinstance(caught.value.__cause__, ApiException)


def test_a_server_message_falls_back_to_the_http_reason() -> None:
    with pytest.raises(ClusterError, match=r"^get pod p: 500 Nope$"):
        call(fake_kube(), "get pod p", answer(500))


def test_no_answer_names_the_server_and_what_to_check() -> None:
    def refused_connection(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("[Errno 111] Connection refused\nmore")

    with pytest.raises(ClusterError) as caught:
        call(fake_kube(), "list pods", refused_connection)
    assert caught.value.message == ("list pods: cannot reach https://k (ConnectionRefusedError: "
                                    "[Errno 111] Connection refused)")
    assert "kubectl cluster-info" in (caught.value.hint or "")


def test_project_errors_pass_through_untouched() -> None:
    mine = UsageError("mine")

    def fn(*args: Any, **kwargs: Any) -> Any:
        raise mine

    with pytest.raises(UsageError) as caught:
        call(fake_kube(), "get x", fn)
    assert caught.value is mine


def test_a_caller_phrases_the_refusals_it_knows_and_leaves_the_rest() -> None:
    seen: list[ApiRefusal] = []

    def refused(refusal: ApiRefusal) -> KubectlBuildError | None:
        seen.append(refusal)
        return BuilderError("my words") if refusal.status == 403 else None

    with pytest.raises(BuilderError, match="my words"):
        call(fake_kube(), "create pod x", answer(403, "denied"), absent=(), refused=refused)
    with pytest.raises(ClusterError, match="create pod x: 404 gone"):
        call(fake_kube(), "create pod x", answer(404, "gone"), absent=(), refused=refused)
    assert seen == [ApiRefusal("create pod x", 403, "denied"), ApiRefusal("create pod x", 404, "gone")]


def test_chain_false_keeps_the_client_exception_out_of_the_error() -> None:
    with pytest.raises(ClusterError) as caught:
        call(fake_kube(), "reading secret ci/s", answer(500), chain=False)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# ---------------------------------------------------------------------------- the registry Secret


class _Secrets:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.read_namespaced_secret = fn


@pytest.mark.parametrize("status", [403, 404])
def test_the_default_secret_unreadable_or_absent_is_anonymous(status: int) -> None:
    found = load_credentials(fake_kube(_Secrets(answer(status))), None, "buildkit")
    assert found.secret is None


def test_an_explicit_secret_that_is_missing_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="registry secret ci/regcred not found") as caught:
        load_credentials(fake_kube(_Secrets(answer(404))), "regcred", "buildkit")
    assert "kubectl create secret docker-registry regcred" in (caught.value.hint or "")
    assert caught.value.__cause__ is None


def test_an_explicit_secret_we_may_not_read_is_a_cluster_error() -> None:
    with pytest.raises(ClusterError, match="not allowed to read secret ci/regcred"):
        load_credentials(fake_kube(_Secrets(answer(403))), "regcred", "buildkit")


@pytest.mark.parametrize("explicit", [None, "regcred"])
def test_other_secret_failures_name_the_status(explicit: str | None) -> None:
    with pytest.raises(ClusterError, match=r"^reading secret ci/(buildkit|regcred) failed: 500$"):
        load_credentials(fake_kube(_Secrets(answer(500))), explicit, "buildkit")


def test_no_answer_reading_the_secret_is_the_common_unreachable_error() -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise OSError("down")

    with pytest.raises(ClusterError, match=r"^reading secret ci/buildkit: cannot reach https://k") as caught:
        load_credentials(fake_kube(_Secrets(down)), None, "buildkit")
    assert caught.value.__cause__ is None


# ---------------------------------------------------------------------------- the emulator installer


class _Installer:
    """A cluster where creating the installer pod fails with `create`."""

    def __init__(self, create: Callable[..., Any]) -> None:
        self.create_namespaced_pod = create
        self.read_node = answer(404)
        self.deleted: list[str] = []

    def list_namespaced_pod(self, *args: Any, **kwargs: Any) -> Any:
        return type("PodList", (), {"items": []})()

    def delete_namespaced_pod(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.deleted.append(name)


def _install(create: Callable[..., Any]) -> None:
    pod = BuilderPod("b-0", "node-a", True, "buildkitd", "Running")
    builder = Builder("buildkit", "ci", "runc", "", (pod,))
    console = Console(stdout=io.StringIO(), stderr=io.StringIO())
    ensure_emulators(fake_kube(_Installer(create)), builder, [Platform("linux", "arm64")], "binfmt:1",
                     console, timeout=5)


@pytest.mark.parametrize(("status", "message"), [
    (403, 'pods is forbidden: User "bob" cannot create resource "pods"'),
    (400, 'admission webhook "policy" denied the request: no privileged pods'),
    (422, 'pods "x" is forbidden: violates PodSecurity "baseline:latest": privileged'),
])
def test_a_refused_installer_pod_says_how_to_build_without_it(status: int, message: str) -> None:
    with pytest.raises(BuilderError) as caught:
        _install(answer(status, message))
    assert message in caught.value.message
    assert "--mode cross" in (caught.value.hint or "")
    assert isinstance(caught.value.__cause__, ApiException)


def test_another_installer_pod_failure_is_the_common_translation() -> None:
    with pytest.raises(ClusterError, match=r"^create pod \(emulator installer\): 500 etcd is down$"):
        _install(answer(500, "etcd is down"))
