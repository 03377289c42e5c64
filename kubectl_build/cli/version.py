"""``kubectl build --version`` and ``kubectl buildkit version``: client and builder versions.

The client line never needs the network. The builder's BuildKit version is asked for only
when an address is given (``--buildkit-host`` or ``BUILDKIT_HOST``); grpc is imported then.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence

from kubectl_build import __version__
from kubectl_build.console import Console
from kubectl_build.errors import ExitCode

CONNECT_TIMEOUT = 5.0


RELEASE_VERSIONS = "release-versions.json"
"""Beside the release executable's modules: what packaging/build_release.py froze in."""
SHOWN = ("click", "grpcio", "h2", "kubernetes", "protobuf", "rich")


def client_line() -> str:
    """``kubectl-build <version>``; the release executable adds what it was built with."""
    frozen = _frozen_versions()
    if not frozen:
        return f"kubectl-build {__version__}"
    parts = [f"python {frozen.get('python', '?')}"] + [
        f"{name} {frozen[name]}" for name in SHOWN if name in frozen]
    return f"kubectl-build {__version__} ({', '.join(parts)})"


def _frozen_versions() -> dict[str, str]:
    bundle = getattr(sys, "_MEIPASS", None)
    if not getattr(sys, "frozen", False) or not bundle:
        return {}
    try:
        with open(os.path.join(bundle, RELEASE_VERSIONS), encoding="utf-8") as fh:
            found = json.load(fh)
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def builder_line(address: str, timeout: float | None = None) -> str:
    """``buildkitd <address>: BuildKit <version> (<package> <revision>)``, asked over Control.Info.

    Raises:
        KubectlBuildError: the address is malformed or the daemon cannot be reached.
    """
    from kubectl_build.buildkit.client import BuildKitClient, parse_address

    timeout = CONNECT_TIMEOUT if timeout is None else timeout
    with BuildKitClient(parse_address(address)) as client:
        client.wait_ready(timeout)
        info = client.info(timeout=timeout).buildkit_version
    detail = " ".join(part for part in (info.package, info.revision) if part)
    return f"buildkitd {address}: BuildKit {info.version or 'unknown'}" + (f" ({detail})" if detail else "")


def report(console: Console, address: str | None) -> int:
    """Print the client line and, with an address, the builder line; return the exit code."""
    console.result(client_line())
    if address:
        console.result(builder_line(address))
    return ExitCode.OK


def address_from_args(args: Sequence[str], environ: Mapping[str, str]) -> str | None:
    """The ``--buildkit-host`` value in ``args`` (either spelling), else ``BUILDKIT_HOST``."""
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg.startswith("--buildkit-host="):
            return arg.partition("=")[2] or None
        if arg == "--buildkit-host" and index + 1 < len(args):
            return args[index + 1]
    return environ.get("BUILDKIT_HOST") or None
