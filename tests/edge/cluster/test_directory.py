"""The node directory (edge/cluster/directory.py): an entry in Redis that NODES' rules refuse
is left out (and logged once) instead of making the whole frame unsendable; and on a real Redis,
whatever Redis answers or whatever fails, the node stays in the cluster and writes its entry
again as soon as it can."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import cast

import pytest
from redis.asyncio import Redis

from edge.agents.registry import Registry
from edge.agents.session import AgentSession
from edge.cluster.directory import Directory, NodeEntry
from edge.cluster.redis_link import key, open_redis
from tests.edge.cluster.conftest import Acl

ENTRY = key("node", "n1")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = open_redis(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def directory(redis: Redis) -> AsyncIterator[tuple[Directory, asyncio.Task[None]]]:
    registry: Registry[AgentSession] = Registry()
    made = Directory(redis, "n1", "https://n1.example.com", registry)
    task = asyncio.create_task(made.run())
    yield made, task
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _written(redis: Redis) -> None:
    async with asyncio.timeout(5):
        while not await redis.exists(ENTRY):
            await asyncio.sleep(0.05)


async def test_error_replies_do_not_end_the_task_and_it_writes_again_after(
    redis: Redis, directory: tuple[Directory, asyncio.Task[None]], acl: Acl
) -> None:
    _, task = directory
    await _written(redis)
    await acl("-set")  # every write answered -NOPERM, as -MISCONF would be
    await redis.delete(ENTRY)
    await asyncio.sleep(1.5)  # three refreshes refused
    assert not task.done()
    assert not await redis.exists(ENTRY)
    await acl("+set")
    await _written(redis)


async def test_an_unforeseen_failure_does_not_end_the_task(
    redis: Redis, directory: tuple[Directory, asyncio.Task[None]], monkeypatch: pytest.MonkeyPatch
) -> None:
    made, task = directory
    await _written(redis)
    refresh = made.refresh
    failures = 0

    async def broken() -> None:
        nonlocal failures
        failures += 1
        if failures <= 2:
            raise RuntimeError("a bug")
        await refresh()

    monkeypatch.setattr(made, "refresh", broken)
    await redis.delete(ENTRY)
    await _written(redis)
    assert failures > 2 and not task.done()


def entry(node_id: str, url: str) -> NodeEntry:
    return NodeEntry(node_id, url, False, ())


def test_entries_nodes_would_refuse_are_left_out(caplog: pytest.LogCaptureFixture) -> None:
    registry: Registry[AgentSession] = Registry()
    directory = Directory(cast(Redis, None), "node-1", "https://node-1.example.com", registry)
    directory.view = {
        "node-2": entry("node-2", "https://node-2.example.com"),
        "long": entry("n" * 65, "https://node-3.example.com"),
        "bare": entry("node-4", "node-4.example.com"),  # no scheme
        "ctl": entry("node\x005", "https://node-5.example.com"),
    }
    with caplog.at_level(logging.WARNING):
        frame = directory.nodes_frame()
        assert frame is not None
        frame.check()  # sendable
        assert frame.nodes == [
            ["node-1", "https://node-1.example.com"],
            ["node-2", "https://node-2.example.com"],
        ]
        directory.nodes_frame()
    refused = [r for r in caplog.records if "left out of NODES" in r.getMessage()]
    assert len(refused) == 3  # once each, not once per announcement
