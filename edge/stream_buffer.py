"""DELTAs a tunnel stream has received and its reader has not taken yet, merged into bytes.

A reader slower than its machine (a client that reads slowly, or not at all) leaves DELTAs
waiting. Kept as frame objects, each would cost a few hundred bytes of Python objects whatever it
carries, so a machine sending one-byte DELTAs could make the edge hold hundreds of times the
credit it granted. Merged here into UTF-8 byte buffers, what waits costs about the bytes the
windows charged for it, and the windows bound those (PROTOCOL.md §8). Appending is amortised
O(1); the text is decoded once, when the reader takes it.
"""

from __future__ import annotations

import msgpack

from protocol import Delta
from protocol.frames import ToolCall


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
