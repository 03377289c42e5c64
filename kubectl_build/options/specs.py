"""Parsers for the structured build flags: --secret, --ssh, --output, --cache-*.

Pure: the only side effects are reading the environment mapping passed in and checking
that local files named by a flag exist, so bad input fails before any connection.
The public names are re-exported by ``kubectl_build.options.build``; import them from there.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from kubectl_build.errors import UsageError
from kubectl_build.host import facts
from kubectl_build.platforms.platform import comma_items as _comma_items

_KEYWORDS = frozenset({"type", "id", "src", "source", "env", "dest", "name", "push", "ref", "mode"})


def _csv_fields(value: str, flag: str, forms: str) -> list[tuple[str, str]]:
    """Split ``k=v,k2="v,2"`` the way Go's encoding/csv does, as docker and buildx do."""
    try:
        cells = next(csv.reader([value]), [])
    except csv.Error as err:
        raise UsageError(f'invalid {flag} "{value}": {err}', forms) from err
    fields = []
    for cell in cells:
        key, sep, val = cell.partition("=")
        if not sep or not key.strip():
            raise UsageError(f'invalid {flag} "{value}": expected KEY=VALUE, got "{cell}"', forms)
        key = key.strip()
        # Our own keys match in any case; others (annotation.*, exporter options) are
        # passed to the daemon as typed, since annotation keys are case-sensitive.
        fields.append((key.lower() if key.lower() in _KEYWORDS else key, val))
    return fields


_SECRET_FORMS = "use id=ID,src=FILE or id=ID,env=VARIABLE"


@dataclass(frozen=True)
class SecretSpec:
    """A build secret served to ``RUN --mount=type=secret`` through the session."""

    id: str
    """The id the Dockerfile mount refers to."""
    src: str | None
    """Absolute path of the file holding the value; exactly one of ``src``/``env`` is set."""
    env: str | None
    """Name of the environment variable holding the value."""


