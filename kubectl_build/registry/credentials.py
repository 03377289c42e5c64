"""Registry credentials from the client's docker config (direct mode).

Docker's rules: for a registry host, `credHelpers[host]` names the credential helper,
else `credsStore` does, else the `auths` entries hold the credentials. A helper is the
executable `docker-credential-<name>` on PATH, asked with `get` and the server URL on
stdin. Helpers run lazily, once per host, when the daemon asks the session's Auth
service for that registry: a build that needs no registry never starts one.

In cluster mode the same CredentialStore is filled from a Kubernetes Secret.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kubectl_build.buildkit.session.auth import (
    DOCKER_HUB_KEY,
    Credential,
    CredentialStore,
    normalise_host,
)
from kubectl_build.errors import KubectlBuildError, RegistryAuthError, UsageError

HELPER_PREFIX = "docker-credential-"
# Desktop helpers may wait for a keychain unlock; a build must not hang on one forever.
HELPER_TIMEOUT = 30.0
# docker-credential-helpers' username for an identity (refresh) token.
TOKEN_USERNAME = "<token>"
# Helpers report a missing entry as an error whose text starts like this
# ("credentials not found in native keychain"); docker treats it as "no login".
_NOT_FOUND = "credentials not found"
_DETAIL_LIMIT = 200


def docker_config_path() -> str:
    """$DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    folder = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(folder, "config.json")


def docker_config_store() -> CredentialStore:
    """Credentials from the docker config file; empty when there is none."""
    path = docker_config_path()
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return CredentialStore()
    return store_from_config(data, path)


# ------------------------------------------------------------------ configuration


@dataclass(frozen=True)
class HelperConfig:
    """Which credential helper serves which host (config.json credsStore/credHelpers)."""

    creds_store: str | None = None
    cred_helpers: Mapping[str, str] | None = None

    def helper_for(self, host: str) -> tuple[str, str] | None:
        """(helper name, config key that chose it) for a host, or None for `auths`."""
        key = normalise_host(host)
        for configured, name in (self.cred_helpers or {}).items():
            if normalise_host(configured) == key:
                return name, f"credHelpers[{configured}]"
        if self.creds_store:
            return self.creds_store, "credsStore"
        return None

    @property
    def empty(self) -> bool:
        """True when no helper is configured at all."""
        return not self.creds_store and not self.cred_helpers


