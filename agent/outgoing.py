"""A stream's output waiting for credit, and how much of it the next frame may carry (§8).

The backend call appends to its stream's ``Outgoing``; the session's writer takes from it as
credit allows. While the writer waits on the socket or on credit, text piles up here and leaves
in one frame: at low load each token goes at once, at high load the per-token cost disappears
(DESIGN.md "coalesced"). ``pending_size`` lets the stream's task stop reading from the backend
once a window's worth waits, so a slow client cannot fill the agent's memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from agent.backend import Piece, Vectors
from protocol import Delta, Embeddings, End, Error
from protocol.frames import ToolCall, tool_call_size


@dataclass(slots=True)
class Outgoing:
    """A stream's output not yet sent, and the frame that will end it."""

    thinking: str = ""
    content: str = ""
    tool_calls: deque[ToolCall] = field(default_factory=deque)
    tool_call_bytes: int = 0
    vectors: deque[bytes] = field(default_factory=deque)
    vector_index: int = 0  # the input index of the first vector in ``vectors``
    vector_bytes: int = 0
    final: End | Error | None = None
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pending_size(self) -> int:
        """Roughly the credit the waiting output needs (text counted in characters)."""
        return len(self.thinking) + len(self.content) + self.tool_call_bytes + self.vector_bytes

    def add(self, piece: Piece | Vectors) -> None:
        if isinstance(piece, Vectors):
            self.vectors.extend(piece.vectors)
            self.vector_bytes += sum(len(v) for v in piece.vectors)
        else:
            self.thinking += piece.thinking
            self.content += piece.content
            self.tool_calls.extend(piece.tool_calls)
            self.tool_call_bytes += sum(tool_call_size(call) for call in piece.tool_calls)
        self.drained.clear()

    def take(self, stream_id: int, credit: int) -> Delta | Embeddings | None:
        """Up to ``credit`` bytes (PROTOCOL.md §8): text first, thinking before content, cut
        between any two characters; then whole tool calls, in order, while the credit left
        covers the next one. A tool call is never split. Else as many whole vectors as the
        credit pays for."""
        if self.thinking or self.content or self.tool_calls:
            thinking, self.thinking, credit = split_utf8(self.thinking, credit)
            content, self.content, credit = split_utf8(self.content, credit)
            calls: list[ToolCall] = []
            if not (self.thinking or self.content):  # a call never overtakes text before it
                while self.tool_calls and (size := tool_call_size(self.tool_calls[0])) <= credit:
                    calls.append(self.tool_calls.popleft())
                    self.tool_call_bytes -= size
                    credit -= size
            if not (thinking or content or calls):
                return None
            return Delta(stream_id, content, thinking, calls)
        taken: list[bytes] = []
        while self.vectors and len(self.vectors[0]) <= credit:
            vector = self.vectors.popleft()
            credit -= len(vector)
            self.vector_bytes -= len(vector)
            taken.append(vector)
        if not taken:
            return None
        frame = Embeddings(stream_id, self.vector_index, taken)
        self.vector_index += len(taken)
        return frame

    @property
    def empty(self) -> bool:
        return not (self.thinking or self.content or self.tool_calls or self.vectors)


def split_utf8(text: str, budget: int) -> tuple[str, str, int]:
    """The longest prefix of ``text`` within ``budget`` UTF-8 bytes, the rest, the budget left."""
    data = text.encode()
    if len(data) <= budget:
        return text, "", budget - len(data)
    head = data[:budget].decode("utf-8", "ignore")  # never cut a character in half
    used = len(head.encode())
    return head, text[len(head) :], budget - used
