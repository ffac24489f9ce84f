"""A tiny RESP server on loopback that answers each command as a test says: an error reply
(``-MISCONF …``), silence (a command that times out), or a connection closed under it. Real
redis-server cannot be made to do each of these on cue."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

# What the handler answers a command with: bytes to send, ``None`` to say nothing (the client
# times out), or ``CLOSE`` to drop the connection without an answer.
CLOSE = b"<close>"
Handler = Callable[[list[bytes]], Awaitable[bytes | None]]


@dataclass
class FakeRedis:
    handler: Handler
    commands: list[list[bytes]] = field(default_factory=list)  # as received, in order
    connections: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    async def __aenter__(self) -> FakeRedis:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                command = await _read_command(reader)
                if command is None:
                    return
                if command[0].upper() == b"CLIENT":  # SETINFO, on connecting
                    writer.write(b"+OK\r\n")
                    continue
                if command[0].upper() == b"HELLO":  # redis-py 8 speaks RESP3 by default
                    writer.write(b"%1\r\n+proto\r\n:3\r\n")
                    continue
                if command[0].upper() == b"PING":  # its health check of a new connection
                    writer.write(b"+PONG\r\n")
                    continue
                self.commands.append(command)
                answer = await self.handler(command)
                if answer == CLOSE:
                    return
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


async def _read_command(reader: asyncio.StreamReader) -> list[bytes] | None:
    header = await reader.readline()
    if not header:
        return None
    assert header.startswith(b"*"), header
    parts = []
    for _ in range(int(header[1:])):
        size = int((await reader.readline())[1:])
        parts.append((await reader.readexactly(size + 2))[:-2])
    return parts