def _helper_name(value: object, where: str, source: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{where} in {source} must be a string", "fix the docker config file")
    if "/" in value or value != value.strip():
        # The name becomes part of an executable name: never a path.
        raise UsageError(f"{where} in {source} is not a credential helper name: {value!r}",
                         "use the helper's short name, e.g. \"pass\" for docker-credential-pass")
    return value


def parse_helper_config(document: bytes, source: str) -> HelperConfig:
    """CredsStore and credHelpers of a config.json (absent: no helpers)."""
    try:
        doc = json.loads(document)
    except ValueError as err:
        raise UsageError(f"{source} is not valid JSON", "fix the docker config file") from err
    if not isinstance(doc, dict):
        return HelperConfig()
    store = doc.get("credsStore")
    creds_store = _helper_name(store, "credsStore", source) if store else None
    helpers = doc.get("credHelpers") or {}
    if not isinstance(helpers, dict):
        raise UsageError(f"credHelpers in {source} must be a map of host to helper name",
                         "fix the docker config file")
    cred_helpers = {str(host): _helper_name(name, f"credHelpers[{host}]", source)
                    for host, name in helpers.items() if name}
    return HelperConfig(creds_store, cred_helpers)


def store_from_config(document: bytes, source: str) -> CredentialStore:
    """The store for a config.json: plain `auths`, or helper-backed when helpers are set."""
    auths = CredentialStore.from_config_json(document, source)
    helpers = parse_helper_config(document, source)
    if helpers.empty:
        return auths
    return HelperCredentialStore(auths, helpers, source)


# ------------------------------------------------------------------ helper protocol


def server_url(host: str) -> str:
    """The server URL docker hands a helper: Docker Hub by its legacy key, else the host."""
    key = normalise_host(host)
    return DOCKER_HUB_KEY if key == "docker.io" else key


def parse_helper_output(output: bytes, program: str) -> Credential | None:
    """A successful `get` answer: {"ServerURL", "Username", "Secret"}; None when empty."""
    try:
        doc = json.loads(output)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise RegistryAuthError(f"credential helper {program} returned malformed output",
                                f"check that {program} implements the docker credential "
                                "helper protocol")
    username, secret = doc.get("Username", ""), doc.get("Secret", "")
    if not isinstance(username, str) or not isinstance(secret, str):
        raise RegistryAuthError(f"credential helper {program} returned malformed output",
                                f"check that {program} implements the docker credential "
                                "helper protocol")
    if not username and not secret:
        return None
    if username == TOKEN_USERNAME:
        return Credential("", secret)  # an identity token goes to the daemon as the secret
    return Credential(username, secret)


def is_not_found(output: bytes) -> bool:
    """The helper's error text says it has no entry for the server."""
    return output.decode("utf-8", "replace").strip().lower().startswith(_NOT_FOUND)


def failure_detail(output: bytes) -> str:
    """First line of a helper's error text, for the message.

    Never something JSON-shaped, which could be a credential printed on the way to failing.
    """
    text = output.decode("utf-8", "replace").strip()
    first = text.splitlines()[0].strip() if text else ""
    if not first or first.startswith(("{", "[")):
        return ""
    return first[:_DETAIL_LIMIT]


def run_helper(name: str, host: str, timeout: float = HELPER_TIMEOUT) -> Credential | None:
    """Ask `docker-credential-<name> get` for a host; None when it has no entry."""
    program = HELPER_PREFIX + name
    path = shutil.which(program)
    if path is None:
        raise RegistryAuthError(f"credential helper {program} not found on PATH",
                                f"install {program} or change the docker config")
    try:
        done = subprocess.run([path, "get"], input=server_url(host).encode(),
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RegistryAuthError(f"credential helper {program} did not answer within "
                                f"{timeout:g}s for {host}",
                                f"check that {program} works: echo {server_url(host)} | "
                                f"{program} get") from None
    except OSError as err:
        raise RegistryAuthError(f"credential helper {program} could not be run: "
                                f"{err.strerror or err}", f"check {path}") from None
    if done.returncode == 0:
        return parse_helper_output(done.stdout, program)
    if is_not_found(done.stdout) or is_not_found(done.stderr):
        return None
    detail = failure_detail(done.stdout) or failure_detail(done.stderr)
    raise RegistryAuthError(
        f"credential helper {program} failed for {host} (exit code {done.returncode})"
        + (f": {detail}" if detail else ""),
        f"check that {program} works: echo {server_url(host)} | {program} get")


# ------------------------------------------------------------------ the store

HelperRunner = Callable[[str, str], Credential | None]


class HelperCredentialStore(CredentialStore):
    """`auths` plus credential helpers, asked lazily and once per host.

    A host served by a helper never falls back to `auths` (docker does not either):
    a helper without an entry means anonymous access. A helper that is missing or
    fails raises RegistryAuthError at lookup time, and keeps raising it for that host.
    """

    def __init__(self, auths: CredentialStore, helpers: HelperConfig, source: str,
                 runner: HelperRunner = run_helper) -> None:
        super().__init__({host: cred for host in auths.hosts
                          if (cred := auths.lookup(host)) is not None})
        self._helpers = helpers
        self._source = source
        self._runner = runner
        self._guard = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._answers: dict[str, Credential | None | KubectlBuildError] = {}

    def lookup(self, host: str) -> Credential | None:
        """Helper answer for the host (cached), else the `auths` entry."""
        chosen = self._helpers.helper_for(host)
        if chosen is None:
            return super().lookup(host)
        key = normalise_host(host)
        with self._guard:
            lock = self._host_locks.setdefault(key, threading.Lock())
        with lock:  # concurrent asks for one host (a multi-platform push) run it once
            if key not in self._answers:
                self._answers[key] = self._ask(chosen, host)
            answer = self._answers[key]
        if isinstance(answer, KubectlBuildError):
            raise answer
        return answer

    def _ask(self, chosen: tuple[str, str], host: str) -> Credential | None | KubectlBuildError:
        name, why = chosen
        try:
            return self._runner(name, host)
        except KubectlBuildError as err:
            return err.evolve(detail=f"{why} in {self._source}")

    @property
    def hosts(self) -> list[str]:
        """Hosts with `auths` entries or their own helper (never the secrets)."""
        named = {normalise_host(h) for h in self._helpers.cred_helpers or {}}
        return sorted(set(super().hosts) | named)
