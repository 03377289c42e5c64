"""kube.config against the real kubernetes client: kubeconfig merging, relative paths,
context selection and API calls over HTTP to a local stand-in for the API server.

These pin what kube/config.py takes from the client's semi-internal loader classes
(KubeConfigMerger, KubeConfigLoader), so the floors job (hack/test-floors) checks them
on the oldest supported kubernetes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kubectl_build.errors import ClusterError
from kubectl_build.kube.api import call
from kubectl_build.kube.config import KubeOptions, connect


class _ApiServer(BaseHTTPRequestHandler):
    """Pods in namespace team: a list, one forbidden path, everything else 404."""

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/api/v1/namespaces/team/pods":
            self._answer(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []})
        elif self.path.startswith("/api/v1/namespaces/secret/"):
            self._answer(403, {"kind": "Status", "message": "pods is forbidden: no RBAC", "code": 403})
        else:
            self._answer(404, {"kind": "Status", "message": "pods \"x\" not found", "code": 404})

    def _answer(self, code: int, doc: dict[str, object]) -> None:
        body = json.dumps(doc).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def api_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ApiServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def kubeconfigs(tmp_path: Path, api_server: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Two files in KUBECONFIG: clusters and contexts in one, the user in the other."""
    first, second = tmp_path / "a" / "config", tmp_path / "b" / "config"
    first.parent.mkdir()
    (second.parent / "certs").mkdir(parents=True)
    (second.parent / "certs" / "client.crt").write_text("not parsed until a TLS handshake\n")
    (second.parent / "certs" / "client.key").write_text("not parsed until a TLS handshake\n")
    (second.parent / "ca.crt").write_text("not parsed until a TLS handshake\n")
    first.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "dev",
        "clusters": [{"name": "local", "cluster": {"server": api_server}},
                     {"name": "other", "cluster": {"server": "http://127.0.0.1:9"}}],
        "contexts": [{"name": "dev", "context": {"cluster": "local", "user": "me", "namespace": "team"}},
                     {"name": "bare", "context": {"cluster": "local", "user": "me"}},
                     {"name": "secure", "context": {"cluster": "tls", "user": "me"}}],
    }))
    second.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "tls", "cluster": {"server": "https://127.0.0.1:9",
                                                 "certificate-authority": "ca.crt"}}],
        "users": [{"name": "me", "user": {"client-certificate": "certs/client.crt",
                                          "client-key": "certs/client.key"}}],
    }))
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    return first, second


def test_merged_files_give_current_context_and_its_namespace(kubeconfigs: tuple[Path, Path],
                                                             api_server: str) -> None:
    kube = connect(KubeOptions())
    assert (kube.context, kube.namespace) == ("dev", "team")
    assert kube.api_client.configuration.host == api_server
    assert kube.kubectl_args == ["--context", "dev", "--request-timeout", "30s"]


def test_relative_paths_resolve_against_the_file_that_names_them(kubeconfigs: tuple[Path, Path],
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # As kubectl does: not against the working directory. (The client resolves a user's
    # paths against its cluster's file, so this context takes both from one file.)
    monkeypatch.chdir(tmp_path)
    configuration = connect(KubeOptions(context="secure")).api_client.configuration
    second = kubeconfigs[1].parent.resolve()
    assert Path(configuration.ssl_ca_cert).resolve() == second / "ca.crt"
    assert Path(configuration.cert_file).resolve() == second / "certs" / "client.crt"
    assert Path(configuration.key_file).resolve() == second / "certs" / "client.key"


def test_flags_pick_context_namespace_and_cluster(kubeconfigs: tuple[Path, Path]) -> None:
    kube = connect(KubeOptions(context="bare", cluster="other", namespace="ns1", request_timeout=5))
    assert (kube.context, kube.namespace) == ("bare", "ns1")
    assert kube.api_client.configuration.host == "http://127.0.0.1:9"
    assert kube.kubectl_args == ["--context", "bare", "--cluster", "other", "--request-timeout", "5s"]


def test_a_context_without_namespace_means_default(kubeconfigs: tuple[Path, Path]) -> None:
    assert connect(KubeOptions(context="bare")).namespace == "default"


def test_api_calls_go_through_the_client_and_errors_are_translated(kubeconfigs: tuple[Path, Path]) -> None:
    kube = connect(KubeOptions())
    pods = call(kube, "list pods", kube.core().list_namespaced_pod, "team")
    assert pods.items == []
    assert call(kube, "read pod x", kube.core().read_namespaced_pod, "x", "team") is None
    with pytest.raises(ClusterError, match=r"^read pod x: 404 pods \"x\" not found$"):
        call(kube, "read pod x", kube.core().read_namespaced_pod, "x", "team", absent=())
    with pytest.raises(ClusterError, match=r"^list pods: forbidden \(pods is forbidden: no RBAC\)$") as err:
        call(kube, "list pods", kube.core().list_namespaced_pod, "secret")
    assert err.value.hint is not None and "RBAC" in err.value.hint


def test_an_unknown_context_is_one_error(kubeconfigs: tuple[Path, Path]) -> None:
    with pytest.raises(ClusterError, match="kubeconfig has no context 'nope'"):
        connect(KubeOptions(context="nope"))


def test_an_unreadable_kubeconfig_is_one_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "config"
    broken.write_text("clusters: [unclosed\n")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with pytest.raises(ClusterError, match="cannot read kubeconfig"):
        connect(KubeOptions(kubeconfig=str(broken)))


def test_the_client_takes_what_the_websocket_transport_passes() -> None:
    # kube/transport.py opens the exec stream with binary=True (kubernetes 30.1 and later).
    import inspect

    from kubernetes.stream.ws_client import WSClient

    assert "binary" in inspect.signature(WSClient).parameters
