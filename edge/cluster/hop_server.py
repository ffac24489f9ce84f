"""The receiving end of the node-to-node hop (``edge.cluster.hop``): ``POST
/cluster/v1/streams`` leases a slot on a machine connected here for a request another node
admitted, opens its stream and relays the stream's frames (docs/ARCHITECTURE.md "Several edge
nodes")."""

from __future__ import annotations

import time

import msgpack
from aiohttp import web

from edge.cluster.hop import FRAMES, PATH, fresh, verify
from edge.config import MIB
from edge.context import CONTEXT
from edge.errors import ApiError
from edge.middleware import json_errors, openai_shape
from protocol import encode
from protocol.mux import FLOW_CONTROLLED
from protocol.requests import Request, from_wire

PREFIX = "/cluster"


async def serve_hop(request: web.Request) -> web.StreamResponse:
    """``POST /cluster/v1/streams``: lease a slot here, open the stream, relay its frames."""
    ctx = request.config_dict[CONTEXT]
    assert ctx.cluster is not None
    now = time.time()
    if not fresh(request.headers, now):  # before reading a body nobody may have signed
        raise ApiError(403, "forbidden", "not a signed request from another edge node")
    body = await request.read()
    if not verify(ctx.cluster.hop_key, request.headers, body, now):
        raise ApiError(403, "forbidden", "not a signed request from another edge node")
    fields = msgpack.unpackb(body, raw=False)
    neutral = from_wire(fields["request"])
    if not isinstance(neutral, Request):
        raise ApiError(400, "invalid_request", "the forwarded request is not one this node runs")
    lease = await ctx.registry.acquire(
        fields["tenant"],
        neutral.model,
        float(fields["queue_timeout"]),
        frozenset(fields["exclude"]),
        fields["key"],
        fields["machine"],
    )
    stream = lease.open(neutral, float(fields["timeout"]), str(fields.get("request_id", "")))
    try:
        headers = {"x-llmtunnel-machine": lease.machine_name, "content-type": FRAMES}
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        while True:
            event = await stream.next()
            data = encode(event)
            await response.write(len(data).to_bytes(4, "big") + data)
            if not isinstance(event, FLOW_CONTROLLED):
                break
        await response.write_eof()
        return response
    finally:
        stream.close()


def create_hop_app(max_body: int) -> web.Application:
    """The ``/cluster`` sub-application; a forwarded request carries what a client's body did
    (``max_body``), images included, and a little framing."""
    app = web.Application(middlewares=[json_errors(openai_shape)], client_max_size=max_body + MIB)
    app.router.add_post(PATH.removeprefix(PREFIX), serve_hop)
    return app
