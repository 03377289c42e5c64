from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubectl_build.cluster import canonical_name, load_outputs, pick_pod
from kubectl_build.errors import BuilderError
from kubectl_build.kube import warm
from kubectl_build.options import BuildFlags, build_options


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
