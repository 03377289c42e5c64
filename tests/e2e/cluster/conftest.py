"""Fixtures every cluster test module shares: the test bed's env and a fresh namespace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.cluster import support


@pytest.fixture(scope="session")
def cluster_env() -> dict[str, str]:
    return support.cluster_env()


@pytest.fixture
def namespace(cluster_env: dict[str, str]) -> Iterator[str]:
    """A namespace for one test; modules that share one across tests override this."""
    with support.namespace(cluster_env, "kb", wait=False) as name:
        yield name
