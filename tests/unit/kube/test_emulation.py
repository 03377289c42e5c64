"""Emulator installation without a cluster: what is missing, the pod, the installer's log."""

from __future__ import annotations

import shlex

import pytest

from kubectl_build.errors import BuilderError, ExitCode
from kubectl_build.kube import builder_manifest
from kubectl_build.kube.binfmt import (
    DEFAULT_IMAGE,
    LABEL_FOR,
    LABEL_RUN,
    InstallReport,
    failure_line,
    install_arches,
    install_args,
    install_problems,
    installer_pod,
    missing_emulators,
    parse_install_log,
    refused,
)
from kubectl_build.platforms.platform import Platform, parse_platform


def plats(*names: str) -> tuple[Platform, ...]:
    return tuple(parse_platform(n) for n in names)


AMD64_WORKER = plats(
    "linux/amd64", "linux/amd64/v2", "linux/386", "linux/arm64", "linux/arm/v7", "linux/arm/v6"
)


def test_missing_emulators_by_architecture() -> None:
    wanted = plats(
        "linux/riscv64", "linux/arm64", "linux/arm/v5", "linux/riscv64", "linux/s390x", "linux/amd64"
    )
    assert missing_emulators(AMD64_WORKER, wanted) == plats("linux/riscv64", "linux/s390x")
    assert missing_emulators(AMD64_WORKER, ()) == ()
    assert missing_emulators((), plats("linux/arm64")) == plats("linux/arm64")


def test_install_arches_sorted_unique_never_the_nodes_own() -> None:
    wanted = plats("linux/riscv64", "linux/arm/v7", "linux/arm/v6", "linux/arm64", "linux/amd64")
    assert install_arches(wanted) == ("amd64", "arm", "arm64", "riscv64")
    assert install_arches(wanted, Platform("linux", "amd64")) == ("arm", "arm64", "riscv64")
    assert install_arches(wanted, Platform("linux", "arm64")) == ("amd64", "arm", "riscv64")
    assert install_arches(plats("linux/mips64le", "linux/loong64", "linux/386")) == (
        "386",
        "loong64",
        "mips64le",
    )


@pytest.mark.parametrize("platform", [Platform("windows", "amd64"), Platform("linux", "sparc64")])
def test_no_emulator_for_it(platform: Platform) -> None:
    with pytest.raises(BuilderError, match=f"no emulator exists for {platform}") as err:
        install_arches([platform])
    assert err.value.exit_code == ExitCode.BUILDER


def test_install_args_as_tonistiigi_binfmt_takes_them() -> None:
    assert install_args(("arm64", "riscv64")) == ["--install", "arm64,riscv64"]


def test_installer_pod_is_pinned_privileged_and_carries_nothing_else() -> None:
    pod = installer_pod("buildkit", "ns", "node-a", DEFAULT_IMAGE, ("arm64", "riscv64"), 120.5, "abc123")
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["generateName"] == "buildkit-binfmt-" and "name" not in meta
    assert meta["namespace"] == "ns"
    assert meta["labels"][LABEL_FOR] == "buildkit" and meta["labels"][LABEL_RUN] == "abc123"
    # Never counted as one of the builder's pods.
    assert builder_manifest.LABEL_BUILDER not in meta["labels"]
    assert spec["nodeName"] == "node-a" and "nodeSelector" not in spec
    assert spec["restartPolicy"] == "Never"
    assert spec["tolerations"] == [{"operator": "Exists"}]
    assert spec["automountServiceAccountToken"] is False
    assert spec["activeDeadlineSeconds"] == 151
    assert "hostPID" not in spec and "volumes" not in spec and "imagePullSecrets" not in spec
    [box] = spec["containers"]
    assert box["image"] == DEFAULT_IMAGE and box["args"] == ["--install", "arm64,riscv64"]
    assert box["securityContext"] == {"privileged": True}
    assert "env" not in box and "envFrom" not in box and "volumeMounts" not in box


REAL_LOG = """\
installing: arm64 OK
installing: riscv64 qemu-riscv64 already registered
installing: s390x cannot register "/usr/bin/qemu-s390x" to /proc/sys/fs/binfmt_misc/register: \
write /proc/sys/fs/binfmt_misc/register: invalid argument
{
  "supported": [
    "linux/amd64",
    "linux/amd64/v2",
    "linux/386",
    "linux/arm64",
    "linux/riscv64"
  ],
  "emulators": [
    "qemu-aarch64",
    "qemu-riscv64"
  ]
}
"""


