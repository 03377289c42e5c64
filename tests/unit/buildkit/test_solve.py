from __future__ import annotations

from kubectl_build.buildkit.solve import (
    CacheEntry,
    ExporterSpec,
    FrontendInputs,
    SolveSpec,
    daemon_release,
    drops_exporters,
    frontend_attrs,
    solve_request,
)


def test_minimal_attrs() -> None:
    assert frontend_attrs(FrontendInputs()) == {"filename": "Dockerfile"}


def test_full_attrs() -> None:
    attrs = frontend_attrs(FrontendInputs(
        dockerfile_name="Dockerfile.cross", target="release", platforms=("linux/amd64", "linux/arm64"),
        build_args={"A": "1"}, labels={"org.x": "y"}, pull=True, add_hosts=(("h", "1.2.3.4"),),
        network="host", cache_imports=(CacheEntry("registry", {"ref": "r/c:1"}),),
    ))
    assert attrs["platform"] == "linux/amd64,linux/arm64"
    assert "multi-platform" not in attrs  # several platforms make an index anyway, as buildx sends
    assert attrs["build-arg:A"] == "1" and attrs["label:org.x"] == "y"
    assert attrs["image-resolve-mode"] == "pull"
    assert attrs["add-hosts"] == "h=1.2.3.4"
    assert attrs["force-network-mode"] == "host"
    assert attrs["cache-imports"] == '[{"Type":"registry","Attrs":{"ref":"r/c:1"}}]'  # Go's spelling


def test_one_platform_index_is_asked_for() -> None:
    attrs = frontend_attrs(FrontendInputs(platforms=("linux/arm64",), multi_platform=True))
    assert attrs["multi-platform"] == "true"
    # buildx reads the build argument the frontend reads and asks for the index itself
    def asked(value: str) -> dict[str, str]:
        return frontend_attrs(FrontendInputs(build_args={"BUILDKIT_MULTI_PLATFORM": value}))

    assert asked("1")["multi-platform"] == "true"
    assert "multi-platform" not in asked("0")


def test_no_cache_is_present_and_empty() -> None:
    assert frontend_attrs(FrontendInputs(no_cache=True))["no-cache"] == ""
    assert frontend_attrs(FrontendInputs(no_cache_filter=("a", "b")))["no-cache"] == "a,b"
    assert "no-cache" not in frontend_attrs(FrontendInputs())


def test_request_sends_new_and_deprecated_exporter_fields() -> None:
    spec = SolveSpec("Dockerfile", {"filename": "Dockerfile"},
                     exporters=[ExporterSpec("image", {"name": "x", "push": "true"}),
                                ExporterSpec("oci", {})],
                     cache_imports=[CacheEntry("registry", {"ref": "c"})],
                     cache_exports=[CacheEntry("inline")],
                     entitlements=["network.host"])
    req = solve_request(spec, "ref1", "sess1")
    assert req.ref == "ref1" and req.session == "sess1" and req.frontend == "dockerfile.v0"
    assert [e.type for e in req.exporters] == ["image", "oci"]
    assert req.exporter_deprecated == "image"
    assert dict(req.exporter_attrs_deprecated) == {"name": "x", "push": "true"}
    assert [e.type for e in req.cache.imports] == ["registry"]
    assert [e.type for e in req.cache.exports] == ["inline"]
    assert list(req.entitlements) == ["network.host"]
    assert req.definition == b""


def test_request_without_exporters() -> None:
    req = solve_request(SolveSpec("Dockerfile", {}), "r", "s")
    assert req.exporter_deprecated == "" and not req.exporters


def test_daemon_release() -> None:
    assert daemon_release("v0.12.5") == (0, 12)
    assert daemon_release("v0.34.2") == (0, 34)
    assert daemon_release("0.13.0-rc1") == (0, 13)
    assert daemon_release("0.0.0+unknown") is None  # built from source: unknown, not old
    assert daemon_release("") is None


def test_only_old_daemons_drop_exporters() -> None:
    two = SolveSpec("Dockerfile", {}, exporters=(ExporterSpec("oci", {}, "o.tar"),
                                                  ExporterSpec("local", {}, "out")))
    one = SolveSpec("Dockerfile", {}, exporters=two.exporters[:1])
    assert drops_exporters(two, "v0.12.5")
    assert not drops_exporters(two, "v0.13.0")
    assert not drops_exporters(two, "0.0.0+unknown")
    assert not drops_exporters(one, "v0.12.5")
