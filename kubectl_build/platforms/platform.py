"""The target platform type and its parsing: ``--platform``, ``local``, aliases. Pure."""

from __future__ import annotations

import platform as _host
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from kubectl_build.errors import UsageError

_PLATFORM_FORMS = (
    "use OS/ARCH[/VARIANT] such as linux/amd64, linux/arm64, linux/arm/v7, linux/arm/v6, "
    'linux/386, linux/ppc64le, linux/s390x, windows/amd64, or "local"'
)
_KNOWN_OS = frozenset((
    "aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "linux", "netbsd",
    "openbsd", "plan9", "solaris", "wasip1", "windows",
))
_KNOWN_ARCH = frozenset((
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64",
    "ppc64le", "riscv64", "s390x", "wasm",
))
# Spellings from uname, Debian and image-name prefixes, with the variant they imply.
_ARCH_ALIASES: Mapping[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "aarch64": ("arm64", ""),
    "arm64v8": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armv7l": ("arm", "v7"),
    "arm32v7": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv6l": ("arm", "v6"),
    "arm32v6": ("arm", "v6"),
    "ppc64el": ("ppc64le", ""),
}
_OS_ALIASES: Mapping[str, str] = {"macos": "darwin"}


@dataclass(frozen=True)
class Platform:
    """A normalised target platform, as BuildKit and OCI image indexes spell it."""

    os: str
    """Operating system, e.g. ``linux`` or ``windows``."""
    architecture: str
    """Go-style architecture, e.g. ``amd64``, ``arm64``, ``arm``."""
    variant: str = ""
    """CPU variant, e.g. ``v7`` for arm; empty when the architecture has a single default."""

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)


def _platform_error(value: str, why: str) -> UsageError:
    return UsageError(f'invalid platform "{value}": {why}', _PLATFORM_FORMS)


def _normalize_variant(value: str, arch: str, variant: str) -> str:
    """The canonical variant for ``arch``, following containerd's normalisation."""
    bare = variant.lower().removeprefix("v")
    if arch == "arm":
        if bare in ("", "7"):
            return "v7"
        if bare in ("5", "6", "8"):
            return f"v{bare}"
    elif arch == "arm64":
        # v8 is the baseline, so it is dropped: linux/arm64/v8 and linux/arm64 are one platform.
        if bare in ("", "8", "8.0"):
            return ""
        if re.fullmatch(r"(8|9)(\.[0-9])?", bare):
            return "v9" if bare == "9.0" else f"v{bare}"
    elif arch == "amd64":
        if bare in ("", "1"):
            return ""
        if bare in ("2", "3", "4"):
            return f"v{bare}"
    elif re.fullmatch(r"[a-z0-9.]*", variant.lower()):
        return variant.lower()
    raise _platform_error(value, f'unknown variant "{variant}" for architecture {arch}')


def _normalize_arch(value: str, arch: str, variant: str) -> tuple[str, str]:
    arch = arch.lower()
    if arch in _ARCH_ALIASES:
        arch, implied = _ARCH_ALIASES[arch]
        variant = variant or implied
    if arch not in _KNOWN_ARCH:
        raise _platform_error(value, f'unknown architecture "{arch}"')
    return arch, _normalize_variant(value, arch, variant)


def native_platform() -> Platform:
    """The platform of this machine, as ``--platform local`` means it.

    Images are built for Linux unless the client itself runs Windows: a macOS client
    builds Linux images, as Docker Desktop does, because there are no darwin containers.
    """
    machine = _host.machine().lower() or "amd64"
    os_name = "windows" if sys.platform.startswith("win") else "linux"
    # uname spells 32-bit arm as armv5tel, armv6l, armv7l...: the digit is the variant.
    arm = re.fullmatch(r"armv([5-8])\w*", machine)
    if arm:
        return Platform(os_name, "arm", f"v{arm.group(1)}")
    arch, variant = _normalize_arch(machine, machine, "")
    return Platform(os_name, arch, variant)


def parse_platform(value: str) -> Platform:
    """Parse and normalise one platform specifier.

    Args:
        value: ``local``, ``OS``, ``ARCH``, ``OS/ARCH`` or ``OS/ARCH/VARIANT``; aliases
            such as ``aarch64``, ``x86_64`` or ``armhf`` are accepted.

    Returns:
        The normalised platform (``linux/aarch64`` becomes ``linux/arm64``).

    Raises:
        UsageError: the specifier is malformed or names an unknown OS or architecture.
    """
    text = value.strip()
    if text == "local":
        return native_platform()
    parts = text.split("/")
    if not text or len(parts) > 3 or any(not part for part in parts):
        raise _platform_error(value, "too many or empty parts")
    if len(parts) == 1:
        os_name = parts[0].lower()
        if _OS_ALIASES.get(os_name, os_name) in _KNOWN_OS:
            native = native_platform()
            parts = [os_name, native.architecture, native.variant]
        else:
            parts = ["linux", parts[0]]
    os_name = parts[0].lower()
    os_name = _OS_ALIASES.get(os_name, os_name)
    if os_name not in _KNOWN_OS:
        raise _platform_error(value, f'unknown operating system "{parts[0]}"')
    arch, variant = _normalize_arch(value, parts[1], parts[2] if len(parts) == 3 else "")
    return Platform(os_name, arch, variant)


def parse_platforms(values: Sequence[str], environ: Mapping[str, str]) -> tuple[Platform, ...]:
    """Parse repeated and comma-separated ``--platform`` values.

    Args:
        values: the flag values, each possibly a comma list.
        environ: the environment; ``DOCKER_DEFAULT_PLATFORM`` applies when ``values`` is empty.

    Returns:
        The platforms in the order given, duplicates removed; empty means "the daemon's own".

    Raises:
        UsageError: a specifier is malformed.
    """
    if not values and environ.get("DOCKER_DEFAULT_PLATFORM"):
        values = [environ["DOCKER_DEFAULT_PLATFORM"]]
    result: dict[Platform, None] = {}
    for item in comma_items(values):
        result.setdefault(parse_platform(item), None)
    return tuple(result)


def comma_items(values: Iterable[str]) -> list[str]:
    """The comma-separated items of every value, stripped, empty ones dropped."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]
