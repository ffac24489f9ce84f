"""The change broadcast on a real Redis: every node applies a change before ``publish`` returns;
a node that cannot hear changes, for whatever reason, stops trusting its caches, and starts again
emptied only once Redis confirmed its subscription again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from redis.asyncio import Redis

from edge.cluster.broadcast import ACK_TIMEOUT, Broadcast, Change
from edge.cluster.redis_link import open_listener, open_redis
from tests.edge.cluster.conftest import Acl
from tests.edge.cluster.fake_redis import FakeRedis
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


@pytest.fixture
async def listener(redis_url: str) -> AsyncIterator[Redis]:
    client = open_listener(redis_url)
    yield client
    await client.aclose()


@dataclass
class Running:
    node: Node
    broadcast: Broadcast
    task: asyncio.Task[None]


@pytest.fixture
async def running(redis: Redis, listener: Redis) -> AsyncIterator[list[Running]]:
    made: list[Running] = []
    for name in ("n1", "n2", "n3"):
        node = Node(name)
        broadcast = Broadcast(redis, listener, node.apply, node.trust.append, name)
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


async def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.02)


async def test_processes_with_the_same_node_id_apply_each_others_changes(
    redis: Redis, listener: Redis
) -> None:
    twins = [Node("a"), Node("b")]
    broadcasts = [Broadcast(redis, listener, n.apply, n.trust.append, "edge-1") for n in twins]
    tasks = [asyncio.create_task(b.run()) for b in broadcasts]
    try:
        async with asyncio.timeout(5):
            for b in broadcasts:
                await b.subscribed.wait()
        assert await broadcasts[0].publish(Change("key", "k_1"))
        assert twins[1].applied == [Change("key", "k_1")]
        assert twins[0].applied == []  # only the publishing process itself skips it
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_broken_subscription_is_noticed_not_resumed_silently(
    running: list[Running], redis: Redis
) -> None:
    nodes = [each.node for each in running]
    assert await redis.client_kill_filter(_type="pubsub") == 3
    # Each stops trusting, subscribes again, and trusts (emptied) once Redis confirmed it.
    await _until(lambda: all(node.trust == [True, False, True] for node in nodes))
    assert await running[0].broadcast.publish(Change("key", "k_3"))
    assert nodes[1].applied == nodes[2].applied == [Change("key", "k_3")]


async def test_the_counters_dropping_their_connections_leaves_the_subscription_alone(
    running: list[Running], redis: Redis
) -> None:
    nodes = [each.node for each in running]
    await redis.connection_pool.disconnect()  # what SharedLimits does after a failure
    await asyncio.sleep(1.5)  # each subscription has read (timed out reading) since
    assert await running[0].broadcast.publish(Change("key", "k_4"))
    assert nodes[1].applied == [Change("key", "k_4")]
    assert all(node.trust == [True] for node in nodes)


async def test_an_error_reply_stops_the_trust_and_the_broadcast_subscribes_when_it_can(
    running: list[Running], acl: Acl
) -> None:
    nodes = [each.node for each in running]
    await acl("resetchannels")  # NOPERM for the channel: Redis drops the subscriptions too
    await _until(lambda: all(node.trust[-1:] == [False] for node in nodes))
    await asyncio.sleep(1.2)  # a few subscriptions refused with -NOPERM meanwhile
    assert not any(each.task.done() for each in running)
    assert all(node.trust[-1:] == [False] for node in nodes)
    await acl("allchannels")
    await _until(lambda: all(node.trust[-1:] == [True] for node in nodes))
    assert await running[1].broadcast.publish(Change("aliases", "t1"))
    assert nodes[0].applied == nodes[2].applied == [Change("aliases", "t1")]


async def test_a_refused_publish_is_tried_again_within_its_wait() -> None:
    async def misconf_twice(command: list[bytes]) -> bytes:
        if len(server.commands) <= 2:
            return b"-MISCONF Redis is configured to save RDB snapshots\r\n"
        return b":0\r\n"

    async with FakeRedis(misconf_twice) as server:
        client = open_redis(server.url)
        node = Node("n1")
        broadcast = Broadcast(client, client, node.apply, node.trust.append, "n1")
        assert await broadcast.publish(Change("key", "k_5"))
        await client.aclose()
    assert [c[0] for c in server.commands] == [b"PUBLISH"] * 3


async def test_a_publish_that_keeps_failing_is_an_error_within_its_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def misconf(command: list[bytes]) -> bytes:
        return b"-MISCONF Redis is configured to save RDB snapshots\r\n"

    async with FakeRedis(misconf) as server:
        client = open_redis(server.url)
        node = Node("n1")
        broadcast = Broadcast(client, client, node.apply, node.trust.append, "n1")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with caplog.at_level(logging.ERROR, "edge.cluster.broadcast"):
            assert not await broadcast.publish(Change("key", "k_6"))
        assert loop.time() - started <= ACK_TIMEOUT + 0.5
        await client.aclose()
    assert len(server.commands) > 2
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "could not be broadcast" in errors[0].getMessage()
