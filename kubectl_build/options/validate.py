"""Checks on the build's local inputs: context, Dockerfile, image names, daemon address.

Pure apart from stat calls: they run before any connection so that a typo fails in
milliseconds with one clear line. Used by ``kubectl_build.options.build``.
"""

from __future__ import annotations

import os
import re

from kubectl_build.errors import ContextError, UsageError

# Docker's image reference grammar (distribution/reference), written out as regexes.
_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*"
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
TAG_PATTERN = r"[\w][\w.-]{0,127}"
DIGEST_PATTERN = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::{TAG_PATTERN})?(?:@{DIGEST_PATTERN})?"
)
_MAX_NAME = 255

# Remote contexts as docker recognises them; a local directory of the same name wins.
_REMOTE_PREFIXES = ("http://", "https://", "git://", "git@", "ssh://", "github.com/")
_DAEMON_SCHEMES = ("unix://", "tcp://")


def validate_tag(tag: str) -> str:
    """Check an image reference given to ``-t`` against docker's reference grammar.

    Raises:
        UsageError: the reference is malformed (including upper-case repository names).
    """
    name = tag.split("@", 1)[0]
    if _REFERENCE.fullmatch(tag) and len(name.rsplit(":", 1)[0]) <= _MAX_NAME:
        return tag
    if tag != tag.lower() and _REFERENCE.fullmatch(tag.lower()):
        why = "repository name must be lowercase"
    else:
        why = "invalid reference format"
    raise UsageError(f'invalid tag "{tag}": {why}', "use [REGISTRY/]REPOSITORY[:TAG]")


def is_remote_context(context: str) -> bool:
    """Whether a context argument names a Git repository or an HTTP(S) tarball."""
    return context.startswith(_REMOTE_PREFIXES)


def resolve_context(context: str, dockerfile: str | None) -> tuple[str, str | None]:
    """Check the context and Dockerfile exist, with docker's rules, before any network.

    A local directory wins over a URL-looking name. For a local context the Dockerfile
    defaults to ``Dockerfile`` in it (``dockerfile`` as a fallback, as docker does); a
    relative ``-f`` is relative to the current directory. Remote and stdin contexts
    carry their own Dockerfile, so ``-f`` is passed through unchecked.

    Returns:
        The context and the Dockerfile path (None when the context carries it).

    Raises:
        UsageError: both the context and the Dockerfile are ``-``.
        ContextError: the context or the Dockerfile does not exist.
    """
    if context == "-":
        if dockerfile == "-":
            raise UsageError(
                "the context and the Dockerfile cannot both come from stdin",
                "pass a context directory with -f -",
            )
        return context, dockerfile
    if not os.path.isdir(context):
        if is_remote_context(context):
            return context, dockerfile
        why = "is not a directory" if os.path.exists(context) else "not found"
        raise ContextError(
            f'build context "{context}" {why}',
            "pass a directory, a Git or HTTP(S) URL, or - to read stdin",
        )
    if dockerfile == "-":
        return context, dockerfile
    if dockerfile is None:
        dockerfile = os.path.join(context, "Dockerfile")
        lower = os.path.join(context, "dockerfile")
        if not os.path.exists(dockerfile) and os.path.isfile(lower):
            dockerfile = lower
    if not os.path.isfile(dockerfile):
        why = "is not a file" if os.path.exists(dockerfile) else "not found"
        raise ContextError(
            f'Dockerfile "{dockerfile}" {why}',
            "pass its path with -f, or add a Dockerfile to the context",
        )
    return context, dockerfile


def check_daemon_address(address: str | None) -> str | None:
    """Check a ``--buildkit-host``/``BUILDKIT_HOST`` address has a supported scheme.

    Raises:
        UsageError: the scheme is not unix:// or tcp://, or tcp:// has no port.
    """
    if address is None:
        return None
    hint = "use unix:///path/to/buildkitd.sock or tcp://HOST:PORT"
    if not address.startswith(_DAEMON_SCHEMES):
        raise UsageError(f'unsupported buildkit host "{address}"', hint)
    rest = address.split("://", 1)[1].rstrip("/")
    if not rest or (address.startswith("tcp://") and not re.search(r":[0-9]+$", rest)):
        raise UsageError(f'invalid buildkit host "{address}"', hint)
    return address


def check_tls_files(address: str | None, ca: str | None, cert: str | None, key: str | None) -> None:
    """Check the TLS flags are consistent and name existing files.

    Raises:
        UsageError: TLS flags without a daemon address, a cert without its key (or the
            reverse), or a file that does not exist.
    """
    given = {"--tlscacert": ca, "--tlscert": cert, "--tlskey": key}
    if address is None and any(given.values()):
        raise UsageError(
            "TLS flags need --buildkit-host",
            "pass --buildkit-host tcp://HOST:PORT or set BUILDKIT_HOST",
        )
    if bool(cert) != bool(key):
        raise UsageError("--tlscert and --tlskey must be given together", None)
    for flag, path in given.items():
        if path and not os.path.isfile(path):
            raise UsageError(f'{flag} file "{path}" not found', None)
