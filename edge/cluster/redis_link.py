"""The edge's connection to Redis: opened once per node, bounded in time, its failures one type.

Every command a request waits for must fail fast when Redis is gone (the request then follows
the limit's own policy, docs/ARCHITECTURE.md "Several edge nodes"), so connecting and each
command are bounded to about a second and retried once, not for the client's default tens of
seconds. Every key the edge writes starts with ``PREFIX``; the parts that belong to one API key
share a hash tag (``{k_…}``), so that a script touching them runs on one Redis Cluster slot.
"""

from __future__ import annotations

from typing import Any

from redis import exceptions
from redis.asyncio import Redis
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from edge.store.urls import redacted

PREFIX = "llmtunnel:"
# Seconds to open a connection and for a command's answer before Redis counts as down. A down
# Redis refuses connections at once; these bound a host that does not answer. They also measure
# this node's own event loop, which a burst of admissions delays: at 0.5 s, 60 admissions at once
# on a busy 2-core box counted a healthy Redis as down.
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 2.0
HEALTH_CHECK_INTERVAL = 5  # a pooled connection idle this long is pinged before it is used

# What "Redis cannot answer now" looks like through redis-py: no connection, a timeout, a
# server still loading its data, a replica that refuses writes, a server out of memory.
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    exceptions.ConnectionError,
    exceptions.TimeoutError,
    exceptions.BusyLoadingError,
    exceptions.ReadOnlyError,
    exceptions.OutOfMemoryError,
    exceptions.TryAgainError,
    exceptions.MasterDownError,
    ConnectionError,
    TimeoutError,
    OSError,
)


class RedisDown(Exception):
    """Redis cannot answer now; the message names it without its password."""


class BadRedisUrl(ValueError):
    """``--redis`` is not a redis:// or rediss:// URL."""


def open_redis(url: str) -> Redis:
    """A client for ``url`` (``redis://[:PASSWORD@]HOST:PORT/DB`` or ``rediss://`` for TLS).
    Nothing is sent until the first command; ``BadRedisUrl`` for another scheme."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise BadRedisUrl(f"unsupported Redis URL {redacted(url)}: give a redis:// URL")
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": COMMAND_TIMEOUT,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "retry": Retry(ConstantBackoff(0.05), 1),
        "decode_responses": False,
    }
    client: Redis = Redis.from_url(url, **options)
    return client


def key(*parts: str) -> str:
    """A key of the edge's: ``llmtunnel:`` and ``parts`` joined with ``:``."""
    return PREFIX + ":".join(parts)


def describe(url: str) -> str:
    """``url`` as logs and errors may show it (no password)."""
    return redacted(url)
