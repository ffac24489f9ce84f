"""Changes every node must hear at once: revocations, rotations, alias changes (Redis pub/sub).

A node that changes a key, a machine or an alias in PostgreSQL publishes it on one channel; every
node (itself included) applies it to what it holds in memory (``apply``: drop the key from its
cache, close the revoked machine's tunnel, forget the tenant's aliases) and acknowledges it. The
publisher waits, a bounded time, until every subscriber has acknowledged, so that when the admin
API answers "revoked" no node serves the key again (docs/ARCHITECTURE.md "Several edge nodes").

Pub/sub does not keep messages for a subscriber that is away, so a node trusts its caches only
while it is subscribed: when its subscription breaks, or ends for any reason, it stops trusting
them (every lookup goes to PostgreSQL), and once Redis has confirmed a new subscription it
empties them and trusts them again (``on_trust``), since it may have missed anything in between.
The subscription is on a connection of its own that never reconnects by itself
(``redis_link.open_listener``): redis-py's reconnection would subscribe again silently, and the
node would trust caches that missed changes.

A change that cannot be published at all (Redis refused it for the whole of ``ACK_TIMEOUT``) is
logged as an error; a node that missed it still drops the key within ``KeyCache``'s max age.
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
from redis.asyncio.client import PubSub

from edge.cluster.redis_link import COMMAND_TIMEOUT, REDIS_ERRORS, key
from edge.store.cache import MAX_AGE

log = logging.getLogger(__name__)

CHANNEL = key("changes")
ACK_TIMEOUT = 2.0  # seconds a publisher waits for every node to have applied its change
ACK_TTL = 30  # seconds an acknowledgment list is kept
RESUBSCRIBE_DELAY = 0.5  # seconds between attempts while Redis is away
BLOCK = 0.5  # seconds one wait for an acknowledgment may block a connection
PUBLISH_RETRY = 0.2  # seconds between attempts to publish, within ACK_TIMEOUT
CONFIRM_TIMEOUT = COMMAND_TIMEOUT  # seconds Redis has to confirm a subscription


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
        listener: Redis,
        apply: Callable[[Change], Awaitable[None]],
        on_trust: Callable[[bool], None],
        node_id: str,
    ) -> None:
        """``redis`` publishes and acknowledges; ``listener`` (``redis_link.open_listener``: no
        silent reconnection) holds the subscription. ``apply`` applies another node's change;
        ``on_trust(False)`` when this node stops hearing changes (its caches must not be
        trusted), ``on_trust(True)`` once it hears them again (after emptying its caches)."""
        self._redis = redis
        self._listener = listener
        self._apply = apply
        self._on_trust = on_trust
        self.node_id = node_id
        # Which changes this process published (and so applied already). Not the node id: two
        # processes started with the same --node-id would each skip the other's changes.
        self.origin = secrets.token_hex(8)
        self.subscribed = asyncio.Event()

    async def publish(self, change: Change) -> bool:
        """Tell every node, and wait (at most ``ACK_TIMEOUT``) until each has applied it;
        ``False`` when not every node is known to have. Redis being away is logged, not raised:
        the change is in PostgreSQL already, nodes that cannot hear it do not trust their caches,
        and a node that missed it anyway drops the key within ``KeyCache`` max age."""
        change_id = secrets.token_hex(8)
        message = json.dumps(
            {
                "node": self.node_id,
                "origin": self.origin,
                "id": change_id,
                "kind": change.kind,
                "subject": change.subject,
            }
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ACK_TIMEOUT
        receivers = await self._publish(message, deadline)
        if receivers is None:
            log.error(
                "a %s change could not be broadcast: other nodes may serve from their caches "
                "what it changed for up to %.0f s",
                change.kind,
                MAX_AGE,
            )
            return False
        acks = key("acks", change_id)
        heard = 0
        try:
            while heard < receivers and (left := deadline - loop.time()) > 0:
                # Below the client's command timeout: a blocking pop is a command too.
                if await self._redis.blpop([acks], timeout=min(BLOCK, left)) is not None:
                    heard += 1
        except REDIS_ERRORS as exc:
            log.warning("Redis cannot answer (%s): acknowledgments of a change not read", exc)
        if heard < receivers:
            log.warning("a %s change was not acknowledged by every node in time", change.kind)
            return False
        return True

    async def _publish(self, message: str, deadline: float) -> int | None:
        """PUBLISH, tried again until ``deadline``; how many subscribers got it, ``None`` if
        it could not be sent. Sending it twice is harmless (applying a change is idempotent)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                return int(await self._redis.publish(CHANNEL, message))
            except REDIS_ERRORS as exc:
                if loop.time() + PUBLISH_RETRY >= deadline:
                    log.warning("Redis cannot answer (%s): a change was not published", exc)
                    return None
            await asyncio.sleep(PUBLISH_RETRY)

    async def run(self) -> None:
        """Subscribe and apply changes until cancelled, subscribing again after a failure."""
        while True:
            try:
                await self._listen()
            except REDIS_ERRORS as exc:
                log.warning("the change broadcast is cut (%s): caches are bypassed", exc)
            except Exception:
                # A bug must not end the subscription for good: log it, subscribe again.
                log.exception("the change broadcast failed: caches are bypassed")
            finally:
                # Whatever ended the subscription (cancellation included), this node no longer
                # hears changes: it must not trust what it cached.
                self.subscribed.clear()
                self._on_trust(False)
            await asyncio.sleep(RESUBSCRIBE_DELAY)

    async def _listen(self) -> None:
        pubsub = self._listener.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            await self._confirmed(pubsub)
            # Only now does Redis send this node every change: empty the caches, which missed
            # what came while away, and trust them again.
            self._on_trust(True)
            self.subscribed.set()
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message.get("type") == "message":
                    await self._received(message["data"])
        finally:
            with contextlib.suppress(*REDIS_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py

    async def _confirmed(self, pubsub: PubSub) -> None:
        """Wait for Redis's confirmation of the subscription (``TimeoutError`` if it does not
        come in time): SUBSCRIBE is only sent when ``subscribe`` returns."""
        async with asyncio.timeout(CONFIRM_TIMEOUT):
            while True:
                message = await pubsub.get_message(timeout=CONFIRM_TIMEOUT)
                if message is not None and message.get("type") == "subscribe":
                    return

    async def _received(self, data: bytes) -> None:
        try:
            fields = json.loads(data)
            change = Change(str(fields["kind"]), str(fields["subject"]))
            origin, change_id = str(fields.get("origin", "")), str(fields["id"])
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignored a malformed change message")
            return
        if origin != self.origin:  # this process applied it before publishing
            try:
                await self._apply(change)
            except Exception:
                log.exception("applying a %s change failed", change.kind)
        acks = key("acks", change_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.rpush(acks, self.node_id)
            pipe.expire(acks, ACK_TTL)
            await pipe.execute()
