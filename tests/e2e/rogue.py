"""A rogue agent for tests: a really paired machine that speaks the tunnel protocol by hand.

It logs in with its machine key exactly as ``agent.login.login`` does, through its own
``protocol.Connection`` (so what it sends through ``send`` is checked and counted like a real
agent's), and can also put any bytes on the wire (``send_raw``): frames out of state, beyond
credit, malformed. Built on the project's ``protocol`` package and the ``websockets`` client.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from agent.config import AgentConfig
from agent.login import dialed_host
from protocol import (
    Auth,
    Challenge,
    Connection,
    Error,
    Frame,
    Hello,
    ProtocolError,
    Ready,
    Role,
    auth_message,
    choose_version,
)
from protocol.codec import AGENT_MAX_RECEIVE_FRAME, decode_many

MODELS: list[dict[str, Any]] = [{"name": "rogue:1b", "capabilities": ["completion", "tools"]}]
F = TypeVar("F", bound=Frame)


class Refused(Exception):
    """The edge turned the login down with ERROR on stream 0."""

    def __init__(self, error: Error) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


@dataclass
class Ending:
    """How the edge ended the link: the WebSocket close code and the frames it sent first."""

    code: int | None
    frames: list[Frame] = field(default_factory=list)

    @property
    def errors(self) -> list[tuple[str, str]]:
        """(code, message) of every ERROR on stream 0 the edge sent."""
        return [
            (f.code, f.message) for f in self.frames if isinstance(f, Error) and not f.stream_id
        ]


class RogueAgent:
    def __init__(self, ws: ClientConnection, conn: Connection, ready: Ready) -> None:
        self.ws = ws
        self.conn = conn
        self.ready = ready
        self._pending: collections.deque[Frame] = collections.deque()  # read, not yet returned

    @classmethod
    async def login(
        cls,
        config: AgentConfig,
        *,
        hello: bool = True,
        models: list[dict[str, Any]] | None = None,
        receive_buffer: int | None = None,
    ) -> RogueAgent:
        """Dial and log in (CHALLENGE → AUTH → READY, then HELLO unless ``hello`` is False).
        ``receive_buffer`` shrinks the socket's receive buffer, so that not reading stalls the
        edge's writes after a few kilobytes instead of megabytes. ``Refused`` if turned away."""
        parts = urlsplit(config.edge_url)
        sock = socket.socket()
        if receive_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", parts.port or 443))
        ws = await connect(
            config.connect_url,
            sock=sock,
            ssl=config.ssl_context(),
            max_size=None,
            ping_interval=None,
            compression=None,
            open_timeout=10,
        )
        try:
            conn = Connection(Role.AGENT, max_receive_frame=AGENT_MAX_RECEIVE_FRAME)
            challenge = conn.receive(await _recv(ws))
            assert isinstance(challenge, Challenge)
            host = dialed_host(config.edge_url)
            version = choose_version(challenge.versions)
            signature = config.signing_key().sign(auth_message(challenge.nonce, host, version))
            conn.send(Auth(config.machine_id, version, signature))
            for data in conn.data_to_send():
                await ws.send(data)
            ready = conn.receive(await _recv(ws))
            if isinstance(ready, Error):
                raise Refused(ready)
            assert isinstance(ready, Ready)
            rogue = cls(ws, conn, ready)
            if hello:
                await rogue.send(Hello("rogue", 64, MODELS if models is None else models))
        except BaseException:
            await ws.close()
            raise
        return rogue

    async def send(self, frame: Frame) -> None:
        """Send ``frame`` as a well-behaved agent would: checked, and counted against credit."""
        self.conn.send(frame)
        await self.flush()

    async def flush(self) -> None:
        for data in self.conn.data_to_send():
            await self.ws.send(data)

    async def send_raw(self, data: bytes) -> None:
        """Put ``data`` on the wire as one binary message, whatever it is."""
        await self.ws.send(data)

    async def receive(self) -> Frame | None:
        """The next frame, through the connection: credit and stream state follow it. The
        connection's automatic replies (PONG) go out at once, as a real agent's do."""
        if not self._pending:
            self._pending.extend(self.conn.receive_message(await _recv(self.ws)))
            await self.flush()
        return self._pending.popleft() if self._pending else None

    @contextlib.asynccontextmanager
    async def answering_pings(self) -> AsyncIterator[list[Frame | None]]:
        """Meanwhile, read (and answer PINGs) in the background, as a live agent would; yields
        the frames read."""
        frames: list[Frame | None] = []

        async def read() -> None:
            while True:
                frames.append(await self.receive())

        reader = asyncio.create_task(read())
        try:
            yield frames
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    def stop_reading(self) -> None:
        """Read nothing more from the socket, so that the edge's writes to it stall."""
        self.ws.transport.pause_reading()

    async def expect(self, kind: type[F], timeout: float = 10.0) -> F:
        """Receive until a frame of ``kind`` arrives (answering nothing else)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.receive()
                if isinstance(frame, kind):
                    return frame

    async def ending(self, timeout: float = 10.0) -> Ending:
        """Read until the edge closes; decoded as they come, without our state machine (after a
        hand-made frame it may disagree with the edge's)."""
        ending = Ending(None)
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(timeout):
                async for message in self.ws:
                    assert isinstance(message, bytes)
                    with contextlib.suppress(ProtocolError):
                        ending.frames.extend(decode_many(message, max_frame=len(message)))
        ending.code = self.ws.close_code
        return ending

    async def close(self) -> None:
        self.ws.transport.abort()
        with contextlib.suppress(Exception):
            await self.ws.close()


async def _recv(ws: ClientConnection) -> bytes:
    message = await ws.recv()
    assert isinstance(message, bytes)
    return message
