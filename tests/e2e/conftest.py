from __future__ import annotations

import pytest

from tests.e2e.helpers import Testbed, load_testbed
from tests.e2e.release import Release, built_release


@pytest.fixture(scope="session")
def testbed() -> Testbed:
    return load_testbed()


@pytest.fixture(scope="session")
def release() -> Release:
    return built_release()
