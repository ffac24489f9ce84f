"""The edge's aiohttp application: the root app, its three sub-applications and what runs
beside them (docs/ARCHITECTURE.md "The edge").

    /healthz, /openapi.json      the root app
    /v1/…                         the public API (edge.api): every dialect, one pipeline
    /admin/v1/…                   the admin API (edge.admin)
    /agent/pair, /agent/connect   where machines come in (edge.agents)
    /console/…                    the web console (edge.console)

State (store, registry, limits, recorder) is opened and closed with the app (``cleanup_ctx``),
so that starting, draining and stopping have one order whoever runs the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from edge.admin import PREFIX as ADMIN_PREFIX
from edge.admin import create_admin_app
from edge.agents.app import create_agents_app
from edge.agents.registry import Registry
from edge.agents.session import AgentSession
from edge.api import create_api_app
from edge.api.openapi import openapi
from edge.bodies import LANE
from edge.config import EdgeConfig
from edge.console import PREFIX as CONSOLE_PREFIX
from edge.console import create_console_app
from edge.context import CONTEXT, Clock, open_context
from edge.fair_lane import FairLane
from edge.middleware import json_errors, openai_shape
from protocol import ErrorCode

log = logging.getLogger(__name__)

CONFIG = web.AppKey("llmtunnel_config", EdgeConfig)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _context(clock: Clock) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        ctx = await open_context(app[CONFIG], clock)
        app[CONTEXT] = ctx
        yield
        await ctx.store.close()

    return context


async def _recorder(app: web.Application) -> AsyncIterator[None]:
    recorder = app[CONTEXT].recorder
    task = asyncio.create_task(recorder.run(), name="audit-recorder")
    yield
    task.cancel()  # run() writes what is left, requests that just ended included
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def drain_agents(registry: Registry[AgentSession], timeout: float) -> None:
    """Shutdown (PROTOCOL.md §10): GOAWAY to every agent, let running streams finish within the
    drain timeout, then close the tunnels. Call it after the listening sockets are closed and
    before aiohttp's own shutdown, which stops reading from open connections."""
    sessions = [s for t in registry.tenants() for s in registry.sessions(t)]
    for session in sessions:
        session.goaway("the edge is shutting down")
    try:
        async with asyncio.timeout(timeout):
            await registry.wait_idle()
    except TimeoutError:
        log.warning("drain timeout: closing tunnels with streams still running")
    await asyncio.gather(
        *(s.close(ErrorCode.DRAINING, "the edge is shutting down") for s in sessions),
        return_exceptions=True,
    )


async def _close_agents(app: web.Application) -> None:
    # Normally drain_agents() ran already and this finds nothing left to close.
    await drain_agents(app[CONTEXT].registry, timeout=0)


def create_app(config: EdgeConfig, clock: Clock = time.time) -> web.Application:
    """The edge on ``config``; ``clock`` gives Unix time (tests move it instead of sleeping)."""
    app = web.Application(middlewares=[json_errors(openai_shape)], client_max_size=config.max_body)
    app[CONFIG] = config
    app[LANE] = FairLane()
    app.cleanup_ctx.extend(
        [_context(clock), _recorder]
    )  # cleanup in reverse: last flush, then close
    app.on_shutdown.append(_close_agents)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", openapi)
    app.add_subapp("/v1", create_api_app(config.max_body))
    app.add_subapp(ADMIN_PREFIX, create_admin_app())
    app.add_subapp("/agent", create_agents_app(config.pairing_attempts_per_minute))
    app.add_subapp(CONSOLE_PREFIX, create_console_app())
    return app
