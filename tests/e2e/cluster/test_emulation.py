"""Installing QEMU emulators on a builder's nodes, on the test-bed cluster (issue 5, qemu).

The test bed serves a stand-in for docker.io/tonistiigi/binfmt:latest (hack/cluster/
build_binfmt_image.py). binfmt_misc is the host's (one kernel): the core test bed has
registered arm, aarch64, ppc64le, s390x and riscv64, so the real registration here is
mips64le (qemu-mips64el), which it does not; the test removes that handler again, leaving
the machine as it found it. They FAIL, never skip, without the test bed.
"""

from __future__ import annotations

import platform
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubectl_build.console import Console
from kubectl_build.errors import BuilderError, ExitCode, WaitTimeoutError
from kubectl_build.kube.builder import Builder, BuilderPod, ensure_arch_builder
from kubectl_build.kube.emulation import DEFAULT_IMAGE, LABEL_FOR, ensure_emulators
from kubectl_build.kube.waiting import poll
from kubectl_build.planning.planner import builder_name
from kubectl_build.platforms.matching import node_selector
from kubectl_build.platforms.platform import Platform
from tests.e2e.cluster.support import (
    BINFMT,
    kube_for,
    namespace,
    pods,
    sa_kubeconfig,
    worker_platforms,
)
from tests.e2e.helpers import REPO

pytestmark = pytest.mark.cluster

HOST = Platform("linux", {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine()))
MIPS = Platform("linux", "mips64le")
HANDLER = BINFMT / "qemu-mips64el"


@pytest.fixture(scope="module")
def env(cluster_env: dict[str, str]) -> dict[str, str]:
    found = cluster_env
    if not (BINFMT / "status").exists():
        pytest.fail(f"binfmt_misc is not mounted at {BINFMT}: run hack/testbed up core")
    return found


@pytest.fixture
def mips_handler() -> Iterator[Path]:
    """qemu-mips64el must not be registered before (else nothing would be installed) and
    is unregistered afterwards, whatever happened."""
    assert not HANDLER.exists(), f"{HANDLER} is registered already: unregister it (echo -1 > {HANDLER})"
    try:
        yield HANDLER
    finally:
        if HANDLER.exists():
            HANDLER.write_text("-1")


def fake_builder(ns: str, node: str) -> Builder:
    """A builder as ensure_emulators sees it: only the nodes of its pods matter."""
    return Builder(
        "buildkit", ns, "runc", "", (BuilderPod("buildkit-0", node, True, "buildkitd", "Running"),)
    )


def test_missing_emulator_is_installed_and_the_builder_then_reports_it(
    env: dict[str, str], mips_handler: Path
) -> None:
    with namespace(env, "kb-emu") as ns:
        kube = kube_for(env, ns)
        console = Console(quiet=True)
        builder = ensure_arch_builder(
            kube, "buildkit", builder_name("buildkit", HOST), node_selector(HOST), console, timeout=240
        )
        pod = builder.ready_pods()[0].name
        assert "linux/mips64le" not in worker_platforms(env, ns, pod)

        ensure_emulators(kube, builder, [MIPS], DEFAULT_IMAGE, console, timeout=120)

        entry = mips_handler.read_text().splitlines()
        assert entry[0] == "enabled", entry
        assert "interpreter /usr/bin/qemu-mips64el" in entry
        flags = next(line.split()[1] for line in entry if line.startswith("flags:"))
        assert "F" in flags, entry
        # BuildKit probes emulators again on ListWorkers, at most every 20 s (its archutil
        # cache): the new platform shows up within that.
        reported = poll(
            lambda: True if "linux/mips64le" in worker_platforms(env, ns, pod) else None,
            timeout=30,
            interval=2,
        )
        assert reported, worker_platforms(env, ns, pod)
        assert pods(env, ns, LABEL_FOR) == []

        # Already registered: a no-op that succeeds.
        ensure_emulators(
            kube, builder, [MIPS, Platform("linux", "arm64")], DEFAULT_IMAGE, console, timeout=120
        )
        assert pods(env, ns, LABEL_FOR) == []


def test_pod_security_baseline_refuses_with_a_hint_and_leaves_nothing(
    env: dict[str, str], mips_handler: Path
) -> None:
    with namespace(env, "kb-emu", {"pod-security.kubernetes.io/enforce": "baseline"}) as ns:
        with pytest.raises(BuilderError) as err:
            ensure_emulators(
                kube_for(env, ns),
                fake_builder(ns, env["KB_CLUSTER_NODE"]),
                [MIPS],
                DEFAULT_IMAGE,
                Console(quiet=True),
                timeout=60,
            )
        assert err.value.exit_code == ExitCode.BUILDER
        assert f"the Pod Security level of namespace {ns} forbids" in err.value.message
        hint = err.value.hint or ""
        assert "--mode cross" in hint and "--mode native" in hint and DEFAULT_IMAGE in hint
        assert "--install mips64le" in hint
        assert pods(env, ns) == []
    assert not mips_handler.exists()


