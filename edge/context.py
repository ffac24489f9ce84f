"""What every handler needs, reachable through one typed application key, and how it is made."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from edge import credentials
from edge.agents.registry import Registry
from edge.agents.routing import Router
from edge.audit import Recorder
from edge.config import EdgeConfig
from edge.credentials import KeyHasher
from edge.data_dir import secure_data_dir
from edge.limits import Limiter, Limits
from edge.store import Store, open_store
from edge.store.cache import CachedStore
from llmtunnel.tunnel import Traffic

Clock = Callable[[], float]

if TYPE_CHECKING:
    from edge.agents.session import AgentSession
    from edge.cluster.node import ClusterNode


@dataclass(slots=True)
class EdgeContext:
    config: EdgeConfig
    store: Store
    registry: Registry[AgentSession]
    router: Router  # where requests go: this node's tunnels, or every node's (edge.cluster)
    hasher: KeyHasher
    limits: Limiter
    recorder: Recorder
    clock: Clock = time.time  # Unix seconds; tests move it instead of sleeping
    cluster: ClusterNode | None = None  # with --redis: what this node shares with the others
    traffic: Traffic = field(default_factory=Traffic)  # every machine's tunnel adds to it


CONTEXT = web.AppKey("llmtunnel_edge", EdgeContext)


async def open_context(config: EdgeConfig, clock: Clock = time.time) -> EdgeContext:
    """The edge's state on ``config.data_dir``: made private first (0700/0600), the server
    secret created on first use, the store opened and migrated (SQLite in the data directory,
    or PostgreSQL at ``config.database_url``: ``edge.store.open_store``), and with
    ``config.redis_url`` this node's place in the cluster (``edge.cluster.node``)."""
    secure_data_dir(config.data_dir)
    secret = credentials.load_or_create_server_secret(config.data_dir / "server.secret")
    store = CachedStore(await open_store(config.database_url, config.data_dir, clock))
    registry: Registry[AgentSession] = Registry(max_waiters=config.max_queued)
    recorder = Recorder(store, config.audit_flush_interval, config.audit_retention_days)
    hasher = KeyHasher(secret)
    if config.redis_url is None:
        router = Router(registry)
        return EdgeContext(config, store, registry, router, hasher, Limits(store), recorder, clock)
    from edge.cluster.node import open_cluster  # redis is imported only when used

    try:
        cluster = await open_cluster(config, store, registry, clock)
    except BaseException:
        await store.close()
        raise
    return EdgeContext(
        config, store, registry, cluster.router, hasher, cluster.limits, recorder, clock, cluster
    )
