"""pytest plugin (entry point ``pytest11``): a ``client`` fixture for the module's ``app``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._app import App
from .testing import TestClient


@pytest.fixture
async def client(app: App) -> AsyncIterator[TestClient]:
    """A :class:`~trioweb.testing.TestClient` for the ``app`` fixture of the test module."""
    async with TestClient(app) as test_client:
        yield test_client
