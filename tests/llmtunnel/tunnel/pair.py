"""Two ends of a tunnel over ``socket.socketpair()``, for testing ``llmtunnel.tunnel`` without a
WebSocket: ``SocketTransport`` frames each message with a 4-byte length, as a WebSocket would
frame it, and records what it saw so that tests can look at the wire."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec

from llmtunnel.tunnel import agent_login, edge_login
from protocol import (
    AgentLogin,
    Claim,
    Connection,
    EdgeLogin,
    Frame,
    Hello,
    Ready,
    Role,
    TunnelLimits,
    encode,
)
from protocol.codec import decode_many
from tests.virtual_time import virtual_time

HOST = "edge.test"
MACHINE = "m_1"
HELLO = Hello("test", 8, [{"name": "m", "capabilities": ["completion"]}])
P = ParamSpec("P")
_OPENED: list[SocketTransport] = []


class SocketTransport:
    """``llmtunnel.tunnel.Transport`` over one end of a stream socket pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received: list[bytes] = []
        self.closed_with: int | None = None
        self.aborted = False

    async def send(self, data: bytes) -> None:
        if self.writer.is_closing():
            raise ConnectionResetError("the socket is closed")
        self.writer.write(len(data).to_bytes(4, "big") + data)
        await self.writer.drain()

    async def recv(self) -> bytes | None:
        try:
            size = int.from_bytes(await self.reader.readexactly(4), "big")
            data = await self.reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        self.received.append(data)
        return data

    async def close(self, code: int, reason: str = "") -> None:
        self.closed_with = code
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()

    def abort(self) -> None:
        self.aborted = True
        self.writer.transport.abort()

    # ------------------------------------------------------------------ for hand-driven peers

    def stop_reading(self) -> None:
        """Read nothing more, so that the other end's writes stall once the buffers are full."""
        transport = self.writer.transport
        assert isinstance(transport, asyncio.ReadTransport)
        transport.pause_reading()

    async def frames(self) -> list[Frame]:
        """Everything that arrives until the other end closes, decoded."""
        while await self.recv() is not None:
            pass
        return [frame for data in self.received for frame in decode_many(data, len(data))]

    async def send_frame(self, frame: Frame) -> None:
        await self.send(encode(frame))


async def socket_pair() -> tuple[SocketTransport, SocketTransport]:
    """The edge's end and the agent's."""
    edge_sock, agent_sock = socket.socketpair()
    ends = [await asyncio.open_connection(sock=sock) for sock in (edge_sock, agent_sock)]
    edge, agent = (SocketTransport(reader, writer) for reader, writer in ends)
    _OPENED.extend((edge, agent))
    return edge, agent


def on_socket_pairs(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run ``test`` on a virtual clock (``tests.virtual_time``), then close every socket pair
    it opened and left open."""

    @functools.wraps(test)
    async def body(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            await test(*args, **kwargs)
        finally:
            for end in _OPENED:
                end.writer.transport.abort()
            _OPENED.clear()
            await asyncio.sleep(0)  # the transports close on the next turn of the loop

    return virtual_time(body)


def sign(message: bytes) -> bytes:
    """A stand-in for the machine key: 64 bytes only this test suite makes."""
    return hashlib.sha512(b"machine key" + message).digest()


async def verify(claim: Claim) -> str | None:
    return claim.machine_id if claim.signature == sign(claim.message) else None


@dataclass
class End:
    transport: SocketTransport
    conn: Connection


async def logged_in(limits: TunnelLimits) -> tuple[End, End, Ready]:
    """Both ends logged in over a fresh socket pair, with the drivers under test."""
    edge_t, agent_t = await socket_pair()
    edge = EdgeLogin(Connection(Role.EDGE), HOST, limits)
    agent = AgentLogin(Connection(Role.AGENT), HOST, MACHINE, sign, HELLO)
    (machine, hello), ready = await asyncio.gather(
        edge_login(edge_t, edge, verify, limits.handshake_timeout),
        agent_login(agent_t, agent, limits.handshake_timeout),
    )
    assert (machine, hello) == (MACHINE, HELLO)
    edge_t.received.clear()  # tests look at what the link sends, not at the login
    agent_t.received.clear()
    return End(edge_t, edge.conn), End(agent_t, agent.conn), ready
