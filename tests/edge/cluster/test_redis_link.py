"""The Redis client's failure policy (edge/cluster/redis_link.py): error replies count as Redis
being down; a command is retried once after a broken connection, never after a timeout; the
broadcast's listener never retries."""

from __future__ import annotations

import pytest
from redis import exceptions

from edge.cluster import redis_link
from edge.cluster.redis_link import REDIS_ERRORS, open_listener, open_redis
from tests.edge.cluster.fake_redis import CLOSE, FakeRedis


@pytest.fixture(autouse=True)
def quick_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_link, "COMMAND_TIMEOUT", 0.3)


async def test_an_error_reply_such_as_misconf_is_an_outage() -> None:
    async def misconf(command: list[bytes]) -> bytes:
        return b"-MISCONF Redis is configured to save RDB snapshots, but it cannot\r\n"

    async with FakeRedis(misconf) as server:
        client = open_redis(server.url)
        with pytest.raises(REDIS_ERRORS) as caught:
            await client.set("k", "v")
        await client.aclose()
    assert isinstance(caught.value, exceptions.ResponseError)
    assert issubclass(exceptions.NoPermissionError, REDIS_ERRORS)


async def test_a_broken_connection_is_retried_once() -> None:
    async def close_the_first(command: list[bytes]) -> bytes:
        return CLOSE if len(server.commands) == 1 else b"$1\r\nv\r\n"

    async with FakeRedis(close_the_first) as server:
        client = open_redis(server.url)
        assert await client.get("k") == b"v"
        await client.aclose()
    assert [c[0] for c in server.commands] == [b"GET", b"GET"]
    assert server.connections == 2


async def test_a_timed_out_command_is_not_sent_again() -> None:
    async def never(command: list[bytes]) -> None:
        return None  # it may have run: sending it again could run it twice

    async with FakeRedis(never) as server:
        client = open_redis(server.url)
        with pytest.raises(exceptions.TimeoutError):
            await client.evalsha("0" * 40, 0)
        await client.aclose()
    assert [c[0] for c in server.commands] == [b"EVALSHA"]


async def test_the_listener_never_retries() -> None:
    async def close_each(command: list[bytes]) -> bytes:
        return CLOSE

    async with FakeRedis(close_each) as server:
        client = open_listener(server.url)
        with pytest.raises(exceptions.ConnectionError):
            await client.get("k")
        await client.aclose()
    assert len(server.commands) == 1
