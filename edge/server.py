"""Running the edge: open the store, make sure an operator key exists, serve HTTP(S).

The data directory is made private first (``edge.data_dir``); client connections are served by
a ``GuardedSite`` (connection cap, ``edge.listener``) with ``GuardedRequestHandler`` (header and
idle timeouts, safe parse errors, ``edge.http_guard``)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from edge import credentials
from edge.app import create_app, drain_agents
from edge.config import EdgeConfig
from edge.context import CONTEXT, Clock, EdgeContext
from edge.http_guard import GuardedRequestHandler, head_received_middleware
from edge.listener import GuardedSite, default_max_connections, open_file_limit
from edge.observability.listener import MetricsListener, serve_metrics
from edge.observability.metrics import EdgeMetrics

log = logging.getLogger(__name__)

ADMIN_KEY_FILE = "admin.key"


@dataclass(slots=True)
class RunningEdge:
    runner: web.AppRunner
    site: GuardedSite
    context: EdgeContext
    port: int
    admin_key_path: Path | None  # set when this start created the operator key
    metrics: MetricsListener | None = None  # with EdgeConfig.metrics_address
    stopped: bool = False

    async def stop(self) -> None:
        """Drain (PROTOCOL.md §10) and close; calling it again does nothing."""
        if self.stopped:
            return
        self.stopped = True
        for site in list(self.runner.sites):
            await site.stop()  # no new connections; open ones keep working
        if self.context.cluster is not None:
            await self.context.cluster.leave()  # the other nodes stop routing here
        await drain_agents(self.context.registry, self.context.config.drain_timeout)
        await self.runner.cleanup()  # the recorder's last flush, then the store closes
        if self.metrics is not None:  # last: the drain could be watched
            await self.metrics.stop()


async def ensure_operator_key(ctx: EdgeContext) -> Path | None:
    """On first start, create the operator key and write it to ``DATA_DIR/admin.key`` (0600)."""
    if await ctx.store.admin_keys.has_operator():
        return None
    secret = credentials.new_api_key(credentials.ADMIN_KEY_PREFIX)
    await ctx.store.admin_keys.add(credentials.new_id("a"), None, ctx.hasher.digest(secret))
    path = ctx.config.data_dir / ADMIN_KEY_FILE
    credentials.write_private_file(path, secret + "\n")
    return path


async def start_edge(
    config: EdgeConfig,
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    clock: Clock = time.time,
) -> RunningEdge:
    """Serve the edge on ``host:port`` (0 picks a free port) until ``stop()``."""
    app = create_app(config, clock)
    app.middlewares.insert(0, head_received_middleware)  # outermost: the head is in
    # handler_cancellation: a client that disconnects cancels its handler at once, which sends
    # CANCEL through the tunnel and stops generation on the GPU.
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=5.0,  # after drain_agents(): what is left gets this long
    )
    await runner.setup()  # opens the store and starts the recorder (edge.app)
    ctx = app[CONTEXT]
    try:
        admin_key_path = await ensure_operator_key(ctx)
        metrics = await _start_metrics(ctx)
    except BaseException:
        await runner.cleanup()
        raise
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()

    def make_protocol(accepted_at: float, on_close: Callable[[], None]) -> GuardedRequestHandler:
        return GuardedRequestHandler(
            server,
            loop=loop,
            head_deadline=accepted_at + config.header_timeout,
            header_timeout=config.header_timeout,
            on_close=on_close,
            keepalive_timeout=config.idle_timeout,  # aiohttp's: idle, waiting for a next head
            access_log=None,
        )

    max_connections = config.max_connections or default_max_connections(open_file_limit())
    site = GuardedSite(
        runner,
        host,
        port,
        make_protocol=make_protocol,
        max_connections=max_connections,
        handshake_timeout=config.header_timeout,
        ssl_context=ssl_context,
        backlog=1024,
    )
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        if metrics is not None:
            await metrics.stop()
        raise
    log.info("accepting at most %d connections on %s", max_connections, site.name)
    return RunningEdge(runner, site, ctx, site.port, admin_key_path, metrics)


async def _start_metrics(ctx: EdgeContext) -> MetricsListener | None:
    """With ``metrics_address``: count every request as it ends (the recorder's observer) and
    serve the metrics there (``MetricsListenFailed`` when it cannot be listened on)."""
    if ctx.config.metrics_address is None:
        return None
    metrics = EdgeMetrics(ctx.registry, ctx.recorder, ctx.traffic, ctx.store)
    ctx.recorder.observer = metrics.request_ended
    host, port = ctx.config.metrics_address
    listener = await serve_metrics(metrics, host, port)
    log.info("serving metrics on http://%s:%d/metrics", host, listener.port)
    return listener
