from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_build.agent.warm_exec import EarlySecret
from kubectl_build.buildkit.session.auth import CredentialStore
from kubectl_build.errors import BuilderError, UsageError
from kubectl_build.kube import warm
from kubectl_build.kube.nodes import Node
from kubectl_build.options.build import BuildFlags, build_options
from kubectl_build.platforms.platform import Platform
from kubectl_build.run.cluster import (
    ClusterTarget,
    canonical_name,
    load_outputs,
    nodes_from_summary,
    pick_pod,
    summarise_nodes,
)
from kubectl_build.run.credentials import secret_from_kubectl


@pytest.mark.parametrize(("name", "canonical"), [
    ("app:dev", "docker.io/library/app:dev"),
    ("app", "docker.io/library/app:latest"),
    ("user/app:1", "docker.io/user/app:1"),
    ("reg.example.com:5000/ns/app:1.2", "reg.example.com:5000/ns/app:1.2"),
    ("localhost/app", "localhost/app:latest"),
    ("reg.example.com/app@sha256:" + "a" * 64, "reg.example.com/app@sha256:" + "a" * 64),
])
def test_canonical_name(name: str, canonical: str) -> None:
    assert canonical_name(name) == canonical


def test_pick_pod_is_sticky_and_spreads() -> None:
    pods = [f"buildkit-{i}" for i in range(4)]
    assert pick_pod(pods, "/src/a") == pick_pod(list(reversed(pods)), "/src/a")
    chosen = {pick_pod(pods, f"/src/{i}") for i in range(40)}
    assert len(chosen) > 1
    # removing another pod does not move a context whose pod survives
    keep = pick_pod(pods, "/src/a")
    assert pick_pod([p for p in pods if p == keep or p != pods[0]], "/src/a") == keep


def _options(tmp_path: Path, **flags: object):  # type: ignore[no-untyped-def]
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return build_options(BuildFlags(context=str(tmp_path), **flags), {})  # type: ignore[arg-type]


def test_load_outputs_containerd(tmp_path: Path) -> None:
    outputs = load_outputs(_options(tmp_path, tag=("app:dev", "docker.io/library/app:dev")),
                           "containerd", "buildkit")
    assert [(o.type, dict(o.attrs)) for o in outputs] == [
        ("image", {"name": "docker.io/library/app:dev", "unpack": "true", "store": "true"})]


def test_load_outputs_runc_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(BuilderError) as info:
        load_outputs(_options(tmp_path, tag=("app:dev",)), "runc", "buildkit")
    assert "--push" in (info.value.hint or "")


def test_explicit_outputs_untouched(tmp_path: Path) -> None:
    options = _options(tmp_path, tag=("r.example.com/app:1",), push=True)
    assert load_outputs(options, "runc", "b") == options.outputs


