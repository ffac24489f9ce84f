"""The tunnel's transport over aiohttp's server WebSocket (``protocol.aio.Transport``).

aiohttp's own exceptions and message types stop here: a link that is gone is ``ConnectionError``
or ``None`` from ``recv``, anything but a binary message is a ``RemoteProtocolError``.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

from protocol import RemoteProtocolError

_CLOSED = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED})


class AiohttpTransport:
    def __init__(self, ws: web.WebSocketResponse, raw: asyncio.Transport | None) -> None:
        self._ws = ws
        self._raw = raw  # the TCP transport under it, to cut the link without a handshake

    async def send(self, data: bytes) -> None:
        await self._ws.send_bytes(data)  # ClientConnectionResetError is a ConnectionError

    async def recv(self) -> bytes | None:
        message = await self._ws.receive()
        if message.type is WSMsgType.BINARY:
            data: bytes = message.data
            return data
        if message.type in _CLOSED:
            return None
        # TEXT, or ERROR: aiohttp already closed (1009 for a message over max_msg_size).
        raise RemoteProtocolError(f"unexpected WebSocket {message.type.name} message")

    async def close(self, code: int, reason: str = "") -> None:
        # Bounded by the WebSocketResponse's timeout: how long the peer may take to answer.
        with contextlib.suppress(ConnectionError):
            await self._ws.close(code=code, message=reason.encode())

    def abort(self) -> None:
        if self._raw is not None:
            self._raw.abort()
