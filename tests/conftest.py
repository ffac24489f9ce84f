"""Fixtures shared by the whole suite."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import TypeVar

import pytest

from tests.postgres_server import PostgresServer, find_bindir
from tests.redis_server import RedisServer, find_redis_server

# The agent and edge log every connect and reconnect; keep test output for what failed.
logging.getLogger("edge").setLevel(logging.WARNING)
logging.getLogger("agent").setLevel(logging.WARNING)

T = TypeVar("T")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _required(found: T | None, what: str, package: str) -> T:
    """What a test needs from the system; skipped without it, except in CI, where .ci/run
    installs ``package`` and the tests must run."""
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is not installed, and CI must run its tests (.ci/run)")
        pytest.skip(f"{what} is not installed (apt-get install {package})")
    return found


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole run, started when a test first needs it
    (tests/postgres_server.py)."""
    server = PostgresServer(_required(find_bindir(), "PostgreSQL", "postgresql"))
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database of the test's own on the session's server (a schema, to
    be quick: ``PostgresServer.new_schema``), dropped after."""
    url = postgres_server.new_schema()
    yield url
    postgres_server.drop_schema(url)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One throwaway Redis server for the whole run, started when a test first needs it
    (tests/redis_server.py)."""
    server = RedisServer(_required(find_redis_server(), "redis-server", "redis-server"))
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied before the test (counters and channels are per test)."""
    redis_server.start()  # a test before may have stopped it
    redis_server.flush()
    return redis_server.url