def test_warm_cache_roundtrip_and_invalidation(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    config = tmp_path / "kubeconfig"
    config.write_text("a")
    key = warm.cache_key(str(config), None, "ns", "buildkit")
    assert warm.load(key) is None
    entry = warm.WarmEntry("ns", "pod-1", "buildkitd", "containerd", ("--context", "x"), True)
    warm.save(key, entry)
    assert warm.load(key) == entry
    config.write_text("changed context")
    os.utime(config, ns=(1, 2))
    assert warm.cache_key(str(config), None, "ns", "buildkit") != key
    assert warm.cache_key(str(config), None, "other", "buildkit") != key
    warm.forget(key)
    assert warm.load(key) is None


NODES = (Node("node-a", Platform("linux", "amd64")), Node("node-b", Platform("linux", "arm", "v7"),
                                                         ready=False),
         Node("node-c", None, schedulable=False))


def test_node_summary_roundtrip() -> None:
    assert nodes_from_summary(summarise_nodes(NODES)) == NODES


def test_warm_entry_keeps_the_nodes_for_a_while(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    key = warm.cache_key(None, "ctx", "ns", "buildkit")
    entry = warm.WarmEntry("ns", "pod-1", "buildkitd", "runc", (), True)
    assert entry.recent_nodes() is None
    listed = entry.with_nodes(summarise_nodes(NODES), "node-a", now=1000.0)
    assert listed.node == "node-a"
    warm.save(key, listed)
    loaded = warm.load(key)
    assert loaded == listed
    assert loaded.recent_nodes(now=1000.0 + warm.NODES_TTL) == listed.nodes
    assert loaded.recent_nodes(now=1001.0 + warm.NODES_TTL) is None  # too old: list again
    assert loaded.recent_nodes(now=999.0) is None  # the clock went back: not trusted
    # The pod's node is the pod's for life: a later listing keeps it.
    assert listed.with_nodes((), "node-z").node == "node-a"


def test_a_damaged_warm_entry_is_no_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    key = warm.cache_key(None, "ctx", "ns", "buildkit")
    warm.save(key, warm.WarmEntry("ns", "pod-1", "buildkitd", "runc", ()))
    path = tmp_path / "cache" / "kubectl-build" / "builders" / f"{key}.json"
    assert path.exists()
    doc = json.loads(path.read_text())
    for nodes in ([["n", "linux", "amd64", "", "yes", True]], [["n", "linux"]], "x"):
        path.write_text(json.dumps({**doc, "nodes": nodes, "nodes_at": 5.0}))
        assert warm.load(key) is None
    path.write_text(json.dumps({**doc, "nodes_at": "soon"}))
    assert warm.load(key) is None


def _target(key: str, pod: str = "pod-1", node: str = "node-a") -> ClusterTarget:
    return ClusterTarget([], CredentialStore(), "runc", "buildkit", "ns", pod=pod, node=node,
                         warm_key=key)


def test_target_remembers_nodes_only_for_its_own_pod(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    key = warm.cache_key(None, "ctx", "ns", "buildkit")
    assert _target(key).remembered_nodes() is None  # no entry
    warm.save(key, warm.WarmEntry("ns", "pod-1", "buildkitd", "runc", (), node="node-a"))
    assert _target(key).remembered_nodes() is None  # never listed
    _target(key).remember_nodes(NODES, "node-a")
    assert _target(key).remembered_nodes() == NODES
    assert _target(key, pod="pod-2").remembered_nodes() is None  # another pod's entry
    assert _target(key, node="").remembered_nodes() is None  # its node unknown: list
    _target(key, pod="pod-2").remember_nodes(NODES[:1], "node-b")  # not its entry: unchanged
    assert _target(key).remembered_nodes() == NODES
    assert _target("").remembered_nodes() is None  # loading into several nodes: no entry


def _kubectl_said(code: int, stdout: str, stderr: str = "") -> EarlySecret:
    """An early `kubectl get secret` that printed this (a Python child stands in for it)."""
    script = (f"import sys; sys.stdout.write({stdout!r}); sys.stderr.write({stderr!r}); "
              f"sys.exit({code})")
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    return EarlySecret(("ns", "buildkit", ()), process)


def test_secret_read_by_the_early_kubectl() -> None:
    config = json.dumps({"auths": {"reg.example.com": {"auth": base64.b64encode(
        b"user:pw").decode()}}}).encode()
    doc = {"type": "kubernetes.io/dockerconfigjson",
           "data": {".dockerconfigjson": base64.b64encode(config).decode()}}
    found = secret_from_kubectl(_kubectl_said(0, json.dumps(doc)))
    assert found is not None
    store, secret = found
    assert secret == "ns/buildkit"
    credential = store.lookup("reg.example.com")
    assert credential is not None and credential.username == "user"


@pytest.mark.parametrize("stderr", [
    'Error from server (NotFound): secrets "buildkit" not found',
    'Error from server (Forbidden): secrets "buildkit" is forbidden: User "dev" cannot get',
])
def test_an_absent_or_forbidden_secret_is_anonymous(stderr: str) -> None:
    found = secret_from_kubectl(_kubectl_said(1, "", stderr))
    assert found is not None and found[1] is None and found[0].lookup("docker.io") is None


@pytest.mark.parametrize(("code", "stdout", "stderr"), [
    (1, "", "Unable to connect to the server: dial tcp: connection refused"),
    (0, "not json", ""),
    (0, "[1, 2]", ""),
])
def test_no_clear_answer_from_kubectl_leaves_it_to_the_api(code: int, stdout: str,
                                                          stderr: str) -> None:
    assert secret_from_kubectl(_kubectl_said(code, stdout, stderr)) is None


def test_a_malformed_secret_is_the_same_error_as_through_the_api() -> None:
    doc = {"type": "Opaque", "data": {}}
    with pytest.raises(UsageError, match="not a docker-registry secret"):
        secret_from_kubectl(_kubectl_said(0, json.dumps(doc)))


def test_the_warm_path_modules_leave_heavy_imports_for_later() -> None:
    # Everything a warm build imports before Solve: no kubernetes client, and no registry
    # client (urllib, http.client, ssl), which only the merge of several builders needs.
    code = ("import sys, kubectl_build.cli.commands, kubectl_build.run.build, kubectl_build.run.cluster, "
            "kubectl_build.run.planning, kubectl_build.planning.decide, kubectl_build.kube.transport, "
            "kubectl_build.agent.warm_exec, kubectl_build.cli.invocation;"
            "print(' '.join(sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    loaded = set(done.stdout.split())
    assert not {"kubernetes", "kubectl_build.registry.client", "urllib.request"} & loaded
