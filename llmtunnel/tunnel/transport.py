"""The thin transport the asyncio adapter runs over: one binary message at a time, both ways.

Each end supplies its own, a few lines over its WebSocket library (aiohttp on the edge,
websockets on the agent), translating that library's exceptions once, here at the boundary, so
that ``Link`` sees one family: ``ConnectionError`` for a link that is gone, ``RemoteProtocolError``
for a message that is not binary (PROTOCOL.md §1).
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class Transport(Protocol):
    async def send(self, data: bytes) -> None:
        """Write ``data`` as one binary message. ``ConnectionError`` once the link is gone. May
        wait as long as the peer does not read: the caller bounds it in time."""

    async def recv(self) -> bytes | None:
        """The next binary message; ``None`` once the peer closed the link. A text message is a
        ``RemoteProtocolError``; a link that broke is a ``ConnectionError``."""

    async def close(self, code: int, reason: str = "") -> None:
        """The closing handshake with the WebSocket close ``code``, bounded in time by the
        transport. Never raises, even on a link that is already gone."""

    def abort(self) -> None:
        """Cut the connection now, without a handshake (a peer that does not read would only
        make one wait)."""


async def send_all(transport: Transport, batch: list[bytes], bound: float | None = None) -> None:
    """Write ``batch`` in order. With ``bound``, each write may take that many seconds, or
    ``TimeoutError``: a peer that stops reading is found at the first write it does not take
    (PROTOCOL.md §9), however long the batch."""
    if not batch:
        return
    loop = asyncio.get_running_loop()
    # One timer for the batch, moved on at each write: each write gets the whole bound.
    async with asyncio.timeout(None) as deadline:
        for data in batch:
            if bound is not None:
                deadline.reschedule(loop.time() + bound)
            await transport.send(data)
