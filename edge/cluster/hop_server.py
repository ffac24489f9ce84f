"""The receiving end of the node-to-node hop (``edge.cluster.hop``): ``POST
/cluster/v1/streams`` leases a slot on a machine connected here for a request another node
admitted, opens its stream and relays the stream's frames (docs/ARCHITECTURE.md "Several edge
nodes")."""

from __future__ import annotations

import logging
import time

import msgpack
from aiohttp import web

from edge.cluster.hop import FRAMES, PATH
from edge.cluster.hop_auth import HopRefused, SignedHop, body_matches, check_headers
from edge.config import MIB
from edge.context import CONTEXT, EdgeContext
from edge.errors import ApiError
from edge.middleware import json_errors, openai_shape
from protocol import encode
from protocol.mux import FLOW_CONTROLLED
from protocol.requests import Request, from_wire

log = logging.getLogger(__name__)

PREFIX = "/cluster"
MAX_BODY = web.AppKey("llmtunnel_hop_max_body", int)
_CHUNK = 64 * 1024


async def serve_hop(request: web.Request) -> web.StreamResponse:
    """``POST /cluster/v1/streams``: lease a slot here, open the stream, relay its frames."""
    ctx = request.config_dict[CONTEXT]
    signed = _authenticate(ctx, request)
    body = await _read_body(request, request.app[MAX_BODY])
    if not body_matches(signed, body):
        log.info("hop from node %s refused: the body is not the one signed", signed.node_id)
        raise _forbidden()
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


def _authenticate(ctx: EdgeContext, request: web.Request) -> SignedHop:
    """The hop's signed headers, checked before a byte of its body is read: this endpoint is on
    the public listener, and only a node holding the server secret may make this one read."""
    assert ctx.cluster is not None
    now = time.time()
    try:
        signed = check_headers(ctx.cluster.hop_key, PATH, ctx.cluster.node_id, request.headers, now)
    except HopRefused as exc:
        log.info("hop from %s refused: %s", request.remote, exc)
        raise _forbidden() from None
    if ctx.cluster.nonces.full(now):
        raise ApiError(503, "busy", "this edge node is taking too many forwarded requests")
    if not ctx.cluster.nonces.add(signed.nonce, now):
        log.warning(
            "hop from node %s refused: its nonce was used already (a replay)", signed.node_id
        )
        raise _forbidden()
    return signed


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, read here with the hop's own bound: aiohttp applies the root application's
    ``client_max_size`` to ``request.read()`` whatever a sub-application sets, and a forwarded
    request is a little larger than the client's body the root app admitted."""
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _forbidden() -> ApiError:
    # One answer whatever the reason, as for a bad signature; the reason is in this node's log.
    return ApiError(403, "forbidden", "not a signed request from another edge node")


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "request_too_large", f"a forwarded request is at most {limit} bytes")


def create_hop_app(max_body: int) -> web.Application:
    """The ``/cluster`` sub-application; a forwarded request carries what a client's body did
    (``max_body``), images included, and a little framing."""
    app = web.Application(middlewares=[json_errors(openai_shape)])
    app[MAX_BODY] = max_body + MIB
    app.router.add_post(PATH.removeprefix(PREFIX), serve_hop)
    return app
