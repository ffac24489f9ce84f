"""Changes every node must hear at once: revocations, rotations, alias changes (Redis pub/sub).

A node that changes a key, a machine or an alias in PostgreSQL publishes it on one channel; every
node (itself included) applies it to what it holds in memory (``apply``: drop the key from its
cache, close the revoked machine's tunnel, forget the tenant's aliases) and acknowledges it. The
publisher waits, a bounded time, until every subscriber has acknowledged, so that when the admin
API answers "revoked" no node serves the key again (docs/ARCHITECTURE.md "Several edge nodes").

Pub/sub does not keep messages for a subscriber that is away, so a node trusts its caches only
while it is subscribed: when its subscription breaks it stops trusting them (every lookup goes to
PostgreSQL), and when it subscribes again it empties them first (``on_subscribed``), since it
may have missed anything in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from edge.cluster.redis_link import REDIS_ERRORS, key

log = logging.getLogger(__name__)

CHANNEL = key("changes")
ACK_TIMEOUT = 2.0  # seconds a publisher waits for every node to have applied its change
ACK_TTL = 30  # seconds an acknowledgment list is kept
RESUBSCRIBE_DELAY = 0.5  # seconds between attempts while Redis is away
BLOCK = 0.5  # seconds one wait for an acknowledgment may block a connection


@dataclass(frozen=True, slots=True)
class Change:
    """What changed: ``kind`` is ``key`` (revoked or rotated: ``subject`` its id), ``machine``
    (revoked: ``tenant_id/machine_id``) or ``aliases`` (``subject`` the tenant id)."""

    kind: str
    subject: str


class Broadcast:
    """Publishes this node's changes; applies every node's (``run``)."""

    def __init__(
        self,
        redis: Redis,
        apply: Callable[[Change], Awaitable[None]],
        on_trust: Callable[[bool], None],
        node_id: str,
    ) -> None:
        """``apply`` applies another node's change; ``on_trust(False)`` when this node stops
        hearing changes (its caches must not be trusted), ``on_trust(True)`` once it hears them
        again (after emptying its caches)."""
        self._redis = redis
        self._apply = apply
        self._on_trust = on_trust
        self.node_id = node_id
        self.subscribed = asyncio.Event()

    async def publish(self, change: Change) -> None:
        """Tell every node, and wait (at most ``ACK_TIMEOUT``) until each has applied it. Redis
        being away is logged, not raised: the change is in PostgreSQL, and nodes that cannot hear
        it do not trust their caches."""
        change_id = secrets.token_hex(8)
        message = json.dumps(
            {"node": self.node_id, "id": change_id, "kind": change.kind, "subject": change.subject}
        )
        acks = key("acks", change_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ACK_TIMEOUT
        try:
            receivers = int(await self._redis.publish(CHANNEL, message))
            heard = 0
            while heard < receivers and (left := deadline - loop.time()) > 0:
                # Below the client's command timeout: a blocking pop is a command too.
                if await self._redis.blpop([acks], timeout=min(BLOCK, left)) is not None:
                    heard += 1
            if heard < receivers:
                log.warning("a %s change was not acknowledged by every node in time", change.kind)
        except REDIS_ERRORS as exc:
            log.warning("Redis cannot answer (%s): a %s change was not broadcast", exc, change.kind)

    async def run(self) -> None:
        """Subscribe and apply changes until cancelled, subscribing again after a failure."""
        while True:
            try:
                await self._listen()
            except REDIS_ERRORS as exc:
                log.warning("the change broadcast is cut (%s): caches are bypassed", exc)
            self.subscribed.clear()
            self._on_trust(False)
            await asyncio.sleep(RESUBSCRIBE_DELAY)

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CHANNEL)
            self._on_trust(True)  # empties the caches, which missed what came while away
            self.subscribed.set()
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "message":
                    await self._received(message["data"])
        finally:
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py

    async def _received(self, data: bytes) -> None:
        try:
            fields = json.loads(data)
            change = Change(str(fields["kind"]), str(fields["subject"]))
            origin, change_id = str(fields["node"]), str(fields["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed change message")
            return
        if origin != self.node_id:  # the publisher applied it before publishing
            try:
                await self._apply(change)
            except Exception:
                log.exception("applying a %s change failed", change.kind)
        acks = key("acks", change_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(acks, self.node_id)
            pipe.expire(acks, ACK_TTL)
            await pipe.execute()
