from __future__ import annotations

import json

from kubectl_build.context.sources import LocalSources
from kubectl_build.options.build import BuildFlags, build_options
from kubectl_build.planning.solve import prepare_solve


def _plan(tmp_path, **flags):  # type: ignore[no-untyped-def]
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    options = build_options(BuildFlags(context=str(tmp_path), **flags), {})
    local = LocalSources(str(tmp_path), str(tmp_path), "Dockerfile")
    return prepare_solve(options, local, {"SOURCE_DATE_EPOCH": "123"})


def test_tags_without_outputs_store_the_image(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(tmp_path, tag=("example.com/a:1", "example.com/a:2"))
    assert [(e.type, dict(e.attrs)) for e in plan.spec.exporters] == [
        ("image", {"name": "example.com/a:1,example.com/a:2", "oci-mediatypes": "true"})]
    assert plan.image_names == ("example.com/a:1", "example.com/a:2")
    assert plan.spec.frontend_attrs["build-arg:SOURCE_DATE_EPOCH"] == "123"


def test_no_tags_no_outputs_builds_only(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert _plan(tmp_path).spec.exporters == []


def test_file_outputs_get_targets_and_no_dest_attr(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(tmp_path, output=(f"type=oci,dest={tmp_path}/o.tar", f"type=local,dest={tmp_path}/d",
                                   "type=docker,dest=-"))
    assert plan.file_targets == {0: ("file", f"{tmp_path}/o.tar"), 1: ("dir", f"{tmp_path}/d"),
                                 2: ("file", "-")}
    assert all("dest" not in e.attrs for e in plan.spec.exporters)
    assert dict(plan.spec.exporters[2].attrs)["oci-mediatypes"] == "false"


def test_push_and_cache_and_network(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(tmp_path, tag=("r.example.com/a:1",), push=True, network="host",
                 cache_from=("r.example.com/a:cache",),
                 cache_to=("type=registry,ref=r.example.com/a:cache,mode=max",))
    exporter = plan.spec.exporters[0]
    assert exporter.type == "image" and exporter.attrs["push"] == "true"
    assert "network.host" in plan.spec.entitlements
    assert plan.spec.frontend_attrs["force-network-mode"] == "host"
    imports = json.loads(plan.spec.frontend_attrs["cache-imports"])
    assert imports == [{"Type": "registry", "Attrs": {"ref": "r.example.com/a:cache"}}]
    assert [c.type for c in plan.spec.cache_exports] == ["registry"]


def test_cacheonly_sends_no_exporter(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(tmp_path, tag=("example.com/a:1",), output=("type=cacheonly",))
    assert plan.spec.exporters == [] and plan.file_targets == {}


def test_layout_directories_become_session_stores(tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = _plan(tmp_path, tag=("example.com/a:1",), output=("type=oci,tar=false,dest=layout",),
                 cache_from=("type=local,src=shared", "type=local,src=old"),
                 cache_to=("type=local,dest=shared,mode=max,tag=v2",))
    assert plan.file_targets == {}  # the daemon writes the layout through the content store
    assert dict(plan.spec.exporters[0].attrs) == {"tar": "false", "name": "example.com/a:1",
                                                  "oci-mediatypes": "true"}
    assert [(u.store_id, u.root, u.records, u.tag) for u in plan.layouts] == [
        ("local:shared", "shared", "cache", "v2"),  # imported and exported: one store, recorded
        ("local:old", "old", "", "latest"),
        ("export", "layout", "image", "latest"),
    ]
    exported = [dict(c.attrs) for c in plan.spec.cache_exports]
    assert exported == [{"dest": "shared", "mode": "max", "tag": "v2"}]


def test_run_resources_and_named_contexts_are_frontend_attrs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "src").mkdir()
    plan = _plan(tmp_path, shm_size="1g", ulimit=("nofile=1024",),
                 build_context=(f"src={tmp_path / 'src'}", "alpine=docker-image://alpine:3.20"))
    attrs = plan.spec.frontend_attrs
    assert (attrs["shm-size"], attrs["ulimit"]) == (str(1 << 30), "nofile=1024:1024")
    assert (attrs["context:src"], attrs["context:alpine"]) == ("local:src", "docker-image://alpine:3.20")
    assert attrs["frontend.caps"] == "moby.buildkit.frontend.contexts+forward"
    assert plan.named_dirs == {"src": str(tmp_path / "src")}
    assert "shm-size" not in _plan(tmp_path).spec.frontend_attrs


def test_named_local_contexts_get_a_shared_key_per_client_and_machine(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "src").mkdir()
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    contexts = (f"src={tmp_path / 'src'}", "img=docker-image://alpine")
    options = build_options(BuildFlags(context=str(tmp_path), build_context=contexts), {})
    local = LocalSources(str(tmp_path), str(tmp_path), "Dockerfile")

    def keys(client: str) -> dict[str, str]:
        attrs = prepare_solve(options, local, {}, client).spec.frontend_attrs
        return {k: v for k, v in attrs.items() if k.startswith("sharedkey:")}

    mine = keys("client-a")
    assert list(mine) == ["sharedkey:localdir:src"]  # a docker-image context uploads nothing
    assert mine["sharedkey:localdir:src"].startswith("src:")  # buildx's base name, then who sends it
    assert keys("client-a") == mine
    assert keys("client-b") != mine


def test_default_provenance_where_buildx_adds_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def provenance(**flags):  # type: ignore[no-untyped-def]
        return _plan(tmp_path, **flags).spec.frontend_attrs.get("attest:provenance")

    assert provenance(tag=("r.example.com/a:1",), push=True) == "mode=min,inline-only=true"
    assert provenance(output=(f"type=oci,dest={tmp_path}/o.tar",)) == "mode=min,inline-only=true"
    assert provenance(tag=("r.example.com/a:1",)) is None  # loaded into the cluster's image store
    assert provenance(output=(f"type=docker,dest={tmp_path}/d.tar",)) is None  # Docker media types
    assert provenance(tag=("r.example.com/a:1",), push=True, provenance="mode=max") == \
        "type=provenance,mode=max"
    assert provenance(tag=("r.example.com/a:1",), push=True, provenance="false") is None
