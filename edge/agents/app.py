"""Where machines come in (``/agent``): pairing a new one (``POST /agent/pair``) and the
tunnel each agent holds open (``GET /agent/connect``, docs/PROTOCOL.md)."""

from __future__ import annotations

from aiohttp import web

from edge.agents import pairing
from edge.agents.endpoint import accept_agent
from edge.agents.hosts import AgentHosts
from edge.context import CONTEXT
from edge.middleware import json_errors, openai_shape

PREFIX = "/agent"


async def _connect(request: web.Request) -> web.StreamResponse:
    ctx = request.config_dict[CONTEXT]
    nodes = ctx.cluster.directory.nodes_frame if ctx.cluster is not None else None
    hosts = AgentHosts.of(ctx.config.domain, ctx.config.advertise_url)
    return await accept_agent(
        request, ctx.store, ctx.registry, ctx.config.tunnel, ctx.traffic, nodes, hosts
    )


def create_agents_app(pairing_attempts_per_minute: int) -> web.Application:
    """The ``/agent`` sub-application."""
    app = web.Application(middlewares=[json_errors(openai_shape)])
    app[pairing.LIMITER] = pairing.pairing_limiter(pairing_attempts_per_minute)
    app.router.add_post("/pair", pairing.pair)
    app.router.add_get("/connect", _connect)
    return app
