"""The public API's one pipeline, which every dialect goes through (docs/ARCHITECTURE.md "The
path of one request").

    authenticate → read and parse the body → scope → the models this key sees → the dialect's
    neutral request → capabilities → alias → limits (admission) → a lease on a machine slot →
    OPEN → first event (failing over to another machine on a retryable refusal) → the reply,
    streamed or collected → the admission settled with what was really used

Nothing is committed to the client before the first event, so anything that fails until then
is a proper HTTP error; after it, a failure ends the stream with an error event in the
dialect's form, never a silent cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from edge.agents.stream import StreamEvent, TunnelStream
from edge.api import replies, sse
from edge.api.dialect import Call, Dialect, EmbeddingsDialect, P, R, TextDialect, TextRenderer
from edge.api.models import ModelInfo, visible_models
from edge.auth import authenticate
from edge.bodies import heavy_work, parse_object, read_raw
from edge.context import CONTEXT
from edge.errors import ApiError, from_stream_error
from edge.limits import Admission, estimate_prompt_tokens
from edge.model_names import resolve
from protocol import Delta, End, Error
from protocol.requests import ChatRequest, EmbedRequest, Request, with_model, with_num_predict

log = logging.getLogger(__name__)


async def serve_text(request: web.Request, dialect: TextDialect[P]) -> web.StreamResponse:
    """A text dialect's request, from the body to the last event."""
    call, prepared = await _prepare(request, dialect)
    async with _dispatched(call, prepared) as (sent, stream, first):
        assert not isinstance(sent, EmbedRequest)  # a text dialect makes a text request
        renderer = dialect.renderer(call, sent)
        config = call.ctx.config

        async def finished(renderer: TextRenderer = renderer) -> None:
            await dialect.finished(call, renderer)

        if call.req.stream:
            return await replies.stream_text(
                request, stream, first, renderer, config, finished, call.headers
            )
        deltas, end = await replies.collect_text(stream, first, config)
        body = renderer.body(deltas, end)
        await finished()
        return web.Response(
            body=sse.json_bytes(body), content_type="application/json", headers=call.headers
        )


async def serve_embeddings(request: web.Request, dialect: EmbeddingsDialect[P]) -> web.Response:
    """An embeddings dialect's request: its vectors, in one body."""
    call, prepared = await _prepare(request, dialect)
    async with _dispatched(call, prepared) as (sent, stream, first):
        assert isinstance(sent, EmbedRequest)
        vectors, end = await replies.collect_vectors(
            stream, first, len(sent.input), call.ctx.config
        )
    return web.Response(body=dialect.body(call, vectors, end), content_type="application/json")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A neutral request ready to be admitted: its model resolved, its prompt estimated."""

    request: Request
    prompt_estimate: int


async def _prepare(request: web.Request, dialect: Dialect[P, R]) -> tuple[Call[P], Prepared]:
    """Everything up to the key's limits. A large body is worked on through the shared lane,
    one step at a time (edge/bodies.py): what may hold the loop for tens of milliseconds goes
    in turns with other keys' large bodies, and other requests run between the steps."""
    ctx = request.config_dict[CONTEXT]
    caller = await authenticate(request)
    raw = await read_raw(request)
    async with heavy_work(request, raw) as pause:
        body = parse_object(raw)
        await pause()
        req = dialect.parse(body)
        caller.ensure_model_allowed(req.model)
        call = Call(ctx, caller, req, visible_models(ctx, caller))
        await pause()
        await dialect.prepare(call)
        neutral: Request = dialect.neutral(call)
        await pause()
        return call, ready(call, neutral)


def ready(call: Call[P], neutral: Request) -> Prepared:
    """What the pipeline checks and does to every dialect's neutral request before its limits:
    the capabilities every dialect shares, the alias resolved to the model the machines serve,
    the prompt estimated."""
    check_capabilities(call.models, call.model, neutral)
    target = call.caller.real_model(call.model)  # an alias: the model it stands for
    neutral = with_model(neutral, resolve(target, call.models) or target)  # as machines know it
    return Prepared(neutral, estimate_prompt_tokens(neutral))


