"""The Anthropic Messages handlers: ``/v1/messages`` and ``/v1/messages/count_tokens``.

Dispatched exactly as ``/v1/chat/completions`` is, through ``api._start``: nothing is committed
before the first event, so a failure until then is a proper HTTP error (rendered in Anthropic's
shape by the error middleware); after it, a failure ends the stream with an ``error`` event.
"""

from __future__ import annotations

from aiohttp import web

from edge.anthropic_messages import (
    MessageRenderer,
    estimate_input_tokens,
    parse_count_request,
    parse_request,
    require_tools_capability,
    to_neutral,
)
from edge.api import SSE_HEADERS, _start, _visible_models, collect, send_events, text_events
from edge.auth import authenticate
from edge.bodies import read_json_object
from edge.config import EdgeConfig
from edge.context import CONTEXT
from edge.errors import ApiError
from edge.tunnel import TunnelStream
from protocol import Delta, Embeddings, End

routes = web.RouteTableDef()


@routes.post("/v1/messages")
async def messages(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    caller = await authenticate(request)
    req = parse_request(await read_json_object(request))
    caller.ensure_model_allowed(req.model)
    models = _visible_models(ctx, caller)
    capabilities: list[str] | None = None  # unknown model: _start answers 404 or 503
    if req.model in models:
        capabilities = list(models[req.model].get("capabilities", []))
        tool_models = sorted(n for n, m in models.items() if "tools" in m.get("capabilities", []))
        require_tools_capability(req, capabilities, tool_models)
    neutral = to_neutral(req, capabilities)
    renderer = MessageRenderer(req.model, estimate_input_tokens(neutral))
    stream, first = await _start(ctx, caller, req.model, neutral)
    try:
        if req.stream:
            return await _stream(request, stream, first, renderer)
        return await _complete(stream, first, renderer, ctx.config)
    finally:
        stream.close()


@routes.post("/v1/messages/count_tokens")
async def count_tokens(request: web.Request) -> web.Response:
    """``{"input_tokens": N}``, N estimated by ``anthropic_messages.estimate_input_tokens``
    (about four characters per token): the edge has no tokenizer and asks no machine."""
    ctx = request.app[CONTEXT]
    caller = await authenticate(request)
    req = parse_count_request(await read_json_object(request))
    caller.ensure_model_allowed(req.model)
    models = _visible_models(ctx, caller)
    if req.model not in models:
        raise ApiError(
            404,
            "model_not_found",
            f"The model `{req.model}` does not exist or is not served by any online machine",
            param="model",
        )
    neutral = to_neutral(req, list(models[req.model].get("capabilities", [])))
    return web.json_response({"input_tokens": estimate_input_tokens(neutral)})


async def _complete(
    stream: TunnelStream,
    first: Delta | Embeddings | End,
    renderer: MessageRenderer,
    config: EdgeConfig,
) -> web.Response:
    deltas, end = await collect(stream, first, config)
    return web.json_response(renderer.message(deltas, end))


async def _stream(
    request: web.Request,
    stream: TunnelStream,
    first: Delta | Embeddings | End,
    renderer: MessageRenderer,
) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    await send_events(response, renderer.start())
    timeout = request.app[CONTEXT].config.request_timeout
    async for event in text_events(stream, first, timeout):
        if isinstance(event, Delta):
            try:
                events = renderer.delta(event)
            except ApiError as error:  # a tool call the client could not parse: end here
                await send_events(response, [renderer.error(error)])
                break
            await send_events(response, events)
        elif isinstance(event, End):
            await send_events(response, renderer.end(event))
        else:
            # The SDKs raise an APIError on an `error` event: the client learns the reply
            # failed instead of seeing one that just stops.
            await send_events(response, [renderer.error(event)])
    await response.write_eof()
    return response
