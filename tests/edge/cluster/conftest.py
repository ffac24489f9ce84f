"""Fixtures of the cluster's tests: a way to make the test Redis refuse commands with error
replies (NOPERM, through its ACL) and to restore it after."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

Acl = Callable[..., Awaitable[None]]


@pytest.fixture
async def acl(redis_url: str) -> AsyncIterator[Acl]:
    """``await acl("-set", …)`` changes the default user's rules (the edge's clients are that
    user): Redis then answers the commands it lost with ``-NOPERM`` on every open connection.
    Everything is allowed again after the test."""
    client = Redis.from_url(redis_url)

    async def setuser(*rules: str) -> None:
        # Not acl_setuser: it takes keyword arguments, and rules here are ACL's own syntax.
        await client.execute_command("ACL", "SETUSER", "default", *rules)  # type: ignore[no-untyped-call]

    yield setuser
    await setuser("reset", "on", "nopass", "~*", "&*", "+@all")
    await client.aclose()
