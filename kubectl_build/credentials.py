"""Registry credentials from the client's docker config (direct mode).

In cluster mode the same CredentialStore is filled from a Kubernetes Secret.
"""

from __future__ import annotations

import os

from kubectl_build.buildkit.session.auth import CredentialStore


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
    return CredentialStore.from_config_json(data, path)
