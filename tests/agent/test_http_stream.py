"""The agent's HTTP pool (agent/http_stream.py) against a raw server that closes a kept-alive
connection the moment the next request arrives on it, as a runtime whose idle timeout ran out
does: the request goes again on a new connection, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent.http_stream import HttpStatusError, HttpStream

REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class OneRequestPerConnection:
    """Answers the first request on each connection; closes it when a second one comes."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answered = False
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                if answered:
                    break  # closed as the request arrives: nothing answered
                writer.write(REPLY)
                await writer.drain()
                answered = True
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, OneRequestPerConnection]]:
    handler = OneRequestPerConnection()
    listening = await asyncio.start_server(handler.serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", handler
    finally:
        listening.close()
        await listening.wait_closed()


async def test_a_connection_closed_under_a_request_is_replaced_once(
    server: tuple[str, OneRequestPerConnection],
) -> None:
    url, handler = server
    http = HttpStream(url, 4)
    try:
        assert await http.fetch("/a") == b"{}"
        assert await http.fetch("/b") == b"{}"  # the first connection, closed: sent again
        assert [line async for line in http.lines("/c", b"{}")] == [b"{}"]
    finally:
        await http.aclose()
    assert handler.connections == 3 and handler.requests == 5


async def test_an_error_status_keeps_the_runtimes_words() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"error": {"message": "no"}}'
        head = f"HTTP/1.1 400 Bad Request\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        writer.write(head + body)
        await writer.drain()
        writer.close()

    listening = await asyncio.start_server(refuse, "127.0.0.1", 0)
    http = HttpStream(f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}", 1)
    try:
        with pytest.raises(HttpStatusError) as refused:
            await http.fetch("/x")
    finally:
        await http.aclose()
        listening.close()
        await listening.wait_closed()
    assert (refused.value.status, refused.value.body) == (400, b'{"error": {"message": "no"}}')