def check_capabilities(models: dict[str, ModelInfo], model: str, request: Request) -> None:
    """400 when ``model`` is known here (in ``models``, what the key sees) and cannot do what
    ``request`` asks of it; an unknown model is the lease's to refuse (404, or 503)."""
    info = models.get(model)
    if info is None:
        return
    capabilities = info.get("capabilities", ())
    if isinstance(request, ChatRequest) and request.tools and "tools" not in capabilities:
        able = sorted(n for n, m in models.items() if "tools" in m.get("capabilities", ()))
        raise ApiError(
            400,
            "model_does_not_support_tools",
            f"The model `{model}` does not support tools. Models that do: "
            + (", ".join(able) or "none is online"),
            param="tools",
        )
    if isinstance(request, EmbedRequest) and "embedding" not in capabilities:
        raise ApiError(
            400,
            "model_does_not_support_embeddings",
            f"The model `{model}` does not make embeddings (no `embedding` capability)",
            param="model",
        )


@contextlib.asynccontextmanager
async def _dispatched(
    call: Call[P], prepared: Prepared
) -> AsyncIterator[tuple[Request, TunnelStream, StreamEvent]]:
    """Admit the request against the key's limits, open it on a machine and wait for its first
    event; yields what was sent, the stream and that event. Whatever happens after, the stream
    is closed and the admission settled with what the request really used."""
    key, record = call.caller.key, call.caller.record
    request = prepared.request
    record.model = request.model
    now = call.ctx.clock()
    admission = await call.ctx.limits.admit(key, request, now, prepared.prompt_estimate)
    record.admission = admission
    if admission.completion_cap is not None and not isinstance(request, EmbedRequest):
        request = with_num_predict(request, admission.completion_cap)
    stream: TunnelStream | None = None
    try:
        stream, first = await _open(call, request, admission)
        yield request, stream, first
    finally:
        if stream is not None:
            stream.close()
        prompt, completion = record.tokens_used()
        admission.settle(prompt + completion)


@contextlib.asynccontextmanager
async def text_reply(
    call: Call[P], prepared: Prepared
) -> AsyncIterator[AsyncIterator[Delta | End | ApiError]]:
    """The pipeline from admission on, for a dialect that is not one HTTP request per reply (the
    Realtime API: one WebSocket, a reply per ``response.create``). Admits ``prepared`` against
    the key's limits, leases a machine, opens the stream and waits for its first event, failing
    over as ``serve_text`` does (an ``ApiError`` until then); then yields the reply's events up
    to its END, or the ``ApiError`` it ended with. On leaving, however it is left (cancelled
    included), the stream is closed (CANCEL if it still runs) and the admission settled with
    what was really used."""
    async with _dispatched(call, prepared) as (sent, stream, first):
        assert not isinstance(sent, EmbedRequest)  # a text dialect makes a text request
        events = replies.text_events(stream, first, call.ctx.config.request_timeout)
        try:
            yield events
        finally:
            if isinstance(events, AsyncGenerator):  # closed now, not when collected
                await events.aclose()


async def _open(
    call: Call[P], request: Request, admission: Admission
) -> tuple[TunnelStream, StreamEvent]:
    """A stream of ``request`` and its first event, failing over to another machine when one
    refuses or drops the request before it produced anything (a retryable ERROR)."""
    ctx, key, record = call.ctx, call.caller.key, call.caller.record
    tenant_id, bound = call.caller.tenant.id, key.limits.machine_id
    tried: frozenset[str] = frozenset()
    while True:
        slot = await ctx.router.acquire(
            tenant_id, request, ctx.config.queue_timeout, tried, key.id, bound, record.request_id
        )
        stream = slot.open(request, ctx.config.request_timeout, record.request_id)
        record.dispatch(slot.machine_name, admission.prompt_estimate)
        stream.observer = record.observe
        stream.unreported_usage = record.upper_bound  # counted conservatively (PROTOCOL.md §7)
        try:
            first = await _first_event(stream, ctx.config.first_token_timeout)
        except BaseException:
            stream.close()
            raise
        if not isinstance(first, Error):
            return stream, first
        stream.close()
        tried |= {slot.machine_id}
        retry = ctx.router.can_retry(tenant_id, request.model, tried, bound)
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
