"""Each builder's share of a split build (kubectl_build.planning.groups)."""

from __future__ import annotations

from pathlib import Path

from kubectl_build.options.build import parse_platforms
from kubectl_build.planning.groups import BuilderGroup, group_label, group_options, pushes
from kubectl_build.run.cluster import load_outputs
from tests.unit.planning.samples import ARM64, options_for


def _group(builder: str, platforms: str) -> BuilderGroup:
    return BuilderGroup(builder, False, parse_platforms([platforms], {}), ("node-a",), {}, (), False)


def test_group_options_push_by_digest_without_tags(tmp_path: Path) -> None:
    options = options_for(tmp_path, tag=("r.example.com/team/app:1", "r.example.com/team/app:latest",
                                      "other.example.com/app:1"), push=True,
                       platform=("linux/amd64,linux/arm64",), iidfile="iid", metadata_file="m.json")
    assert pushes(options)
    group = _group("buildkit-arm64", "linux/arm64")
    derived = group_options(options, group, by_digest=True)
    assert derived.platforms == (ARM64,)
    assert (derived.iidfile, derived.metadata_file) == (None, None)
    [out] = derived.outputs
    assert dict(out.attrs) == {"name": "r.example.com/team/app,other.example.com/app",
                               "push": "true", "push-by-digest": "true"}
    # one builder: the outputs are kept as they are
    same = group_options(options, group, by_digest=False)
    assert same.outputs == options.outputs


def test_group_options_take_the_builders_own_load_outputs(tmp_path: Path) -> None:
    options = options_for(tmp_path, tag=("app:dev",), platform=("linux/amd64,linux/arm64",))
    assert not pushes(options)
    outputs = load_outputs(options, "containerd", "buildkit-arm64")
    derived = group_options(options, _group("buildkit-arm64", "linux/arm64"), by_digest=False,
                            outputs=outputs)
    assert derived.outputs == outputs and derived.platforms == (ARM64,)


def test_group_label_adds_the_platform_only_for_single_platform_solves() -> None:
    assert group_label(_group("buildkit-arm64", "linux/arm64")) == "buildkit-arm64 linux/arm64"
    assert group_label(_group("buildkit", "linux/amd64,linux/arm/v7")) == "buildkit"
