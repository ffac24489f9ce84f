"""The ``/v1/completions`` handler (OpenAI legacy completions, served by Ollama's generate).

Dispatched exactly as ``/v1/chat/completions`` is, through ``api._start``: nothing is committed
before the first event, and a failure after it ends the stream with an error event.
"""

from __future__ import annotations

from aiohttp import web

from edge import api, openai_completions
from edge.auth import authenticate
from edge.bodies import read_json_object
from edge.context import CONTEXT

routes = web.RouteTableDef()


@routes.post("/v1/completions")
async def completions(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    caller = await authenticate(request)
    req = openai_completions.parse_request(await read_json_object(request))
    caller.ensure_model_allowed(req.model)
    models = api._visible_models(ctx, caller)
    capabilities: list[str] = list(models.get(req.model, {}).get("capabilities", []))
    neutral = openai_completions.to_neutral(req, capabilities)
    stream, first = await api._start(ctx, caller, req.model, neutral)
    try:
        renderer = openai_completions.CompletionRenderer(req.model)
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return await api._stream_chat(request, stream, first, renderer, include_usage)
        return await api._complete_chat(stream, first, renderer, ctx.config)
    finally:
        stream.close()
