"""The store's tests run on every implementation: ``store`` is SQLite in the test's directory, then
PostgreSQL in a database of the test's own (tests/conftest.py), both opened by ``open_store``
as the edge opens them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge.store import Store, open_store


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite (``open_store``'s default), else a new PostgreSQL database's URL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
async def store(database_url: str | None, tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(database_url, tmp_path)
    yield opened
    await opened.close()
