"""The public API handlers: ``/v1/models`` and ``/v1/chat/completions`` (OpenAI dialect).

Each request: authenticate, validate, pick a machine, open a tunnel stream, wait for the first
event, and only then commit to a status, so that anything that fails before the first token is a
proper HTTP error. After that, failures end the stream with an error event, never a silent cut.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

from aiohttp import web

from edge import openai_chat
from edge.auth import Caller, authenticate
from edge.bodies import read_json_object
from edge.config import EdgeConfig
from edge.context import CONTEXT, EdgeContext
from edge.errors import ApiError, bad_request, from_stream_error
from edge.tunnel import StreamEvent, TextEvent, TunnelStream, as_text
from protocol import Delta, Embeddings, End, Error, LocalProtocolError

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tell reverse proxies not to buffer the stream
}


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _visible_models(ctx: EdgeContext, caller: Caller) -> dict[str, dict[str, Any]]:
    """The models this key may use now: its scope, and its machine's if it is bound to one."""
    bound = caller.key.limits.machine_id
    if bound is not None:
        session = ctx.registry.session(caller.tenant.id, bound)
        models = dict(session.models) if session is not None and session.accepting else {}
    else:
        models = ctx.registry.models(caller.tenant.id)
    for alias, target in caller.aliases.items():
        if target in models:
            models[alias] = models[target]
    return {name: info for name, info in models.items() if caller.allows(name)}


