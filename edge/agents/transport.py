"""The tunnel's transport over aiohttp's server WebSocket (``llmtunnel.tunnel.Transport``).

aiohttp's own exceptions and message types stop here: a link that is gone is ``ConnectionError``
or ``None`` from ``recv``, anything but a binary message is a ``RemoteProtocolError``.
"""

from __future__ import annotations

import asyncio

from aiohttp import WSMsgType, web

from protocol import RemoteProtocolError

_CLOSED = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED})


class AiohttpTransport:
    def __init__(
        self, ws: web.WebSocketResponse, raw: asyncio.Transport | None, close_timeout: float
    ) -> None:
        self._ws = ws
        self._raw = raw  # the TCP transport under it, to cut the link without a handshake
        self._close_timeout = close_timeout

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
        # aiohttp bounds the wait for the peer's answer, not the write of the close frame to a
        # peer that does not read: bound the whole handshake, then cut.
        try:
            async with asyncio.timeout(self._close_timeout):
                await self._ws.close(code=code, message=reason.encode())
        except TimeoutError:
            self.abort()
        except ConnectionError:
            pass

    def abort(self) -> None:
        if self._raw is not None:
            self._raw.abort()
