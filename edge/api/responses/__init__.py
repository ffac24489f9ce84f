"""The OpenAI Responses dialect: ``POST /v1/responses`` (through the pipeline), and ``GET`` /
``DELETE /v1/responses/{id}`` for tenants that store responses.

Storage is off unless an admin turns it on for the tenant (README "Security": no content at rest is
the rule, this the opt-in exception). With it on, a response is saved once it completed (or stopped
at ``max_output_tokens``) unless the request said ``store: false``; any key of the tenant can then
read, delete or continue it (``previous_response_id``), and no key of another tenant can.

What the edge does with each kind of tool (``namespace`` tools flattened, hosted tools dropped
and named in the ``x-llmtunnel-dropped-tools`` header) is ``tools.py``'s docstring; how
``item_reference`` input items are resolved, ``references.py``'s."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge.api.dialect import Call, TextDialect, TextRenderer
from edge.api.responses.references import resolve_references
from edge.api.responses.render import ResponseRenderer, output_to_items
from edge.api.responses.request import (
    ResponsesRequest,
    input_items,
    parse_request,
    request_tools,
    to_neutral,
)
from edge.api.sse import NamedEvents
from edge.auth import Caller, authenticate
from edge.context import CONTEXT
from edge.errors import ApiError, bad_request
from protocol.requests import TextRequest

STORAGE_OFF = (
    "response storage is off for this tenant, so responses are not kept; an admin can turn it "
    "on with `llmtunnel admin tenant update SLUG --store-responses`"
)


class ResponsesDialect(TextDialect[ResponsesRequest]):
    async def prepare(self, call: Call[ResponsesRequest]) -> None:
        """The tools the model gets, whether this response is kept, and the conversation: the
        one it continues, if any, then its input with its item references resolved."""
        tools = call.state["tools"] = request_tools(call.req)
        call.headers.update(tools.headers)  # the hosted tools dropped, if any
        tenant_id = call.caller.tenant.id
        storing = await call.ctx.store.tenants.stores_responses(tenant_id)
        call.state["store"] = storing and call.req.store is not False
        earlier = await _previous_items(call, storing)

        async def load(response_id: str) -> dict[str, Any] | None:
            stored = await call.ctx.store.responses.get(tenant_id, response_id)
            return None if stored is None else stored[0]

        items = await resolve_references(input_items(call.req), earlier, storing, load)
        call.state["items"] = earlier + items

    def parse(self, body: dict[str, Any]) -> ResponsesRequest:
        return parse_request(body)

    def neutral(self, call: Call[ResponsesRequest]) -> TextRequest:
        return to_neutral(
            call.req, call.state["items"], call.capabilities or [], call.state["tools"]
        )

    def renderer(self, call: Call[ResponsesRequest], request: TextRequest) -> TextRenderer:
        response = ResponseRenderer(call.req, store=call.state["store"], tools=call.state["tools"])
        return NamedEvents(response)

    async def finished(self, call: Call[ResponsesRequest], renderer: TextRenderer) -> None:
        assert isinstance(renderer, NamedEvents)
        response = renderer.renderer
        assert isinstance(response, ResponseRenderer)
        if response.store and response.status in ("completed", "incomplete"):
            await call.ctx.store.responses.save(
                response.id,
                call.caller.tenant.id,
                call.caller.key.id,
                response.created_at,
                response.response(),
                call.state["items"],
            )


DIALECT = ResponsesDialect()


async def _previous_items(call: Call[ResponsesRequest], storing: bool) -> list[dict[str, Any]]:
    """The conversation ``previous_response_id`` names: its input items, then its output."""
    previous = call.req.previous_response_id
    if previous is None:
        return []
    if not storing:
        raise bad_request(
            f"previous_response_id cannot be used: {STORAGE_OFF}", param="previous_response_id"
        )
    stored = await call.ctx.store.responses.get(call.caller.tenant.id, previous)
    if stored is None:
        raise bad_request(
            f"Previous response with id {previous!r} not found",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    response, items = stored
    return items + output_to_items(response)


async def _stored_id(request: web.Request, caller: Caller) -> str:
    if not await request.config_dict[CONTEXT].store.tenants.stores_responses(caller.tenant.id):
        raise ApiError(404, "response_storage_off", STORAGE_OFF)
    return request.match_info["response_id"]


def _not_found(response_id: str) -> ApiError:
    return ApiError(404, "response_not_found", f"No response with id {response_id!r} found")


async def retrieve_response(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    response_id = await _stored_id(request, caller)
    stored = await request.config_dict[CONTEXT].store.responses.get(caller.tenant.id, response_id)
    if stored is None:
        raise _not_found(response_id)
    return web.json_response(stored[0])


async def delete_response(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    response_id = await _stored_id(request, caller)
    if not await request.config_dict[CONTEXT].store.responses.delete(caller.tenant.id, response_id):
        raise _not_found(response_id)
    return web.json_response({"id": response_id, "object": "response", "deleted": True})
