"""``llmtunnel agent run``: keep a tunnel to the edge open, reconnecting with backoff and jitter."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from websockets.exceptions import InvalidStatus, WebSocketException

from agent.backend import Backend, BackendError
from agent.config import AgentConfig
from agent.diagnose import explain
from agent.login import dial, login
from agent.session import TunnelSession
from agent.transport import WebsocketsTransport
from protocol import ClosedByPeer, ErrorCode, ProtocolError

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


async def run_agent(
    config: AgentConfig,
    backend: Backend,
    options: RunOptions = RunOptions(),
    stop: asyncio.Event | None = None,
    metrics: AgentMetrics | None = None,
) -> None:
    """Serve until ``stop`` is set (then drain and return) or the task is cancelled; what it
    does is counted in ``metrics`` when given.

    ``AgentStopped`` when the edge refuses this machine.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    attempt = 0
    dialed = False
    while not stop.is_set():
        started = loop.time()
        if dialed and metrics is not None:
            metrics.reconnects.inc()
        dialed = True
        try:
            await connect_once(config, backend, options, stop, metrics)
            log.info("tunnel closed by the edge")
        except EdgeRefused as exc:
            if exc.fatal:
                raise AgentStopped(
                    f"the edge refused this machine ({exc}); pair it again with "
                    "`llmtunnel agent pair CODE --edge URL`"
                ) from None
            log.warning("the edge closed the tunnel: %s", exc)
        except InvalidStatus as exc:
            log.warning("the edge refused the WebSocket: HTTP %d", exc.response.status_code)
        except (OSError, TimeoutError, WebSocketException, ProtocolError) as exc:
            log.warning("tunnel to %s failed: %s", config.edge_url, explain(exc, config.edge_url))
        if loop.time() - started >= options.stable_after:
            attempt = 0
        if stop.is_set():
            return
        delay = backoff_delay(attempt, options.backoff_base, options.backoff_cap)
        attempt += 1
        log.info("reconnecting in %.1f s", delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)


async def connect_once(
    config: AgentConfig,
    backend: Backend,
    options: RunOptions,
    stop: asyncio.Event | None = None,
    metrics: AgentMetrics | None = None,
) -> None:
    """One connection: dial, log in, serve until the link ends. ``EdgeRefused`` when the edge
    ends it with ERROR on stream 0."""
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
            )
            if metrics is not None:
                metrics.session = session
            try:
                await session.run()
            finally:
                if metrics is not None:
                    metrics.session = None
        except ClosedByPeer as exc:
            raise EdgeRefused(exc.error_code, exc.error_message) from None