@routes.get("/v1/models")
async def list_models(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    models = _visible_models(request.app[CONTEXT], caller)
    created = int(caller.tenant.created_at)
    data = [
        {"id": name, "object": "model", "created": created, "owned_by": caller.tenant.slug}
        for name in sorted(models)
    ]
    return web.json_response({"object": "list", "data": data})


@routes.post("/v1/chat/completions")
async def chat_completions(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    caller = await authenticate(request)
    req = openai_chat.parse_request(await read_json_object(request))
    caller.ensure_model_allowed(req.model)
    models = _visible_models(ctx, caller)
    capabilities: list[str] = list(models.get(req.model, {}).get("capabilities", []))
    if req.model in models:
        tool_models = sorted(n for n, m in models.items() if "tools" in m.get("capabilities", []))
        openai_chat.require_tools_capability(req, capabilities, tool_models)
    neutral = openai_chat.to_neutral(req, capabilities)
    stream, first = await _start(ctx, caller, req.model, neutral)
    try:
        renderer = openai_chat.ChatRenderer(req.model)
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return await _stream_chat(request, stream, first, renderer, include_usage)
        return await _complete_chat(stream, first, renderer, ctx.config)
    finally:
        stream.close()


async def _start(
    ctx: EdgeContext, caller: Caller, model: str, neutral: dict[str, Any]
) -> tuple[TunnelStream, Delta | Embeddings | End]:
    """Check the key's scope and limits, then open the stream and wait for its first event,
    failing over to another machine when one refuses or drops the request before it produced
    anything (a retryable ERROR). The request's record sees every event the caller reads."""
    caller.ensure_model_allowed(model)
    model = neutral["model"] = caller.real_model(model)  # what the machines know it as
    record = caller.record
    record.model = model
    admission = await ctx.limits.admit(caller.key, neutral, time.time())
    record.admission = admission
    tenant_id = caller.tenant.id
    tried: frozenset[str] = frozenset()
    while True:
        session = await ctx.registry.acquire(
            tenant_id,
            model,
            ctx.config.queue_timeout,
            tried,
            caller.key.id,
            caller.key.limits.machine_id,
        )
        try:
            stream = session.open_stream(neutral, ctx.config.request_timeout)
        except LocalProtocolError as exc:  # e.g. nested deeper than a tunnel frame may be
            ctx.registry.notify()  # the slot reserved for it is free again
            raise bad_request(f"the request cannot be sent to a machine: {exc}") from None
        record.dispatch(session.machine_name, admission.prompt_estimate)
        stream.observer = record.observe
        try:
            first = await _first_event(stream, ctx.config.first_token_timeout)
        except BaseException:
            stream.close()
            raise
        if not isinstance(first, Error):
            return stream, first
        stream.close()
        tried |= {session.machine_id}
        retry = ctx.registry.candidates(tenant_id, model, tried, caller.key.limits.machine_id)
        if not (first.retryable and retry):
            raise from_stream_error(first.code, first.message)
        log.info("retrying on another machine after %s: %s", first.code, first.message)


async def _first_event(stream: TunnelStream, timeout: float) -> StreamEvent:
    try:
        async with asyncio.timeout(timeout):
            return await stream.next()
    except TimeoutError:
        raise ApiError(
            504, "backend_timeout", f"the model produced nothing within {timeout:g} s"
        ) from None


class Renderer(Protocol):
    """What the stream and collect loops below need from a renderer (chat, completions)."""

    def first_chunk(self) -> dict[str, Any]: ...
    def delta_chunk(self, frame: Delta) -> dict[str, Any]: ...
    def finish_chunk(self, end: End) -> dict[str, Any]: ...
    def usage_chunk(self, end: End) -> dict[str, Any]: ...
    def completion(self, deltas: list[Delta], end: End) -> dict[str, Any]: ...


async def collect(
    stream: TunnelStream, first: Delta | Embeddings | End, config: EdgeConfig
) -> tuple[list[Delta], End]:
    """A non-streaming request's whole reply: its deltas and END, or the ``ApiError`` it ended
    with: the backend's error, 504 past the request timeout, or 502 when the reply outgrows
    ``config.max_reply_bytes`` (the edge holds a whole non-streaming reply in memory)."""
    deltas: list[Delta] = []
    size = 0
    event: TextEvent = as_text(first)
    try:
        async with asyncio.timeout(config.request_timeout):
            while isinstance(event, Delta):
                size += event.flow_size
                if size > config.max_reply_bytes:
                    raise ApiError(
                        502,
                        "reply_too_large",
                        f"the reply grew past {config.max_reply_bytes:,} bytes, the most the edge"
                        " holds for a request without `stream`; ask for a stream instead",
                    )
                deltas.append(event)
                event = await stream.next_text()
    except TimeoutError:
        raise ApiError(
            504, "backend_timeout", f"the reply took longer than {config.request_timeout:g} s"
        ) from None
    if isinstance(event, Error):
        raise from_stream_error(event.code, event.message)
    return deltas, event


async def _complete_chat(
    stream: TunnelStream, first: Delta | Embeddings | End, renderer: Renderer, config: EdgeConfig
) -> web.Response:
    deltas, end = await collect(stream, first, config)
    return web.json_response(renderer.completion(deltas, end))


async def text_events(
    stream: TunnelStream, first: Delta | Embeddings | End, timeout: float
) -> AsyncIterator[Delta | End | ApiError]:
    """A streaming reply's events in order, up to its END; a backend error, or ``timeout``
    passing, ends it with the ``ApiError`` the client should see as the stream's last event."""
    deadline = time.monotonic() + timeout
    event: TextEvent = as_text(first)
    while isinstance(event, Delta):
        yield event
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                event = await stream.next_text()
        except TimeoutError:
            error = ApiError(504, "backend_timeout", "the reply took longer than allowed")
            if stream.observer is not None:  # the audit files the request under this code
                stream.observer(Error(stream.stream_id, error.code, error.message, False))
            yield error
            return
    yield event if isinstance(event, End) else from_stream_error(event.code, event.message)


async def _stream_chat(
    request: web.Request,
    stream: TunnelStream,
    first: Delta | Embeddings | End,
    renderer: Renderer,
    include_usage: bool,
) -> web.StreamResponse:
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    await _send(response, renderer.first_chunk())
    timeout = request.app[CONTEXT].config.request_timeout
    async for event in text_events(stream, first, timeout):
        if isinstance(event, Delta):
            await _send(response, renderer.delta_chunk(event))
        elif isinstance(event, End):
            await _send(response, renderer.finish_chunk(event))
            if include_usage:
                await _send(response, renderer.usage_chunk(event))
            await response.write(b"data: [DONE]\n\n")
        else:
            # The OpenAI SDKs raise APIError on a chunk carrying "error": the client learns the
            # stream failed instead of seeing a reply that just stops.
            await _send(response, event.body())
    await response.write_eof()
    return response


async def send_events(
    response: web.StreamResponse, events: list[tuple[str, dict[str, Any]]]
) -> None:
    """Named SSE events (``event:`` + ``data:``), as the Anthropic and Responses APIs stream;
    one write per neutral event, since the tunnel already coalesced its tokens."""
    if events:
        await response.write(
            b"".join(
                f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
                for name, data in events
            )
        )


async def _send(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n")


@routes.get("/v1/models/{model:.+}")  # names hold ':' and may hold '/' (library/qwen3:8b)
async def retrieve_model(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    name = request.match_info["model"]
    if name not in _visible_models(request.app[CONTEXT], caller):  # as /v1/models lists them
        raise ApiError(
            404,
            "model_not_found",
            f"The model `{name}` does not exist or no online machine serves it to this key",
            param="model",
        )
    created = int(caller.tenant.created_at)
    return web.json_response(
        {"id": name, "object": "model", "created": created, "owned_by": caller.tenant.slug}
    )
