"""The Anthropic Messages dialect: ``POST /v1/messages`` (through the pipeline) and
``POST /v1/messages/count_tokens``. ``request`` turns Anthropic's request into the neutral one,
``render`` turns the neutral events back into Anthropic's; errors on these paths come in
Anthropic's shape (``ApiError.anthropic_body``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge.api.anthropic.render import MessageRenderer
from edge.api.anthropic.request import (
    MessagesRequest,
    estimate_input_tokens,
    parse_count_request,
    parse_request,
    to_neutral,
)
from edge.api.dialect import Call, TextDialect, TextRenderer
from edge.api.models import find_model, model_not_found, visible_models
from edge.api.sse import NamedEvents
from edge.auth import authenticate
from edge.bodies import read_json_object
from edge.context import CONTEXT
from protocol.requests import ChatRequest, TextRequest


class MessagesDialect(TextDialect[MessagesRequest]):
    errors = "anthropic"

    def parse(self, body: dict[str, Any]) -> MessagesRequest:
        return parse_request(body)

    def neutral(self, call: Call[MessagesRequest]) -> TextRequest:
        return to_neutral(call.req, call.capabilities)

    def renderer(self, call: Call[MessagesRequest], request: TextRequest) -> TextRenderer:
        assert isinstance(request, ChatRequest)  # what neutral() made
        return NamedEvents(MessageRenderer(call.req.model, estimate_input_tokens(request)))


DIALECT = MessagesDialect()


async def count_tokens(request: web.Request) -> web.Response:
    """``{"input_tokens": N}``, N estimated by ``request.estimate_input_tokens`` (about four
    characters per token): the edge has no tokenizer and asks no machine."""
    ctx = request.config_dict[CONTEXT]
    caller = await authenticate(request)
    req = parse_count_request(await read_json_object(request))
    caller.ensure_model_allowed(req.model)
    models = visible_models(ctx, caller)
    served = find_model(models, req.model)
    if served is None:
        raise model_not_found(req.model)
    neutral = to_neutral(req, list(models[served].get("capabilities", [])))
    return web.json_response({"input_tokens": estimate_input_tokens(neutral)})
