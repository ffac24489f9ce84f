"""The edge's aiohttp application: routes, the error middleware, startup and shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from edge import (
    admin_api,
    anthropic_api,
    api,
    completions_api,
    embeddings_api,
    openapi,
    pairing,
    responses_api,
)
from edge.audit import RequestRecord
from edge.auth import RECORD
from edge.bodies import LANE
from edge.context import CONTEXT, EdgeContext
from edge.errors import ApiError, Dialect
from edge.fair_lane import FairLane
from edge.registry import Registry
from edge.tunnel import accept_agent
from protocol import ErrorCode

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES_FOR_STATUS = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every public API request is audited when it ends, however it ends; this is also where
    its budget reservation is settled (``Recorder.request``)."""
    if not request.path.startswith("/v1/"):
        return await handler(request)
    user_agent = request.headers.get("User-Agent")
    record = RequestRecord(
        f"{request.method} {request.path}", request.remote, user_agent and user_agent[:200]
    )
    request[RECORD] = record
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except asyncio.CancelledError:
        status, record.error_code = 499, record.error_code or "client_closed"
        raise
    finally:
        request.app[CONTEXT].recorder.request(record, status)


async def _add_rate_limit_headers(request: web.Request, response: web.StreamResponse) -> None:
    # Runs as any response's headers are about to go out, streamed or not, success or error.
    record = request.get(RECORD)
    if record is not None and record.admission is not None:
        for name, value in record.admission.headers.items():
            response.headers.setdefault(name, value)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as JSON in the OpenAI shape (Anthropic's on the Anthropic endpoints);
    nothing escapes as a bare 500."""
    dialect: Dialect = "anthropic" if request.path.startswith("/v1/messages") else "openai"
    try:
        return await handler(request)
    except ApiError as exc:
        record = request.get(RECORD)
        if record is not None:
            record.error_code = exc.code
        return exc.response(dialect)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES_FOR_STATUS.get(exc.status, "http_error")
        record = request.get(RECORD)
        if record is not None:
            record.error_code = code
        message = (
            f"{exc.reason}: {request.method} {request.path}"
            if exc.status in (404, 405)
            else exc.text or exc.reason
        )
        return ApiError(exc.status, code, message).response(dialect)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        error = ApiError(500, "internal_error", "internal error; it has been logged")
        return error.response(dialect)


async def _agent_connect(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    return await accept_agent(request, ctx.store, ctx.registry, ctx.config.tunnel)


async def drain_agents(registry: Registry, timeout: float) -> None:
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
        *(
            s.close(ErrorCode.DRAINING, "the edge is shutting down")
            for s in sessions
            if s is not None
        ),
        return_exceptions=True,
    )


async def _close_agents(app: web.Application) -> None:
    # Normally drain_agents() ran already and this finds nothing left to close.
    await drain_agents(app[CONTEXT].registry, timeout=0)


def create_app(ctx: EdgeContext) -> web.Application:
    app = web.Application(
        middlewares=[audit_middleware, error_middleware], client_max_size=ctx.config.max_body
    )
    app[CONTEXT] = ctx
    app[pairing.LIMITER] = pairing.AttemptLimiter(ctx.config.pairing_attempts_per_minute)
    app[LANE] = FairLane()
    app.add_routes(api.routes)
    app.add_routes(anthropic_api.routes)
    app.add_routes(completions_api.routes)
    app.add_routes(embeddings_api.routes)
    app.add_routes(responses_api.routes)
    app.add_routes(admin_api.routes)
    app.add_routes(pairing.routes)
    app.add_routes(openapi.routes)
    app.router.add_get("/agent/connect", _agent_connect)
    app.on_shutdown.append(_close_agents)
    app.on_response_prepare.append(_add_rate_limit_headers)
    return app
