"""Reading a tunnel stream into a reply: streamed as it comes, or collected whole.

Both start from the stream's first event (the pipeline waited for it before committing to a
status) and end with the stream's END, or with the ``ApiError`` the client sees instead: the
backend's error, 504 past the request's deadline, 502 past the size a collected reply may have.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from aiohttp import web

from edge.agents.stream import StreamEvent, TextEvent, TunnelStream, as_text
from edge.api import sse
from edge.api.dialect import TextRenderer
from edge.config import EdgeConfig
from edge.errors import ApiError, from_stream_error
from protocol import Delta, Embeddings, End, Error


async def text_events(
    stream: TunnelStream, first: StreamEvent, timeout: float
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
            stream.expire(error.code, error.message)
            yield error
            return
    yield event if isinstance(event, End) else from_stream_error(event.code, event.message)


async def stream_text(
    request: web.Request,
    stream: TunnelStream,
    first: StreamEvent,
    renderer: TextRenderer,
    config: EdgeConfig,
    finished: Callable[[], Awaitable[None]],
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """The reply as server-sent events, written as the tunnel delivers them; ``finished`` runs
    once the reply is complete, before the client hears so. ``headers`` are the dialect's own.

    Events that are ready together leave in one write (one TLS record, one send): the head with
    the first delta, and the last delta with the end, its usage, ``[DONE]`` and the chunked
    body's terminator. An event is held only while the next one is already here, never while
    waiting for the machine."""
    response = web.StreamResponse(headers={**sse.HEADERS, **(headers or {})})
    await response.prepare(request)
    out = [renderer.head()]
    async for event in text_events(stream, first, config.request_timeout):
        if isinstance(event, Delta):
            out.append(renderer.delta(event))
            if not stream.ready():  # else what is here already goes in the same write
                await response.write(b"".join(out))
                out.clear()
        elif isinstance(event, End):
            out.append(renderer.end(event))
            await finished()
        else:
            out.append(renderer.error(event))
    await response.write_eof(b"".join(out))
    return response


async def collect_text(
    stream: TunnelStream, first: StreamEvent, config: EdgeConfig
) -> tuple[list[Delta], End]:
    """A non-streaming request's whole reply: its deltas and END, or the ``ApiError`` it ended
    with. The edge holds the reply whole, so it may not outgrow ``config.max_reply_bytes``."""
    deltas: list[Delta] = []
    size = 0
    event: TextEvent = as_text(first)
    try:
        async with asyncio.timeout(config.request_timeout):
            while isinstance(event, Delta):
                size += event.flow_size
                if size > config.max_reply_bytes:
                    raise _too_large("reply", config)
                deltas.append(event)
                event = await stream.next_text()
    except TimeoutError:
        raise ApiError(
            504, "backend_timeout", f"the reply took longer than {config.request_timeout:g} s"
        ) from None
    if isinstance(event, Error):
        raise from_stream_error(event.code, event.message)
    return deltas, event


async def collect_vectors(
    stream: TunnelStream, first: StreamEvent, inputs: int, config: EdgeConfig
) -> tuple[list[bytes], End]:
    """An ``embed`` stream's vectors in input order, and its END."""
    vectors: list[bytes] = []
    size = 0
    event: StreamEvent = first
    try:
        async with asyncio.timeout(config.request_timeout):
            while isinstance(event, Embeddings):
                if event.index != len(vectors):
                    raise ApiError(502, "backend_error", "the machine sent embeddings out of order")
                if len(vectors) + len(event.vectors) > inputs:
                    raise ApiError(
                        502, "backend_error", "the machine sent more embeddings than inputs"
                    )
                size += event.flow_size
                if size > config.max_reply_bytes:
                    raise _too_large("embeddings", config)
                vectors.extend(event.vectors)
                event = await stream.next()
    except TimeoutError:
        raise ApiError(504, "backend_timeout", "the embeddings took longer than allowed") from None
    if isinstance(event, Delta):
        raise ApiError(502, "backend_error", "the machine answered an embed request with text")
    if isinstance(event, Error):
        raise from_stream_error(event.code, event.message)
    if len(vectors) != inputs:
        raise ApiError(
            502, "backend_error", f"the machine sent {len(vectors)} embeddings for {inputs} inputs"
        )
    return vectors, event


def _too_large(what: str, config: EdgeConfig) -> ApiError:
    return ApiError(
        502,
        "reply_too_large",
        f"the {what} grew past {config.max_reply_bytes:,} bytes, the most the edge holds for a "
        "request without `stream`; ask for a stream instead",
    )
