"""The binfmt installer: its pod, its arguments and what its log says. Pure.

One privileged pod per node runs a binfmt installer image (``tonistiigi/binfmt`` or a
stand-in that takes the same arguments, ``--install arm64,riscv64``); it registers the
kernel's binfmt_misc handlers with the F flag, so they keep working for every container
after the pod is gone. The installer exits 0 even when a registration failed, so its log
is read: ``installing: ARCH OK`` or ``installing: ARCH <error>`` lines, then a JSON status
(``supported`` platforms, which it finds by running a binary of each, and registered
``emulators``).
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubectl_build.errors import BuilderError
from kubectl_build.platforms.matching import can_emulate, from_parts, serves_natively
from kubectl_build.platforms.platform import Platform

DEFAULT_IMAGE = "docker.io/tonistiigi/binfmt:latest"
CONTAINER = "binfmt"
LABEL_FOR = "kubectl-build.dev/emulators-for"
"""Label on installer pods: the builder they install for (never the builder label itself,
which would make them count as the builder's pods)."""
LABEL_RUN = "kubectl-build.dev/emulator-run"
"""Label on installer pods: one value per invocation, so it finds (and deletes) its own
pods, even one created just before a Ctrl-C, and never a concurrent invocation's."""
DEADLINE_MARGIN = 30
"""Seconds the pod may outlive the client's own timeout before the kubelet stops it."""

HANDLERS: Mapping[str, str] = {
    "amd64": "qemu-x86_64", "arm64": "qemu-aarch64", "arm": "qemu-arm", "386": "qemu-i386",
    "riscv64": "qemu-riscv64", "ppc64le": "qemu-ppc64le", "s390x": "qemu-s390x",
    "mips64le": "qemu-mips64el", "mips64": "qemu-mips64", "loong64": "qemu-loongarch64",
}
"""binfmt_misc handler names (``/proc/sys/fs/binfmt_misc/NAME``) per GOARCH, as
tonistiigi/binfmt registers them."""

_RESULT = re.compile(r"^installing: (\S+) (.*)$")
# Lines of a failed installer's log that say why, for programs that print their usage
# after the one line that matters.
# A usage text's own "USAGE:" heading may come first in the log (stdout and stderr are
# interleaved by the runtime), so a line about usage only counts when nothing better does.
_TELLING = re.compile(r"error|fatal|panic|not defined|unknown|invalid|denied|not permitted|"
                      r"no such|not found|cannot", re.IGNORECASE)
_USAGE = re.compile(r"usage", re.IGNORECASE)
_ALREADY = re.compile(r"already registered$")


def missing_emulators(reported: Sequence[Platform], wanted: Sequence[Platform]) -> tuple[Platform, ...]:
    """The platforms of `wanted` whose architecture the builder reported no platform of.

    QEMU runs every variant of an architecture, so ``linux/arm/v6`` counts as present
    when the worker reported ``linux/arm/v7``. Order of `wanted` kept, duplicates dropped.
    """
    have = {(p.os, p.architecture) for p in reported}
    seen: dict[Platform, None] = {}
    for platform in wanted:
        if (platform.os, platform.architecture) not in have:
            seen.setdefault(platform, None)
    return tuple(seen)


def install_arches(platforms: Iterable[Platform], native: Platform | None = None) -> tuple[str, ...]:
    """The installer's architecture names for `platforms`, sorted, without `native`'s.

    Registering a handler for the node's own architecture would send every native
    program through QEMU, so it is never asked for, whatever the caller passes.

    Raises:
        BuilderError: A platform no QEMU emulator exists for.
    """
    arches: set[str] = set()
    for platform in platforms:
        if not can_emulate(platform) or platform.architecture not in HANDLERS:
            raise BuilderError(f"no emulator exists for {platform}",
                               "build its RUN steps FROM --platform=$BUILDPLATFORM (--mode cross)")
        if native is None or not serves_natively(native, Platform(native.os, platform.architecture)):
            arches.add(platform.architecture)
    return tuple(sorted(arches))


def install_args(arches: Sequence[str]) -> list[str]:
    """The installer's arguments: ``--install arm64,riscv64``."""
    return ["--install", ",".join(arches)]


def installer_pod(  # noqa: PLR0913 - a manifest: one parameter per field it fills in
        builder: str, namespace: str, node: str, image: str, arches: Sequence[str],
        timeout: float, run: str) -> dict[str, Any]:
    """The one-off privileged pod that registers `arches` on `node` (`run`: LABEL_RUN's value)."""
    labels = {LABEL_FOR: builder, LABEL_RUN: run, "app.kubernetes.io/managed-by": "kubectl-build",
              "app.kubernetes.io/name": "binfmt"}
    return {
        "apiVersion": "v1", "kind": "Pod",
        # generateName: concurrent invocations each get their own pod (the server shortens
        # a long prefix to fit).
        "metadata": {"generateName": f"{builder}-binfmt-", "namespace": namespace, "labels": labels},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "tolerations": [{"operator": "Exists"}],
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 1,
            "activeDeadlineSeconds": math.ceil(timeout) + DEADLINE_MARGIN,
            "containers": [{
                "name": CONTAINER,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "args": install_args(arches),
                # Mounting binfmt_misc and writing its register file need both.
                "securityContext": {"privileged": True},
            }],
        },
    }