def test_parse_install_log() -> None:
    report = parse_install_log(REAL_LOG)
    assert report.installed == ("arm64", "riscv64")
    assert report.failed == (
        (
            "s390x",
            'cannot register "/usr/bin/qemu-s390x" to /proc/sys/fs/binfmt_misc/register: '
            "write /proc/sys/fs/binfmt_misc/register: invalid argument",
        ),
    )
    assert report.errors == ()
    assert report.supported == plats(
        "linux/amd64", "linux/amd64/v2", "linux/386", "linux/arm64", "linux/riscv64"
    )
    assert report.emulators == ("qemu-aarch64", "qemu-riscv64")
    assert install_problems(report, ("arm64", "riscv64")) == []
    assert install_problems(report, ("arm64", "riscv64", "s390x")) == ["s390x: " + report.failed[0][1]]


def test_parse_old_style_timestamps_and_mount_errors() -> None:
    log = (
        "2021/03/01 10:00:00 error: cannot mount binfmt_misc filesystem at /proc/sys/fs/binfmt_misc: "
        "operation not permitted\n"
    )
    report = parse_install_log(log)
    assert report == InstallReport(
        (),
        (),
        ("cannot mount binfmt_misc filesystem at /proc/sys/fs/binfmt_misc: operation not permitted",),
        None,
    )
    assert install_problems(report, ("arm64",)) == [f"binfmt_misc: {report.errors[0]}"]


def test_an_architecture_the_installer_never_mentions_is_a_problem() -> None:
    report = parse_install_log(
        'installing: arm64 OK\n{"supported": ["linux/amd64", "linux/arm64"], "emulators": ["qemu-aarch64"]}\n'
    )
    assert install_problems(report, ("arm64", "ppc64le")) == ["ppc64le: the installer did not report it"]


def test_registered_but_not_runnable_says_so() -> None:
    # A handler the node registered without F points at an interpreter containers lack.
    report = parse_install_log(
        "installing: arm64 qemu-aarch64 already registered\n"
        '{"supported": ["linux/amd64"], "emulators": ["qemu-aarch64"]}'
    )
    [problem] = install_problems(report, ("arm64",))
    assert problem.startswith("arm64: qemu-aarch64 is registered but cannot run arm64 programs")


def test_status_json_is_found_among_other_lines_and_unknown_platforms_dropped() -> None:
    log = (
        'installing: mips64le OK\nnoise {not json\n{"emulators": [], "supported": ["linux/mips64le", '
        '"linux/martian", "bogus"]}\ntrailing\n'
    )
    report = parse_install_log(log)
    assert report.supported == plats("linux/mips64le")
    assert parse_install_log("installing: arm64 OK\n").supported is None


def test_refusal_by_pod_security_names_the_level_and_both_ways_out() -> None:
    reason = (
        'pods "buildkit-binfmt-x" is forbidden: violates PodSecurity "baseline:latest": privileged '
        '(container "binfmt" must not set securityContext.privileged=true)'
    )
    err = refused("team-a", "node-a", ("arm64", "riscv64"), DEFAULT_IMAGE, reason)
    assert err.exit_code == ExitCode.BUILDER
    assert "Pod Security level of namespace team-a forbids" in err.message and "baseline" in err.message
    assert err.hint is not None
    assert "--mode cross" in err.hint and "--mode native" in err.hint
    command = err.hint.split("`")[1]
    args = shlex.split(command)
    assert args[:2] == ["kubectl", "run"] and "--privileged" in args
    assert f"--image={DEFAULT_IMAGE}" in args and args[-2:] == ["--install", "arm64,riscv64"]
    assert '--overrides={"spec":{"nodeName":"node-a"}}' in args


def test_refusal_by_rbac() -> None:
    err = refused(
        "team-a",
        "node-a",
        ("arm64",),
        "mirror.example/binfmt:1",
        'pods is forbidden: User "bob" cannot create resource "pods" in API group "" in the namespace '
        '"team-a"',
    )
    assert err.message.startswith(
        "cannot create the privileged pod that installs emulators (arm64) in namespace team-a"
    )
    assert "mirror.example/binfmt:1" in (err.hint or "")


def test_failure_line_picks_the_telling_line_before_a_usage_text() -> None:
    log = (
        "Incorrect Usage: flag provided but not defined: -install\n\nbuildkitd: flag provided but not "
        "defined: -install\nNAME:\n   buildkitd - build daemon\n   --version, -v  print the version\n"
    )
    assert failure_line(log) == "Incorrect Usage: flag provided but not defined: -install"
    assert failure_line("starting\nsegfault at 0x0\n") == "segfault at 0x0"
    assert failure_line("") == ""


def test_failure_line_prefers_the_error_to_a_usage_heading_logged_before_it() -> None:
    # The runtime interleaves stdout (the help) and stderr (the error) in either order.
    log = "NAME:\n   buildkitd - build daemon\n\nUSAGE:\n   buildkitd [options]\n" \
          "Incorrect Usage: flag provided but not defined: -install\n"
    assert failure_line(log) == "Incorrect Usage: flag provided but not defined: -install"
    assert failure_line("USAGE:\n   tool [flags]\n") == "USAGE:"
