"""One tunnel to one edge node: dial, log in, serve until the link ends (``connect_once``), and
what the agent's runner needs around it: its options, the edge's refusals, the backoff."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.backend import Backend, BackendError
from agent.config import AgentConfig
from agent.gate import Gate
from agent.login import dial, login
from agent.session import TunnelSession
from agent.transport import WebsocketsTransport
from protocol import ClosedByPeer, ErrorCode, Nodes

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunOptions:
    max_concurrency: int = 16
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    stable_after: float = 60.0  # a link that lived this long resets the backoff
    model_refresh: float = 30.0
    connect_timeout: float = 15.0
    drain_timeout: float = 30.0  # on stop, how long running requests may take to finish
    connections: int = 2  # tunnels to distinct edge nodes, when the edge has several (§11)


class EdgeRefused(Exception):
    """The edge closed the tunnel with an ERROR frame; ``fatal`` when retrying cannot help."""

    FATAL = frozenset({ErrorCode.AUTH_FAILED, ErrorCode.MACHINE_REVOKED})

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.fatal = code in self.FATAL


class AgentStopped(Exception):
    """Retrying cannot help (the machine was revoked or is unknown): the message says what to do."""


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2**attempt))  # noqa: S311  # jitter, not secrets


async def connect_once(
    config: AgentConfig,
    backend: Backend,
    options: RunOptions,
    stop: asyncio.Event | None = None,
    metrics: AgentMetrics | None = None,
    *,
    gate: Gate | None = None,
    on_nodes: Callable[[Nodes], None] | None = None,
    on_goaway: Callable[[], None] | None = None,
) -> None:
    """One connection: dial, log in, serve until the link ends. ``EdgeRefused`` when the edge
    ends it with ERROR on stream 0. ``gate``, ``on_nodes`` and ``on_goaway`` are the runner's
    when it holds tunnels to several nodes (``agent.session.TunnelSession``)."""
    backend_down: str | None = None
    try:
        models = await backend.discover()
    except BackendError as exc:
        log.warning("the backend is not answering (%s); connecting as degraded for now", exc)
        models, backend_down = [], str(exc)
    if metrics is not None:
        metrics.backend_up = backend_down is None
    async with dial(config, options.connect_timeout) as ws:
        transport = WebsocketsTransport(ws)
        try:
            conn, ready = await login(
                transport, config, options.max_concurrency, models, options.connect_timeout
            )
            log.info(
                "connected to %s as %s (%d models)",
                config.edge_url,
                config.machine_name,
                len(models),
            )
            session = TunnelSession(
                transport,
                conn,
                backend,
                options.max_concurrency,
                ready.heartbeat_interval,
                models,
                options.model_refresh,
                stop,
                options.drain_timeout,
                backend_down,
                metrics,
                gate,
                on_nodes,
                on_goaway,
            )
            if metrics is not None:
                metrics.sessions.add(session)
            try:
                await session.run()
            finally:
                if metrics is not None:
                    metrics.sessions.discard(session)
        except ClosedByPeer as exc:
            raise EdgeRefused(exc.error_code, exc.error_message) from None
