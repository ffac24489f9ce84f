"""One request's stream through a machine's tunnel, as the request handler reads it.

The session's read loop ``deliver``s each stream frame; the handler awaits ``next()``. What the
handler has not taken yet waits here, and a reader slower than its machine (a client that reads
slowly, or not at all) leaves DELTAs waiting. Kept as frame objects, each would cost a few hundred
bytes of Python objects whatever it carries, so a machine sending one-byte DELTAs could make the
edge hold hundreds of times the credit it granted. Consecutive DELTAs are therefore merged into
UTF-8 byte buffers (``PendingDeltas``): what waits costs about the bytes the windows charged for
it, and the windows bound those (PROTOCOL.md §8). Appending is amortised O(1); the text is decoded
once, when the reader takes it, and only then is its credit handed back.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import Callable
from typing import Protocol

import msgpack

from protocol import Delta, Embeddings, End, Error
from protocol.frames import ToolCall
from protocol.mux import FLOW_CONTROLLED

StreamEvent = Delta | Embeddings | End | Error
TextEvent = Delta | End | Error  # what the text dialects read


def as_text(event: StreamEvent) -> TextEvent:
    """A text dialect's view of an event: embeddings on a text request mean a confused agent,
    which the client learns as a backend error rather than a reply that stops."""
    if isinstance(event, Embeddings):
        message = "the machine answered a text request with embeddings"
        return Error(event.stream_id, "backend_error", message, False)
    return event


class StreamOwner(Protocol):
    """What a stream needs from the session it runs on."""

    def consumed(self, stream_id: int, size: int) -> None:
        """The reader took ``size`` bytes of flow-controlled output: credit may go back."""

    def forget(self, stream: TunnelStream, cancel_reason: str | None) -> None:
        """The stream is over for its reader; CANCEL it with ``cancel_reason`` if it runs."""


class PendingDeltas:
    """Consecutive DELTAs of one stream, read back as one DELTA carrying all of them."""

    __slots__ = ("_calls", "_content", "_thinking", "size")

    def __init__(self) -> None:
        self._content = bytearray()
        self._thinking = bytearray()
        # Tool calls as msgpack arrays [id, name, arguments], back to back: a few bytes of
        # framing each instead of a dict and three str objects.
        self._calls = bytearray()
        self.size = 0  # the bytes charged for everything held (§8)

    def add(self, delta: Delta) -> int:
        """Hold ``delta``; returns what it was charged, its ``flow_size``."""
        content = delta.content.encode()
        thinking = delta.thinking.encode()
        size = len(content) + len(thinking)
        self._content += content
        self._thinking += thinking
        for call in delta.tool_calls:
            fields = (call["id"].encode(), call["name"].encode(), call["arguments"].encode())
            size += sum(len(field) for field in fields)
            self._calls += msgpack.packb(fields, use_bin_type=False)
        self.size += size
        return size

    def take(self, stream_id: int) -> Delta:
        """Everything held, as one DELTA: the texts joined, the tool calls in order."""
        calls: list[ToolCall] = []
        if self._calls:
            unpacker = msgpack.Unpacker(raw=False, max_buffer_size=len(self._calls))
            unpacker.feed(self._calls)
            calls = [{"id": i, "name": n, "arguments": a} for i, n, a in unpacker]
        return Delta(stream_id, self._content.decode(), self._thinking.decode(), calls)


class TunnelStream:
    """One request's view of its stream: events in arrival order, credit given back as read.

    Consecutive DELTAs the reader has not taken yet are merged into one ``PendingDeltas``, so
    a stream holds at most its window in bytes however many frames carried them (§8)."""

    def __init__(self, owner: StreamOwner, stream_id: int) -> None:
        self.owner = owner
        self.stream_id = stream_id
        self.finished = False
        self.buffered = 0  # bytes received, not yet read: at most the window (§8)
        self.observer: Callable[[StreamEvent], None] | None = None  # sees each event read
        # The counts an END stands in for when its runtime reported none (PROTOCOL.md §7): the
        # request's upper bound, from what the pipeline knows of it (edge/audit.py).
        self.unreported_usage: Callable[[], tuple[int, int]] | None = None
        self._events: deque[PendingDeltas | Embeddings | End | Error] = deque()
        self._arrived = asyncio.Event()

    def deliver(self, frame: StreamEvent) -> None:
        if isinstance(frame, Delta):
            pending = self._events[-1] if self._events else None
            if not isinstance(pending, PendingDeltas):
                pending = PendingDeltas()
                self._events.append(pending)
            self.buffered += pending.add(frame)
        else:
            if isinstance(frame, Embeddings):
                self.buffered += frame.flow_size
            self._events.append(frame)
        self._arrived.set()

    async def next(self) -> StreamEvent:
        """The next DELTA (every DELTA received since the last read, merged), EMBEDDINGS, END or
        ERROR. Credit for what it carries is returned once the caller has it."""
        while not self._events:
            self._arrived.clear()
            await self._arrived.wait()
        event = self._take(self._events.popleft())
        if not isinstance(event, FLOW_CONTROLLED):
            self.finished = True
            if isinstance(event, End) and not event.usage_reported:
                event = self._with_upper_bound(event)
        if self.observer is not None:
            self.observer(event)
        return event

    def _with_upper_bound(self, end: End) -> End:
        """An END whose runtime counted nothing, with counts that bound what it used: what
        the client is shown and the key is charged (still marked as not reported)."""
        if self.unreported_usage is None:
            return end
        prompt, completion = self.unreported_usage()
        return dataclasses.replace(end, prompt_tokens=prompt, completion_tokens=completion)

    def ready(self) -> bool:
        """Whether ``next()`` would return at once."""
        return bool(self._events)

    async def next_text(self) -> TextEvent:
        return as_text(await self.next())

    def expire(self, code: str, message: str) -> None:
        """The edge's deadline for the stream passed: its reader learns why (the audit files
        the request under ``code``), and the machine is told to stop."""
        if self.observer is not None:
            self.observer(Error(self.stream_id, code, message, False))
        self.close("deadline")

    def close(self, reason: str = "client_closed") -> None:
        """Stop the stream if it is still running (CANCEL), and hand back unread credit."""
        self.owner.forget(self, reason if not self.finished else None)
        while self._events:
            self._take(self._events.popleft())
        self.finished = True

    def _take(self, item: PendingDeltas | Embeddings | End | Error) -> StreamEvent:
        """``item`` as the reader sees it; its bytes are read now, so their credit goes back."""
        if isinstance(item, PendingDeltas):
            event: StreamEvent = item.take(self.stream_id)
            size = item.size
        else:
            event = item
            size = item.flow_size if isinstance(item, Embeddings) else 0
        if size:
            self.buffered -= size
            self.owner.consumed(self.stream_id, size)
        return event
