"""pytest plugin (entry point ``pytest11``): a ``client`` fixture for the module's ``app``.

Every pytest run in an environment with trioweb loads this module, test extra or not,
so it imports nothing beyond pytest: httpx and the test client load when a test asks
for ``client``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._app import App
    from .testing import TestClient


@pytest.fixture
async def client(app: App) -> AsyncIterator[TestClient]:
    """A :class:`~trioweb.testing.TestClient` for the ``app`` fixture of the test module."""
    from .testing import TestClient

    async with TestClient(app) as test_client:
        yield test_client
