"""The change broadcast on a real Redis: every node applies a change before ``publish`` returns;
a node that cannot hear changes stops trusting its caches, and starts again emptied."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from edge.cluster.broadcast import Broadcast, Change
from edge.cluster.redis_link import open_redis
from tests.redis_server import RedisServer


@dataclass
class Node:
    """One node's broadcast, and what it applied and was told about trusting its caches."""

    name: str
    applied: list[Change] = field(default_factory=list)
    trust: list[bool] = field(default_factory=list)

    async def apply(self, change: Change) -> None:
        await asyncio.sleep(0.05)  # applying takes time: publish must wait for it
        self.applied.append(change)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = open_redis(redis_url)
    yield client
    await client.aclose()


@dataclass
class Running:
    node: Node
    broadcast: Broadcast
    task: asyncio.Task[None]


@pytest.fixture
async def running(redis: Redis) -> AsyncIterator[list[Running]]:
    made: list[Running] = []
    for name in ("n1", "n2", "n3"):
        node = Node(name)
        broadcast = Broadcast(redis, node.apply, node.trust.append, name)
        made.append(Running(node, broadcast, asyncio.create_task(broadcast.run())))
    async with asyncio.timeout(5):
        for each in made:
            await each.broadcast.subscribed.wait()
    yield made
    for each in made:
        each.task.cancel()
        await asyncio.gather(each.task, return_exceptions=True)


async def test_publish_returns_once_every_other_node_applied_the_change(
    running: list[Running],
) -> None:
    await running[0].broadcast.publish(Change("key", "k_1"))
    nodes = [each.node for each in running]
    assert nodes[1].applied == nodes[2].applied == [Change("key", "k_1")]
    assert nodes[0].applied == []  # the publisher applied it itself before publishing
    assert all(node.trust == [True] for node in nodes)


async def test_a_node_cut_from_redis_stops_trusting_its_caches_until_it_hears_again(
    running: list[Running], redis_server: RedisServer
) -> None:
    nodes = [each.node for each in running]
    redis_server.stop()
    async with asyncio.timeout(10):
        while not all(node.trust[-1:] == [False] for node in nodes):
            await asyncio.sleep(0.02)
    # Publishing meanwhile is logged, not raised: the change is in the database already.
    await running[0].broadcast.publish(Change("key", "k_2"))
    redis_server.start()
    async with asyncio.timeout(10):
        while not all(node.trust[-1:] == [True] for node in nodes):
            await asyncio.sleep(0.02)
    await running[1].broadcast.publish(Change("machine", "t1/m1"))
    assert nodes[0].applied == nodes[2].applied == [Change("machine", "t1/m1")]
