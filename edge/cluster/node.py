"""This edge node's part in the cluster: its Redis client, shared limits and change broadcast,
opened with the edge's state and run beside it (docs/ARCHITECTURE.md "Several edge nodes")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from redis import exceptions
from redis.asyncio import Redis

from edge import credentials
from edge.agents.registry import Registry
from edge.agents.session import AgentSession
from edge.cluster.broadcast import Broadcast, Change
from edge.cluster.counters import SharedLimits
from edge.cluster.directory import Directory
from edge.cluster.hop import CONNECT_TIMEOUT, Hop
from edge.cluster.hop_auth import SeenNonces, hop_key
from edge.cluster.redis_link import (
    REDIS_ERRORS,
    BadRedisUrl,
    describe,
    open_listener,
    open_redis,
)
from edge.cluster.routing import ClusterRouter
from edge.config import EdgeConfig
from edge.store import Clock, OpenFailed
from edge.store.cache import MAX_AGE, CachedStore
from protocol import ErrorCode

log = logging.getLogger(__name__)

RESTART_DELAY = 1.0  # seconds before a background task that ended is started again

# What keeps a node from joining at start: Redis away, or refusing the URL's credentials.
_START_ERRORS: tuple[type[BaseException], ...] = (
    *REDIS_ERRORS,
    exceptions.AuthenticationError,
    exceptions.ResponseError,
)


@dataclass(slots=True)
class ClusterNode:
    """What one node shares with the others through Redis."""

    node_id: str
    redis: Redis
    listener: Redis  # the broadcast's subscription (redis_link.open_listener)
    limits: SharedLimits
    broadcast: Broadcast
    directory: Directory
    router: ClusterRouter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    nonces: SeenNonces = field(default_factory=SeenNonces)  # of the hops this node accepted

    @property
    def hop_key(self) -> bytes:
        return self.router.hop.key

    async def published(self, kind: str, subject: str) -> None:
        """``edge.store.cache.Changes``: tell every node (and wait until each has applied it)."""
        await self.broadcast.publish(Change(kind, subject))

    def start(self) -> None:
        """Run the background work: settlements and renewals, the change subscription."""
        self.tasks = [
            asyncio.create_task(supervised("cluster-limits", self.limits.run)),
            asyncio.create_task(supervised("cluster-broadcast", self.broadcast.run)),
            asyncio.create_task(supervised("cluster-directory", self.directory.run)),
        ]

    async def leave(self) -> None:
        """Draining: the other nodes stop routing here, agents stop being told of this node."""
        await self.directory.leave()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.directory.remove()
        await self.router.hop.client.close()
        for client in (self.listener, self.redis):
            with contextlib.suppress(*REDIS_ERRORS):
                await client.aclose()


async def supervised(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run ``run`` until cancelled, starting it again if it ends. Each loop handles its own
    failures; this is for the one it did not foresee, which would otherwise end the task with
    nobody to log it (the exception stays in the task until ``close``) and leave the node
    without its limits, its subscription or its place in the directory."""
    while True:
        try:
            await run()
            log.error("the %s task ended: starting it again", name)
        except Exception:
            log.exception("the %s task failed: starting it again", name)
        await asyncio.sleep(RESTART_DELAY)


async def open_cluster(
    config: EdgeConfig,
    store: CachedStore,
    registry: Registry[AgentSession],
    clock: Clock,
) -> ClusterNode:
    """Join the cluster at ``config.redis_url``. ``OpenFailed`` (one line, no password) when
    Redis cannot be reached or refuses the credentials at start: a node that starts without it
    would silently run on its outage policies."""
    assert config.redis_url is not None
    try:
        redis = open_redis(config.redis_url)
    except BadRedisUrl as exc:
        raise OpenFailed(str(exc)) from None
    try:
        await redis.ping()
    except _START_ERRORS as exc:
        await redis.aclose()
        raise OpenFailed(f"cannot reach Redis at {describe(config.redis_url)}: {exc}") from None
    node_id = config.node_id or secrets.token_hex(6)
    cache = store.key_cache
    cache.trust(False)  # until subscribed: changes made before then were not heard
    cache.max_age = MAX_AGE  # a change whose broadcast failed still reaches this cache

    def on_trust(trusted: bool) -> None:
        cache.trust(trusted)
        if trusted:
            store.aliases.forget()

    async def apply(change: Change) -> None:
        await apply_change(change, store, registry)

    listener = open_listener(config.redis_url)
    broadcast = Broadcast(redis, listener, apply, on_trust, node_id)
    limits = SharedLimits(redis, store, config.reservation_ttl, clock=clock)
    directory = Directory(redis, node_id, config.advertise_url, registry)
    secret = credentials.load_or_create_server_secret(config.data_dir / "server.secret")
    hop = Hop(node_id, hop_key(secret), _peer_client(config))
    router = ClusterRouter(registry, directory, hop, config)
    node = ClusterNode(node_id, redis, listener, limits, broadcast, directory, router)
    store.changes = node
    return node


def _peer_client(config: EdgeConfig) -> aiohttp.ClientSession:
    """The HTTP client of the hop to other nodes: their certificates verified (against
    ``config.peer_ca_file`` when they come from a private CA)."""
    tls = ssl.create_default_context(cafile=config.peer_ca_file)
    connector = aiohttp.TCPConnector(ssl=tls, limit=0, keepalive_timeout=30)
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT, sock_read=None)
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)


async def apply_change(
    change: Change, store: CachedStore, registry: Registry[AgentSession]
) -> None:
    """Apply another node's change to what this node holds in memory."""
    if change.kind == "key":
        store.key_cache.drop_key(change.subject)
    elif change.kind == "aliases":
        store.aliases.forget(change.subject)
    elif change.kind == "machine":
        tenant_id, _, machine_id = change.subject.partition("/")
        store.key_cache.drop_keys_bound_to(machine_id)
        session = registry.session(tenant_id, machine_id)
        if session is not None:
            log.info("machine %s was revoked on another node: closing its tunnel", machine_id)
            await session.close(ErrorCode.MACHINE_REVOKED, "this machine was revoked by an admin")
