"""Registry credentials of a cluster build.

The Secret named like the builder (or ``--registry-secret``), read early by kubectl or
through the API, and waited for only when the daemon first asks.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable

from kubectl_build.buildkit.session.auth import Credential, CredentialStore
from kubectl_build.console import Console
from kubectl_build.errors import ClusterError, KubectlBuildError
from kubectl_build.kube.config import KubeOptions, connect
from kubectl_build.kube.pod_exec import EarlySecret
from kubectl_build.options.build import BuildOptions

CREDENTIALS_TIMEOUT = 60.0


class DeferredCredentials(CredentialStore):
    """Credentials read in a background thread; lookups wait for them (bounded)."""

    def __init__(self, load: Callable[[], tuple[CredentialStore, str | None]],
                 console: Console) -> None:
        super().__init__()
        self._console = console
        self._done = threading.Event()
        self._store = CredentialStore()
        self._secret: str | None = None
        self.problem: str | None = None
        threading.Thread(target=self._run, args=(load,), name="kb-creds", daemon=True).start()

    def _run(self, load: Callable[[], tuple[CredentialStore, str | None]]) -> None:
        try:
            for attempt in range(3):
                try:
                    self._store, self._secret = load()
                    return
                except ClusterError as err:  # the API was busy or unreachable: try again
                    self.problem = err.one_line()
                    time.sleep(0.5 * (attempt + 1))
                except KubectlBuildError as err:
                    self.problem = err.one_line()
                    return
        finally:
            if self.problem and self._secret is None:
                # The builder-named Secret is optional: anonymous access.
                self._console.trace(f"registry secret not used: {self.problem}")
            self._done.set()

    def lookup(self, host: str) -> Credential | None:
        """Wait for the Secret, then look the host up."""
        if not self._done.is_set():
            asked = time.monotonic()
            self._done.wait(CREDENTIALS_TIMEOUT)
            self._console.trace(f"credentials for {host} waited {time.monotonic() - asked:.3f}s "
                                "for the registry secret")
        return self._store.lookup(host)

    @property
    def secret(self) -> str | None:
        """namespace/name of the Secret in use, once read."""
        self._done.wait(CREDENTIALS_TIMEOUT)
        return self._secret


def read_credentials(options: BuildOptions) -> tuple[CredentialStore, str | None]:
    """The registry Secret's credentials through the API (``--registry-secret`` or the builder's name)."""
    from kubectl_build.kube.registry_secret import load_credentials

    kube = connect(KubeOptions(kubeconfig=options.kubeconfig, context=options.kube_context,
                               namespace=options.namespace))
    found = load_credentials(kube, options.registry_secret, options.builder)
    return found.store, found.secret


def secret_from_kubectl(early: EarlySecret) -> tuple[CredentialStore, str | None] | None:
    """The builder-named Secret as the early `kubectl get secret` read it.

    None when kubectl gave no clear answer (the client then asks the API itself). Absent
    or forbidden means anonymous, as for the API client (the Secret is optional).
    """
    from kubectl_build.kube.registry_secret import parse_secret

    namespace, name, _ = early.key
    try:
        out, err = early.process.communicate(timeout=CREDENTIALS_TIMEOUT)
    except subprocess.TimeoutExpired:
        early.process.kill()
        early.process.communicate()
        return None
    if early.process.returncode != 0:
        text = err.decode(errors="replace")
        return (CredentialStore(), None) if "(NotFound)" in text or "(Forbidden)" in text else None
    try:
        doc = json.loads(out)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("data") or {}, dict):
        return None
    data = {str(k): str(v) for k, v in (doc.get("data") or {}).items()}
    return parse_secret(namespace, name, str(doc.get("type") or ""), data), f"{namespace}/{name}"