def test_rbac_refusal_says_who_can_do_it(env: dict[str, str], mips_handler: Path, tmp_path: Path) -> None:
    with namespace(env, "kb-emu") as ns:
        limited = sa_kubeconfig(
            env, ns, tmp_path, [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
        )
        with pytest.raises(BuilderError) as err:
            ensure_emulators(
                kube_for(env, ns, limited),
                fake_builder(ns, env["KB_CLUSTER_NODE"]),
                [MIPS],
                DEFAULT_IMAGE,
                Console(quiet=True),
                timeout=60,
            )
        assert err.value.message.startswith(
            f"cannot create the privileged pod that installs emulators (mips64le) in namespace {ns}"
        )
        assert "ask a cluster admin to run `kubectl run" in (err.value.hint or "")
        assert pods(env, ns) == []
    assert not mips_handler.exists()


def test_an_image_that_cannot_be_pulled_is_named_and_its_pod_deleted(
    env: dict[str, str], mips_handler: Path
) -> None:
    image = "docker.io/kubectl-build-test/no-such-binfmt:1"
    with namespace(env, "kb-emu") as ns:
        with pytest.raises(BuilderError) as err:
            ensure_emulators(
                kube_for(env, ns),
                fake_builder(ns, env["KB_CLUSTER_NODE"]),
                [MIPS],
                image,
                Console(quiet=True),
                timeout=120,
            )
        assert "ImagePullBackOff" in err.value.message and image in err.value.message
        assert f"--qemu-image ({image})" in (err.value.hint or "")
        assert pods(env, ns) == []
    assert not mips_handler.exists()


def test_an_image_that_is_no_binfmt_installer_fails_with_its_last_words(
    env: dict[str, str], mips_handler: Path
) -> None:
    image = env["KB_CLUSTER_BUILDKIT_IMAGE"]  # on the node already; buildkitd rejects --install
    with namespace(env, "kb-emu") as ns:
        with pytest.raises(BuilderError) as err:
            ensure_emulators(
                kube_for(env, ns),
                fake_builder(ns, env["KB_CLUSTER_NODE"]),
                [MIPS],
                image,
                Console(quiet=True),
                timeout=120,
            )
        message = err.value.message
        assert message.startswith(
            f"installing emulators (mips64le) on node {env['KB_CLUSTER_NODE']} failed: "
        )
        assert message.endswith(
            "exit code 1 (Error); Incorrect Usage: flag provided but not defined: -install"
        ), message
        assert f"check that {image} is a binfmt installer" in (err.value.hint or "")
        assert pods(env, ns) == []
    assert not mips_handler.exists()


UNREACHABLE = "127.0.0.1:1/binfmt:never"  # refused at once, retried: the pod keeps waiting


def test_a_pod_that_never_starts_times_out_named_and_is_deleted(
    env: dict[str, str], mips_handler: Path
) -> None:
    with namespace(env, "kb-emu") as ns:
        with pytest.raises(WaitTimeoutError) as err:
            ensure_emulators(
                kube_for(env, ns),
                fake_builder(ns, env["KB_CLUSTER_NODE"]),
                [MIPS],
                UNREACHABLE,
                Console(quiet=True),
                timeout=15,
            )
        assert err.value.exit_code == ExitCode.TIMEOUT
        assert (
            f"emulator installer pod on node {env['KB_CLUSTER_NODE']} not done after 15s" in err.value.message
        )
        assert "ImagePull" in err.value.message and UNREACHABLE in err.value.message
        assert pods(env, ns) == []
    assert not mips_handler.exists()


def test_ctrl_c_deletes_the_installer_pod(env: dict[str, str], mips_handler: Path) -> None:
    script = (
        "import sys\n"
        "from kubectl_build.platforms.platform import Platform\n"
        "from kubectl_build.console import Console\n"
        "from kubectl_build.kube.builder import Builder, BuilderPod\n"
        "from kubectl_build.kube.config import KubeOptions, connect\n"
        "from kubectl_build.kube.emulation import ensure_emulators\n"
        "kubeconfig, ns, node, image = sys.argv[1:]\n"
        "kube = connect(KubeOptions(kubeconfig=kubeconfig, namespace=ns))\n"
        "pod = BuilderPod('b-0', node, True, 'buildkitd', 'Running')\n"
        "builder = Builder('buildkit', ns, 'runc', '', (pod,))\n"
        "try:\n"
        "    mips = Platform('linux', 'mips64le')\n"
        "    ensure_emulators(kube, builder, [mips], image, Console(), timeout=120)\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n"
    )
    with namespace(env, "kb-emu") as ns:
        args = [sys.executable, "-c", script, env["KUBECONFIG"], ns, env["KB_CLUSTER_NODE"], UNREACHABLE]
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            created = poll(lambda: True if pods(env, ns, LABEL_FOR) else None, timeout=60, interval=0.3)
            assert created, "the installer pod never appeared"
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 130, stderr
        assert pods(env, ns) == [], stderr
    assert not mips_handler.exists()
