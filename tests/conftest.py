"""Fixtures shared by the whole suite."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from tests.postgres_server import PostgresServer, find_bindir
from tests.redis_server import RedisServer, find_redis_server

# The agent and edge log every connect and reconnect; keep test output for what failed.
logging.getLogger("edge").setLevel(logging.WARNING)
logging.getLogger("agent").setLevel(logging.WARNING)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole run, started when a test first needs it
    (tests/postgres_server.py). Without PostgreSQL the tests that need it skip, except in CI,
    where .ci/run installs it and they must run."""
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed, and CI must run its tests (.ci/run)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer(bindir)
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
    (tests/redis_server.py). Without ``redis-server`` the tests that need it skip, except in CI,
    where .ci/run installs it and they must run."""
    program = find_redis_server()
    if program is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed, and CI must run its tests (.ci/run)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(program)
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
