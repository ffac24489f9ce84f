"""The OpenAI Responses handlers: ``POST /v1/responses``, and ``GET``/``DELETE
/v1/responses/{id}`` for tenants that store responses.

Dispatched exactly as ``/v1/chat/completions`` is, through ``api._start``: nothing is committed
before the first event, so a failure until then is a proper HTTP error; after it, a failure ends
the stream with ``response.failed`` and an ``error`` event.

Storage is off unless an admin turns it on for the tenant (DESIGN.md "No content at rest" is the
rule, this the opt-in exception). With it on, a response is saved once it completed (or stopped
at ``max_output_tokens``) unless the request said ``store: false``; any key of the tenant can then
read, delete or continue it (``previous_response_id``), and no key of another tenant can.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge import openai_responses as responses
from edge.api import SSE_HEADERS, _start, _visible_models, collect, send_events, text_events
from edge.auth import Caller, authenticate
from edge.bodies import read_json_object
from edge.config import EdgeConfig
from edge.context import CONTEXT, EdgeContext
from edge.errors import ApiError, bad_request
from edge.tunnel import TunnelStream
from protocol import Delta, Embeddings, End

routes = web.RouteTableDef()

STORAGE_OFF = (
    "response storage is off for this tenant, so responses are not kept; an admin can turn it "
    "on with `llmtunnel admin tenant update SLUG --store-responses`"
)


@routes.post("/v1/responses")
async def create_response(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    caller = await authenticate(request)
    req = responses.parse_request(await read_json_object(request))
    caller.ensure_model_allowed(req.model)
    storing = await ctx.store.tenants.stores_responses(caller.tenant.id)
    items = await _previous_items(ctx, caller, req, storing) + responses.input_items(req)
    models = _visible_models(ctx, caller)
    capabilities: list[str] = list(models.get(req.model, {}).get("capabilities", []))
    if req.model in models:
        tool_models = sorted(n for n, m in models.items() if "tools" in m.get("capabilities", []))
        responses.require_tools_capability(req, capabilities, tool_models)
    neutral = responses.to_neutral(req, items, capabilities)
    renderer = responses.ResponseRenderer(req, store=storing and req.store is not False)
    stream, first = await _start(ctx, caller, req.model, neutral)
    try:
        if req.stream:
            return await _stream(request, caller, stream, first, renderer, items)
        response = await _complete(stream, first, renderer, ctx.config)
        await _save(ctx, caller, renderer, items)
        return web.json_response(response)
    finally:
        stream.close()


async def _previous_items(
    ctx: EdgeContext, caller: Caller, req: responses.ResponsesRequest, storing: bool
) -> list[dict[str, Any]]:
    """The conversation ``previous_response_id`` names: its input items, then its output."""
    if req.previous_response_id is None:
        return []
    if not storing:
        raise bad_request(
            f"previous_response_id cannot be used: {STORAGE_OFF}", param="previous_response_id"
        )
    stored = await ctx.store.responses.get(caller.tenant.id, req.previous_response_id)
    if stored is None:
        raise bad_request(
            f"Previous response with id {req.previous_response_id!r} not found",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    response, items = stored
    return items + responses.output_to_items(response)


async def _save(
    ctx: EdgeContext,
    caller: Caller,
    renderer: responses.ResponseRenderer,
    items: list[dict[str, Any]],
) -> None:
    if renderer.store and renderer.status in ("completed", "incomplete"):
        await ctx.store.responses.save(
            renderer.id,
            caller.tenant.id,
            caller.key.id,
            renderer.created_at,
            renderer.response(),
            items,
        )


async def _stored_id(request: web.Request, caller: Caller) -> str:
    if not await request.app[CONTEXT].store.tenants.stores_responses(caller.tenant.id):
        raise ApiError(404, "response_storage_off", STORAGE_OFF)
    return request.match_info["response_id"]


def _not_found(response_id: str) -> ApiError:
    return ApiError(404, "response_not_found", f"No response with id {response_id!r} found")


@routes.get("/v1/responses/{response_id}")
async def retrieve_response(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    response_id = await _stored_id(request, caller)
    stored = await request.app[CONTEXT].store.responses.get(caller.tenant.id, response_id)
    if stored is None:
        raise _not_found(response_id)
    return web.json_response(stored[0])


@routes.delete("/v1/responses/{response_id}")
async def delete_response(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    response_id = await _stored_id(request, caller)
    if not await request.app[CONTEXT].store.responses.delete(caller.tenant.id, response_id):
        raise _not_found(response_id)
    return web.json_response({"id": response_id, "object": "response", "deleted": True})


async def _complete(
    stream: TunnelStream,
    first: Delta | Embeddings | End,
    renderer: responses.ResponseRenderer,
    config: EdgeConfig,
) -> dict[str, Any]:
    deltas, end = await collect(stream, first, config)
    return renderer.complete(deltas, end)


async def _stream(
    request: web.Request,
    caller: Caller,
    stream: TunnelStream,
    first: Delta | Embeddings | End,
    renderer: responses.ResponseRenderer,
    items: list[dict[str, Any]],
) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    await send_events(response, renderer.start())
    async for event in text_events(stream, first, ctx.config.request_timeout):
        if isinstance(event, Delta):
            await send_events(response, renderer.delta(event))
        elif isinstance(event, End):
            events = renderer.end(event)
            await _save(ctx, caller, renderer, items)  # before the client hears it is complete
            await send_events(response, events)
        else:
            await send_events(response, renderer.error(event))
    await response.write_eof()
    return response