def _secret_fields(value: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, val in _csv_fields(value, "--secret", _SECRET_FORMS):
        key = "src" if key == "source" else key
        if key not in ("type", "id", "src", "env"):
            raise UsageError(f'invalid --secret "{value}": unknown key "{key}"', _SECRET_FORMS)
        fields[key] = val
    if fields.get("type", "file") not in ("file", "env"):
        raise UsageError(f'invalid --secret "{value}": type must be file or env', _SECRET_FORMS)
    if not fields.get("id"):
        raise UsageError(f'invalid --secret "{value}": missing id=', _SECRET_FORMS)
    return fields


def parse_secret(value: str, environ: Mapping[str, str]) -> SecretSpec:
    """Parse one ``--secret`` value with buildx semantics.

    ``id=X,src=FILE`` reads a file, ``id=X,env=VAR`` an environment variable, and
    ``type=file|env`` may be spelled out (with ``type=env``, ``src=`` names the variable).
    A bare ``id=X`` reads the variable ``X`` if it is set, else the file ``X``, as
    BuildKit's secrets provider does.

    Raises:
        UsageError: the value is malformed or names a file that does not exist.
    """
    fields = _secret_fields(value)
    secret_id, src, env = fields["id"], fields.get("src"), fields.get("env")
    if fields.get("type") == "env" and env is None:
        env, src = src or secret_id, None
    if src is None and env is None:
        if fields.get("type") != "file" and secret_id in environ:
            env = secret_id
        else:
            src = secret_id
    if src is not None and env is not None:
        raise UsageError(f'invalid --secret "{value}": give src= or env=, not both', _SECRET_FORMS)
    if src is None:
        return SecretSpec(secret_id, None, env)
    if not os.path.isfile(src):
        raise UsageError(f'secret file "{src}" for --secret id={secret_id} not found', _SECRET_FORMS)
    return SecretSpec(secret_id, os.path.abspath(src), None)


_SSH_FORMS = "use default, default=SOCKET, or ID=KEYFILE[,KEYFILE...]"


@dataclass(frozen=True)
class SSHSpec:
    """An SSH agent forwarded to ``RUN --mount=type=ssh``."""

    id: str
    """The id the Dockerfile mount refers to (``default`` when it names none)."""
    paths: tuple[str, ...]
    """Absolute paths of an agent socket or of private key files; never empty."""


def parse_ssh(value: str, environ: Mapping[str, str]) -> SSHSpec:
    """Parse one ``--ssh`` value: ``default``, ``default=$SSH_AUTH_SOCK``, ``ID=KEY1,KEY2``.

    Without paths the agent at ``$SSH_AUTH_SOCK`` is forwarded.

    Raises:
        UsageError: the id is malformed, no socket is known, or a path does not exist.
    """
    ssh_id, _, rest = value.partition("=")
    ssh_id = ssh_id.strip()
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", ssh_id):
        raise UsageError(f'invalid --ssh "{value}": bad id "{ssh_id}"', _SSH_FORMS)
    if not facts.unix_sockets():
        # Windows' OpenSSH agent is a named pipe, which the forwarder does not speak.
        raise UsageError(f"--ssh {ssh_id}: SSH agent forwarding needs unix sockets, which this "
                         "Windows client lacks", "build from WSL, or pass the key with --secret")
    paths = _comma_items([rest])
    if not paths:
        sock = environ.get("SSH_AUTH_SOCK", "")
        if not sock:
            raise UsageError(
                f"--ssh {ssh_id} needs an SSH agent but SSH_AUTH_SOCK is not set",
                "start ssh-agent or pass --ssh ID=KEYFILE",
            )
        paths = [sock]
    for path in paths:
        if not os.path.exists(path):
            raise UsageError(f'--ssh {ssh_id}: "{path}" not found', _SSH_FORMS)
    return SSHSpec(ssh_id, tuple(os.path.abspath(path) for path in paths))


_OUTPUT_FORMS = (
    "use type=local,dest=DIR, type=tar|oci|docker,dest=FILE (or dest=- for stdout), "
    "type=oci|docker,tar=false,dest=DIR, "
    "type=image,name=NAME[,push=true], type=registry, or a directory"
)
_OUTPUT_TYPES = frozenset({"local", "tar", "oci", "docker", "image", "cacheonly"})
_FILE_OUTPUTS = frozenset({"tar", "oci", "docker"})


@dataclass(frozen=True)
class OutputSpec:
    """One exporter of the build result (BuildKit supports several per build)."""

    type: str
    """Exporter type: ``local``, ``tar``, ``oci``, ``docker``, ``image`` or ``cacheonly``."""
    # Left out of the hash (a mapping is unhashable) but still compared for equality.
    attrs: Mapping[str, str] = field(hash=False)
    """Exporter attributes (``name``, ``push``, ``compression``...), without type and dest."""
    dest: str | None
    """A directory for local, a file or ``-`` (stdout) for tar/oci/docker, else None."""
    loads: bool = False
    """Given as ``type=docker`` without dest: buildx's load into Docker, ours into the cluster."""

    @property
    def layout_dir(self) -> bool:
        """Whether an oci/docker output goes into an OCI layout directory (``tar=false``)."""
        return self.type in ("oci", "docker") and self.attrs.get("tar", "true") in GO_FALSE

    @property
    def pushes(self) -> bool:
        """Whether this output pushes to a registry."""
        return self.type == "image" and _is_true(self.attrs.get("push", "false"))


def _is_true(value: str) -> bool:
    return value.strip().lower() in ("1", "t", "true", "yes", "on")


# strconv.ParseBool's spellings: the daemon parses these attributes with it.
GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _is_bool(value: str) -> bool:
    return value in GO_TRUE or value in GO_FALSE


def parse_output(value: str) -> OutputSpec:
    """Parse one ``-o/--output`` value with buildx semantics.

    A bare path is ``type=local,dest=PATH``; a bare ``-`` is a tar stream on stdout;
    ``type=registry`` is ``type=image,push=true``.

    Raises:
        UsageError: the value is malformed, the type unknown, or a required dest missing.
    """
    if value == "-":
        return OutputSpec("tar", MappingProxyType({}), "-")
    if "=" not in value:
        return OutputSpec("local", MappingProxyType({}), value)
    attrs = dict(_csv_fields(value, "--output", _OUTPUT_FORMS))
    kind = attrs.pop("type", "").strip().lower()
    dest = attrs.pop("dest", None)
    if kind == "registry":
        kind, attrs["push"] = "image", "true"
    if kind not in _OUTPUT_TYPES:
        why = f'unknown type "{kind}"' if kind else "missing type="
        raise UsageError(f'invalid --output "{value}": {why}', _OUTPUT_FORMS)
    if kind == "docker" and not dest and attrs.get("tar", "true") not in GO_FALSE:
        # buildx loads it into the local Docker engine; the engine here is the cluster's (--load)
        kept = {k: v for k, v in attrs.items() if k not in ("context", "tar")}
        return OutputSpec("image", MappingProxyType(kept), None, loads=True)
    if kind == "local" and dest in (None, "", "-"):
        raise UsageError(f'invalid --output "{value}": type=local needs dest=DIR', _OUTPUT_FORMS)
    if "tar" in attrs and (kind not in ("oci", "docker") or not _is_bool(attrs["tar"])):
        why = "tar= must be true or false" if kind in ("oci", "docker") else f"type={kind} takes no tar="
        raise UsageError(f'invalid --output "{value}": {why}', _OUTPUT_FORMS)
    if kind in ("oci", "docker") and attrs.get("tar", "true") in GO_FALSE and dest in (None, "", "-"):
        raise UsageError(f'invalid --output "{value}": type={kind},tar=false needs dest=DIR', _OUTPUT_FORMS)
    if kind in _FILE_OUTPUTS and not dest:
        raise UsageError(f'invalid --output "{value}": type={kind} needs dest=FILE or dest=-', _OUTPUT_FORMS)
    if kind in ("image", "cacheonly") and dest is not None:
        raise UsageError(f'invalid --output "{value}": type={kind} takes no dest', _OUTPUT_FORMS)
    return OutputSpec(kind, MappingProxyType(attrs), dest)


_CACHE_FORMS = (
    "use a registry ref, type=registry,ref=REF[,mode=max], type=inline, "
    "type=local,src=DIR|dest=DIR, type=gha, type=s3 or type=azblob"
)
_CACHE_TYPES = frozenset({"registry", "inline", "local", "gha", "s3", "azblob"})


@dataclass(frozen=True)
class CacheSpec:
    """One cache import (``--cache-from``) or export (``--cache-to``)."""

    type: str
    """Cache backend: ``registry``, ``inline``, ``local``, ``gha``, ``s3`` or ``azblob``."""
    # Left out of the hash (a mapping is unhashable) but still compared for equality.
    attrs: Mapping[str, str] = field(hash=False)
    """Backend attributes (``ref``, ``mode``, ``src``, ``dest``...), without type."""


def parse_cache(value: str, *, export: bool) -> CacheSpec:
    """Parse one ``--cache-from`` (``export=False``) or ``--cache-to`` value.

    A value without ``=`` is a registry reference: ``REF`` means ``type=registry,ref=REF``.

    Raises:
        UsageError: the value is malformed, the type unknown or a required attribute missing.
    """
    flag = "--cache-to" if export else "--cache-from"
    if "=" not in value:
        if not value.strip():
            raise UsageError(f'invalid {flag} "{value}": empty', _CACHE_FORMS)
        return CacheSpec("registry", MappingProxyType({"ref": value.strip()}))
    attrs = dict(_csv_fields(value, flag, _CACHE_FORMS))
    kind = attrs.pop("type", "").strip().lower()
    if kind not in _CACHE_TYPES:
        why = f'unknown type "{kind}"' if kind else "missing type="
        raise UsageError(f'invalid {flag} "{value}": {why}', _CACHE_FORMS)
    if kind == "inline" and not export:
        # Inline cache lives in an image, so it is imported by naming that image.
        raise UsageError(
            f'invalid --cache-from "{value}": inline cache is read from an image',
            "use --cache-from type=registry,ref=IMAGE",
        )
    needed = {"registry": "ref", "local": "dest" if export else "src"}.get(kind)
    if needed and not attrs.get(needed):
        raise UsageError(f'invalid {flag} "{value}": type={kind} needs {needed}=', _CACHE_FORMS)
    if export and attrs.get("mode", "min") not in ("min", "max"):
        raise UsageError(f'invalid {flag} "{value}": mode must be min or max', _CACHE_FORMS)
    return CacheSpec(kind, MappingProxyType(attrs))
