"""The tunnel's transport over the websockets client connection (``llmtunnel.tunnel.Transport``).

websockets' exceptions stop here: a link closed cleanly is ``None`` from ``recv``, one that broke
is a ``ConnectionError``, a text message is a ``RemoteProtocolError``.
"""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

from protocol import RemoteProtocolError


class WebsocketsTransport:
    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def send(self, data: bytes) -> None:
        try:
            await self._ws.send(data)
        except ConnectionClosed as exc:
            raise ConnectionResetError(str(exc)) from exc

    async def recv(self) -> bytes | None:
        try:
            message = await self._ws.recv()
        except ConnectionClosedOK:
            return None
        except ConnectionClosed as exc:
            raise ConnectionResetError(str(exc)) from exc
        if isinstance(message, str):
            raise RemoteProtocolError("unexpected text message")
        return message

    async def close(self, code: int, reason: str = "") -> None:
        # Bounded by the connection's close_timeout; websockets does not raise here.
        await self._ws.close(code, reason)

    def abort(self) -> None:
        self._ws.transport.abort()
