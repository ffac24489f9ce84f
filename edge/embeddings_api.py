"""``POST /v1/embeddings``: the OpenAI embeddings API, served by the agent's ``embed`` op.

Dispatched like every dialect, through ``api._start`` (scopes, limits, audit, failover); the
vectors come back as EMBEDDINGS frames and are answered in one JSON body.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from edge import api, openai_embeddings
from edge.auth import authenticate
from edge.bodies import read_json_object
from edge.context import CONTEXT
from edge.errors import ApiError, from_stream_error
from edge.tunnel import StreamEvent
from protocol import Delta, Embeddings, End

routes = web.RouteTableDef()


@routes.post("/v1/embeddings")
async def embeddings(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    caller = await authenticate(request)
    req = openai_embeddings.parse_request(await read_json_object(request))
    caller.ensure_model_allowed(req.model)
    models = api._visible_models(ctx, caller)
    if req.model in models:
        capabilities = list(models[req.model].get("capabilities", []))
        openai_embeddings.require_embedding_capability(req.model, capabilities)
    stream, first = await api._start(ctx, caller, req.model, openai_embeddings.to_neutral(req))
    vectors: list[bytes] = []
    size = 0
    event: StreamEvent = first
    try:
        async with asyncio.timeout(ctx.config.request_timeout):
            while isinstance(event, Embeddings):
                if event.index != len(vectors):
                    raise ApiError(502, "backend_error", "the machine sent embeddings out of order")
                if len(vectors) + len(event.vectors) > len(req.texts):
                    raise ApiError(
                        502, "backend_error", "the machine sent more embeddings than inputs"
                    )
                size += event.flow_size
                if size > ctx.config.max_reply_bytes:
                    raise ApiError(
                        502,
                        "reply_too_large",
                        f"the embeddings grew past {ctx.config.max_reply_bytes:,} bytes",
                    )
                vectors.extend(event.vectors)
                event = await stream.next()
    except TimeoutError:
        raise ApiError(504, "backend_timeout", "the embeddings took longer than allowed") from None
    finally:
        stream.close()
    if isinstance(event, Delta):
        raise ApiError(502, "backend_error", "the machine answered an embed request with text")
    if not isinstance(event, End):
        raise from_stream_error(event.code, event.message)
    if len(vectors) != len(req.texts):
        raise ApiError(
            502,
            "backend_error",
            f"the machine sent {len(vectors)} embeddings for {len(req.texts)} inputs",
        )
    body = openai_embeddings.render(req, vectors, event)
    return web.Response(text=body, content_type="application/json")
