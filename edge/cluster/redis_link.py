"""The edge's connection to Redis: opened once per node, bounded in time, its failures one type.

Every command a request waits for must fail fast when Redis is gone (the request then follows
the limit's own policy, docs/ARCHITECTURE.md "Several edge nodes"), so connecting and each
command are bounded to a couple of seconds, not the client's default tens of seconds. A command
is retried once only when its connection broke (a pooled connection that a restarted Redis
closed), never after a timeout: the command may have run, and an admission run twice charges
twice. The change broadcast listens on a client of its own that never reconnects by itself
(``open_listener``): a silent reconnection would hide the messages it missed. Every key the edge
writes starts with ``PREFIX``; the parts that belong to one API key share a hash tag
(``{k_…}``), so that a script touching them runs on one Redis Cluster slot.
"""

from __future__ import annotations

from typing import Any

from redis import exceptions
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ConstantBackoff, NoBackoff

from edge.store.urls import redacted

PREFIX = "llmtunnel:"
# Seconds to open a connection and for a command's answer before Redis counts as down. A down
# Redis refuses connections at once; these bound a host that does not answer. They also measure
# this node's own event loop, which a burst of admissions delays: at 0.5 s, 60 admissions at once
# on a busy 2-core box counted a healthy Redis as down.
CONNECT_TIMEOUT = 2.0
COMMAND_TIMEOUT = 2.0
HEALTH_CHECK_INTERVAL = 5  # a pooled connection idle this long is pinged before it is used

# What "Redis cannot answer now" looks like through redis-py: no connection, a timeout, and
# every error reply (RedisError is the base of them all): a server still loading its data, a
# replica that refuses writes, a server out of memory, MISCONF (a failed snapshot stops writes),
# BUSY (a script runs too long), NOPERM (an ACL changed). Whatever Redis answers instead of doing
# its part, the caller follows its outage policy; an error reply that escaped as something else
# would turn into a 500, or end a background task for good.
REDIS_ERRORS: tuple[type[BaseException], ...] = (
    exceptions.RedisError,
    ConnectionError,
    TimeoutError,
    OSError,
)

# Error replies that say Redis cannot do anything now (its state, not the command): what is
# refused with them is written again later. Any other error reply (a script failing on its
# arguments, say) would fail the same way again, so the caller drops what it sent.
_OUTAGE_REPLIES = ("MISCONF", "BUSY", "NOPERM", "READONLY", "OOM", "LOADING", "MASTERDOWN")
_OUTAGE_CLASSES = (
    exceptions.ReadOnlyError,
    exceptions.OutOfMemoryError,
    exceptions.NoPermissionError,
    exceptions.NoScriptError,  # a restarted Redis lost the scripts; the next flush loads them
)


def is_outage_reply(error: BaseException) -> bool:
    """Whether ``error`` (one command's result in a pipeline) means "not now" rather than
    "never": anything but an error reply, or an error reply about Redis's state."""
    if not isinstance(error, exceptions.ResponseError):
        return True  # a connection or a timeout: not the command's fault
    if isinstance(error, _OUTAGE_CLASSES):
        return True
    return str(error).startswith(_OUTAGE_REPLIES)


# What a command is retried after (once): a broken connection. Not a timeout: the command may
# have run. This is the asyncio client's Retry (redis.asyncio.retry): given the synchronous one,
# the client never awaited the command inside it, so nothing was ever retried.
_RETRIED: tuple[type[exceptions.RedisError], ...] = (exceptions.ConnectionError,)


class RedisDown(Exception):
    """Redis cannot answer now; the message names it without its password."""


class BadRedisUrl(ValueError):
    """``--redis`` is not a redis:// or rediss:// URL."""


def open_redis(url: str) -> Redis:
    """A client for ``url`` (``redis://[:PASSWORD@]HOST:PORT/DB`` or ``rediss://`` for TLS).
    Nothing is sent until the first command; ``BadRedisUrl`` for another scheme."""
    # Once, after a broken connection only (redis-py's default also retries on timeouts).
    return _client(url, Retry(ConstantBackoff(0.05), 1, supported_errors=_RETRIED))


def open_listener(url: str) -> Redis:
    """A client for the change broadcast's subscription alone: it never retries nor reconnects
    by itself, so that every break reaches the broadcast (which then distrusts its caches until
    it has subscribed again), and it has its own pool, so that the counters dropping theirs after
    a failure does not cut it."""
    return _client(url, Retry(NoBackoff(), 0, supported_errors=_RETRIED))


def _client(url: str, retry: Retry) -> Redis:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise BadRedisUrl(f"unsupported Redis URL {redacted(url)}: give a redis:// URL")
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": COMMAND_TIMEOUT,
        "health_check_interval": HEALTH_CHECK_INTERVAL,
        "retry": retry,
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