@dataclass(frozen=True)
class InstallReport:
    """What an installer pod's log says."""

    installed: tuple[str, ...]
    """Architectures registered now or already before."""
    failed: tuple[tuple[str, str], ...]
    """(architecture, the installer's error) pairs."""
    errors: tuple[str, ...]
    """``error: ...`` lines (binfmt_misc could not be mounted, ...)."""
    supported: tuple[Platform, ...] | None
    """Platforms the node runs after installing; None when the log has no status."""
    emulators: tuple[str, ...] = ()
    """Registered handler names."""


def parse_install_log(log: str) -> InstallReport:
    """Parse the installer's output (stderr lines and the JSON status on stdout, mixed)."""
    installed: list[str] = []
    failed: list[tuple[str, str]] = []
    errors: list[str] = []
    lines = log.splitlines()
    for line in lines:
        text = _strip_timestamp(line.strip())
        match = _RESULT.match(text)
        if match:
            arch, outcome = match.groups()
            if outcome == "OK" or _ALREADY.search(outcome):
                installed.append(arch)
            else:
                failed.append((arch, outcome))
        elif text.startswith("error:"):
            errors.append(text.removeprefix("error:").strip())
    status = _status(log)
    supported = None
    if status is not None:
        found = (_platform(str(p)) for p in status.get("supported") or [])
        supported = tuple(p for p in found if p is not None)
    emulators = tuple(str(e) for e in (status or {}).get("emulators") or [])
    return InstallReport(tuple(installed), tuple(failed), tuple(errors), supported, emulators)


def _strip_timestamp(line: str) -> str:
    # Older installers log with Go's default "2006/01/02 15:04:05 " prefix.
    return re.sub(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(\.\d+)? ", "", line)


def _status(log: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"^\{", log, re.MULTILINE):
        try:
            value, _ = decoder.raw_decode(log, match.start())
        except ValueError:
            continue
        if isinstance(value, dict) and "supported" in value:
            return value
    return None


def _platform(text: str) -> Platform | None:
    parts = text.split("/")
    return from_parts(*parts[:3]) if len(parts) >= 2 else None


def failure_line(log: str) -> str:
    """The line of a failed installer's log that says why: the first telling one, else the last."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for pattern in (_TELLING, _USAGE):
        found = next((line for line in lines if pattern.search(line)), None)
        if found is not None:
            return found
    return lines[-1] if lines else ""


def install_problems(report: InstallReport, arches: Sequence[str]) -> list[str]:
    """What went wrong installing `arches`, one phrase each; empty when all is well."""
    problems = [f"binfmt_misc: {e}" for e in report.errors]
    problems += [f"{arch}: {why}" for arch, why in report.failed if arch in arches]
    settled = set(report.installed) | {arch for arch, _ in report.failed}
    problems += [f"{arch}: the installer did not report it" for arch in arches if arch not in settled
                 and not report.errors]
    if report.supported is not None:
        runs = {p.architecture for p in report.supported}
        for arch in arches:
            if arch in report.installed and arch not in runs:
                problems.append(f"{arch}: {HANDLERS.get(arch, arch)} is registered but cannot run {arch} "
                                "programs in containers (registered without the F flag by the node?)")
    return problems


def refused(namespace: str, node: str, arches: Sequence[str], image: str, reason: str) -> BuilderError:
    """The cluster would not run the privileged installer pod: say why and what to do."""
    if "PodSecurity" in reason:
        what = (f"installing emulators ({','.join(arches)}) needs a privileged pod, which the Pod Security "
                f"level of namespace {namespace} forbids ({reason})")
    else:
        what = (f"cannot create the privileged pod that installs emulators ({','.join(arches)}) in namespace "
                f"{namespace} ({reason})")
    overrides = json.dumps({"spec": {"nodeName": node}}, separators=(",", ":"))
    admin = shlex.join(["kubectl", "run", "binfmt", "--rm", "-i", "--restart=Never", "--privileged",
                        f"--image={image}", f"--overrides={overrides}", "--", *install_args(arches)])
    return BuilderError(what, "build these platforms with --mode cross (RUN steps on $BUILDPLATFORM) or "
                        "--mode native (nodes of their architecture), or ask a cluster admin to run "
                        f"`{admin}` once (and so on each other node the builder runs on)")
