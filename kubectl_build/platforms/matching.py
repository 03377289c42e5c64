"""Which machine can build which platform: Kubernetes nodes and BuildKit workers. Pure.

Parsing and normalising what users type lives in ``kubectl_build.options.specs`` (re-exported by
``kubectl_build.options.build``); this module only compares normalised platforms.

What the cluster tells us, and what we assume:

* A node's ``kubernetes.io/os`` and ``kubernetes.io/arch`` labels carry Go's GOOS/GOARCH;
  ``node.status.nodeInfo`` repeats the architecture and gives no CPU variant either. So a
  node's variant is assumed to be the baseline of its architecture, except for 32-bit arm:
  Kubernetes' own arm binaries need ARMv7, so a Ready arm node is taken as ``arm/v7``.
  Callers that know better (say, from a label of their own) pass the variant explicitly.
* A BuildKit worker (``ListWorkers``) lists every platform it can execute, native first,
  then what the CPU or binfmt adds. The list does not say which are emulated, so a platform
  counts as native-compatible only when it is the worker's own architecture (an older or
  equal variant) or the 32-bit companion of it (386 on amd64, arm on arm64) *and* the worker
  reports it: a 64-bit kernel runs 32-bit code only when built to.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Protocol

from kubectl_build.errors import UsageError
from kubectl_build.platforms.platform import Platform, parse_platform

OS_LABEL = "kubernetes.io/os"
ARCH_LABEL = "kubernetes.io/arch"
BUILDER_OS = "linux"
"""The only OS a builder pod runs on: buildkitd is deployed as a Linux container."""

ASSUMED_ARM_VARIANT = "v7"
"""The variant of an arm node when nothing says otherwise (see the module docstring)."""

# A 64-bit architecture and the 32-bit one its kernel may also execute.
_COMPANIONS: Mapping[str, str] = {"amd64": "386", "arm64": "arm"}
# Variants in increasing order of capability; a CPU runs its own level and any lower one.
_LEVELS: Mapping[str, tuple[str, ...]] = {
    "arm": ("v5", "v6", "v7", "v8"),
    "amd64": ("", "v2", "v3", "v4"),
}
EMULATED_ARCHES = frozenset({"amd64", "386", "arm64", "arm", "riscv64", "ppc64le", "s390x",
                             "mips64le", "mips64", "loong64"})
"""Architectures QEMU user-mode emulation (binfmt installers) provides for Linux."""


class PlatformFields(Protocol):
    """Anything spelling a platform as three strings, such as BuildKit's ``pb.Platform``."""

    @property
    def os(self) -> str:
        """GOOS, e.g. ``linux``."""

    @property
    def architecture(self) -> str:
        """GOARCH, e.g. ``arm64``."""

    @property
    def variant(self) -> str:
        """CPU variant, e.g. ``v7``; may be empty."""


def from_parts(os_name: str, architecture: str, variant: str = "") -> Platform | None:
    """Normalise a platform reported by a daemon or registry; None when we do not know it.

    Unknown spellings are not an error here: a newer daemon may report platforms this
    client has never heard of, and they simply match nothing.
    """
    text = "/".join(part for part in (os_name, architecture, variant) if part)
    if not os_name or not architecture:
        return None
    try:
        return parse_platform(text)
    except UsageError:
        return None


def worker_platforms(reported: Iterable[PlatformFields]) -> tuple[Platform, ...]:
    """A worker's platforms (``WorkerRecord.platforms``), normalised, order kept, unknowns dropped."""
    result: dict[Platform, None] = {}
    for item in reported:
        platform = from_parts(item.os, item.architecture, item.variant)
        if platform is not None:
            result.setdefault(platform, None)
    return tuple(result)


def node_platform(labels: Mapping[str, str], variant: str = "") -> Platform | None:
    """The platform of a Kubernetes node from its labels; None without usable labels.

    Args:
        labels: ``metadata.labels`` of the node.
        variant: the CPU variant when the caller knows it; else assumed (module docstring).
    """
    os_name = labels.get(OS_LABEL, "")
    arch = labels.get(ARCH_LABEL, "")
    if arch == "arm" and not variant:
        variant = ASSUMED_ARM_VARIANT
    return from_parts(os_name, arch, variant)


def node_selector(platform: Platform) -> dict[str, str]:
    """The nodeSelector that places a builder on nodes of ``platform``'s architecture."""
    return {OS_LABEL: platform.os, ARCH_LABEL: platform.architecture}


def builder_suffix(platform: Platform) -> str:
    """``arm64``, ``arm-v7``: the part after ``<builder>-`` of a per-architecture builder."""
    return "-".join(part for part in (platform.architecture, platform.variant) if part)


def _variant_covers(arch: str, host: str, target: str) -> bool:
    levels = _LEVELS.get(arch)
    if levels is None or host not in levels or target not in levels:
        return host == target
    return levels.index(target) <= levels.index(host)


def serves_natively(host: Platform, target: Platform) -> bool:
    """Whether a machine of platform ``host`` executes ``target`` code without help.

    Only the same OS and architecture count, with an equal or older variant (an ARMv7 CPU
    runs ARMv6 code). 32-bit companions are not assumed: see :func:`worker_runs`.
    """
    return (host.os == target.os and host.architecture == target.architecture
            and _variant_covers(host.architecture, host.variant, target.variant))


def worker_runs(native: Platform, reported: Collection[Platform] | None, target: Platform) -> bool:
    """Whether a worker runs ``target`` natively (no emulation), from what it reported.

    Args:
        native: the worker's own platform (the first one ``ListWorkers`` reports).
        reported: every platform the worker reported, or None when unknown.
        target: the platform a ``RUN`` step needs.
    """
    if serves_natively(native, target):
        return True
    if reported is None or target not in reported or native.os != target.os:
        return False
    if target.architecture == native.architecture:
        # The daemon probed the CPU (amd64/v3, say) before listing it.
        return True
    return _COMPANIONS.get(native.architecture) == target.architecture


def can_emulate(target: Platform) -> bool:
    """Whether binfmt/QEMU emulation can provide ``target`` on a Linux builder."""
    return target.os == BUILDER_OS and target.architecture in EMULATED_ARCHES
