"""`kubectl build` installs a missing emulator itself, on the test-bed cluster (issue 5, qemu).

binfmt_misc is the host's: the core test bed registered qemu-s390x (Debian's interpreter,
flags PF). The test saves that registration, unregisters it, builds linux/s390x with
``RUN uname -m`` through the CLI (the planner sees no s390x, plans qemu, the build
installs the emulator with the test bed's binfmt installer and waits for BuildKit to
report it) and finally puts the host's own registration back byte for byte, whatever
happened. It runs as root (writes /proc/sys/fs/binfmt_misc) and FAILS, never skips,
without the test bed. Nothing else in the suite uses s390x while it runs (tests run one
after another).

BuildKit only ever adds to a worker's platforms (``Worker.Platforms`` appends what a new
probe finds), so a builder that once saw s390x reports it until it restarts: the test's
builder is created after the handler is gone.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubectl_build.kube.waiting import poll
from tests.e2e.cluster.support import (
    BINFMT,
    UNAME,
    build,
    images_by_platform,
    kubectl,
    namespace,
    plan_lines,
    pushing_builder,
    registry_secret,
    worker_platforms,
)
from tests.e2e.helpers import load_testbed
from tests.e2e.registry_helpers import read_file_from_image, tls_registry

pytestmark = pytest.mark.cluster

NAME = "qemu-s390x"
HANDLER = BINFMT / NAME
S390X = "linux/s390x"


@dataclass(frozen=True)
class Handler:
    """A binfmt_misc magic handler as its /proc file shows it."""

    text: str
    """The file's whole text (compared after restoring)."""
    enabled: bool
    interpreter: str
    flags: str
    offset: int
    magic: str
    """Hex digits."""
    mask: str
    """Hex digits."""

    @classmethod
    def read(cls, path: Path) -> Handler:
        text = path.read_text()
        fields = dict(line.split(None, 1) for line in text.splitlines()[1:] if " " in line)
        assert "magic" in fields, f"{path} is not a magic handler: {text}"
        return cls(text, text.splitlines()[0] == "enabled", fields["interpreter"],
                   fields["flags:"].strip(), int(fields["offset"]), fields["magic"].strip(),
                   fields.get("mask", "ff" * (len(fields["magic"].strip()) // 2)).strip())

    def register(self, name: str) -> None:
        """Register it again (all bytes \\x-escaped: a ':' in magic or mask stays a byte)."""
        def escaped(hexa: str) -> str:
            return "".join(f"\\x{hexa[i:i + 2]}" for i in range(0, len(hexa), 2))

        line = (f":{name}:M:{self.offset}:{escaped(self.magic)}:{escaped(self.mask)}:"
                f"{self.interpreter}:{self.flags}")
        fd = os.open(BINFMT / "register", os.O_WRONLY)
        try:
            os.write(fd, line.encode())  # one write: the kernel parses one registration per write
        finally:
            os.close(fd)
        if not self.enabled:
            (BINFMT / name).write_text("0")


def _unregister() -> None:
    if HANDLER.exists():
        HANDLER.write_text("-1")


@pytest.fixture
def env(cluster_env: dict[str, str]) -> dict[str, str]:
    found = cluster_env
    if not (BINFMT / "status").exists():
        pytest.fail(f"binfmt_misc is not mounted at {BINFMT}: run hack/testbed up core")
    if os.geteuid() != 0:
        pytest.fail("this test registers binfmt_misc handlers: run it as root")
    return found


@pytest.fixture
def host_s390x() -> Iterator[Handler]:
    """The host's qemu-s390x registration, unregistered for the test and always restored."""
    assert HANDLER.exists(), f"{HANDLER} is not registered: run hack/testbed up core"
    saved = Handler.read(HANDLER)
    assert re.fullmatch(r"[0-9a-f]+", saved.magic) and re.fullmatch(r"[0-9a-f]+", saved.mask), saved
    try:
        _unregister()
        assert not HANDLER.exists()
        yield saved
    finally:
        _unregister()  # whatever the build registered
        saved.register(NAME)
    assert HANDLER.read_text() == saved.text, "the host's qemu-s390x registration was not restored"


def _builder_pod(env: dict[str, str], ns: str) -> str:
    return kubectl(env, "-n", ns, "get", "pods", "-l", "kubectl-build.dev/builder=buildkit", "-o",
                   "jsonpath={.items[0].metadata.name}").stdout.strip()


def test_build_installs_the_missing_emulator_and_runs_under_it(env: dict[str, str],
                                                               host_s390x: Handler,
                                                               tmp_path: Path) -> None:
    testbed = load_testbed()
    with namespace(env, "kb-emu-install") as ns:
        pushing_builder(env, ns, "buildkit")  # started without s390x: it never saw the handler
        registry_secret(env, ns)
        pod = _builder_pod(env, ns)
        # Bounded: a probe BuildKit cached (20 s) before the handler went away ages out.
        gone = poll(lambda: True if S390X not in worker_platforms(env, ns, pod) else None,
                    timeout=40, interval=2)
        assert gone, worker_platforms(env, ns, pod)

        (tmp_path / "Dockerfile").write_text(UNAME)
        repo = f"cluster/{ns}-s390x"
        run = build(env, ns, str(tmp_path), "--platform", S390X, "--push", "--debug",
                     "-t", f"{testbed.registry_tls}/{repo}:emu")
        assert run.code == 0, run.stderr[-4000:]
        plan = plan_lines(run.stderr)
        assert plan[S390X].startswith(f"qemu on {env['KB_CLUSTER_NODE']} "), plan
        assert f"installing emulators for {S390X} on node {env['KB_CLUSTER_NODE']}" in run.stderr
        reported = [ln for ln in run.stderr.splitlines() if "after installing emulators" in ln]
        assert reported and S390X in reported[0], run.stderr[-4000:]

        client = tls_registry(testbed)
        manifest = client.manifest(repo, "emu")
        assert manifest.digest == run.stdout.strip()
        doc = manifest.json()
        # one platform: an image manifest (an index when BuildKit adds attestations)
        image = images_by_platform(doc)[S390X] if "manifests" in doc else manifest.digest
        config = json.loads(client.blob(repo, client.manifest(repo, image).json()["config"]["digest"]))
        assert (config["os"], config["architecture"]) == ("linux", "s390x")
        assert read_file_from_image(client, repo, image, "/arch") == b"s390x\n"

        # the installer's registration (F: the interpreter stays open after its pod is gone)
        installed = Handler.read(HANDLER)
        assert installed.enabled and "F" in installed.flags, installed.text
        assert installed.interpreter == f"/usr/bin/{NAME}", installed.text
        assert kubectl(env, "-n", ns, "get", "pods", "-l", "kubectl-build.dev/emulators-for",
                       "-o", "name").stdout.strip() == ""
