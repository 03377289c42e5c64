"""The raw flag values of one ``kubectl build`` invocation, as typed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

_EMPTY: Mapping[str, str] = MappingProxyType({})


def _no_mapping() -> Mapping[str, str]:
    return _EMPTY


@dataclass(frozen=True)
class BuildFlags:
    """The raw values of the ``kubectl build`` flags, exactly as typed (None = not given).

    Field names match the click parameter names, so the command body can pass its
    keyword arguments straight through; all interpretation happens in ``build_options``.
    """

    context: str
    file: str | None = None
    tag: tuple[str, ...] = ()
    platform: tuple[str, ...] = ()
    build_arg: tuple[str, ...] = ()
    label: tuple[str, ...] = ()
    annotation: tuple[str, ...] = ()
    attest: tuple[str, ...] = ()
    sbom: str | None = None
    provenance: str | None = None
    target: str | None = None
    no_cache: bool = False
    no_cache_filter: tuple[str, ...] = ()
    pull: bool = False
    secret: tuple[str, ...] = ()
    ssh: tuple[str, ...] = ()
    build_context: tuple[str, ...] = ()
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    output: tuple[str, ...] = ()
    push: bool = False
    load: bool = False
    network: str | None = None
    add_host: tuple[str, ...] = ()
    shm_size: str | None = None
    ulimit: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    call: str | None = None
    check: bool = False
    progress: str | None = None
    quiet: bool = False
    iidfile: str | None = None
    metadata_file: str | None = None
    debug: bool = False
    buildkit_host: str | None = None
    tlscacert: str | None = None
    tlscert: str | None = None
    tlskey: str | None = None
    tlsservername: str | None = None
    builder: str | None = None
    registry_secret: str | None = None
    namespace: str | None = None
    kubeconfig: str | None = None
    kube_context: str | None = None
    mode: str | None = None
    qemu_image: str | None = None
    transport: str | None = None
