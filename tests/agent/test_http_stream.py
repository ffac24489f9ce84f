"""The agent's streaming HTTP client against a raw server: lines in the batches the socket
delivers them, whole however they are cut, bounded in length, and errors as they are; and a
kept-alive connection the server closes the moment the next request arrives on it, as a runtime
whose idle timeout ran out does: the request goes again on a new connection, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from agent.http_stream import MAX_LINE, HttpStatusError, HttpStream, LineTooLong

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_all(handler: Handler) -> list[list[bytes]]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = HttpStream(f"http://127.0.0.1:{port}", 1)
    try:
        return [batch async for batch in http.lines("/", b"{}")]
    finally:
        await http.aclose()
        server.close()


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes) -> None:
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(2)  # the body, "{}"
    writer.write(head + b"\r\nConnection: close\r\n\r\n")


async def test_lines_are_read_in_the_batches_they_arrive_in_and_a_long_one_whole() -> None:
    """A raw server writes three lines in one packet, then one line in three pieces, then a
    line of 1 MiB in many reads: the batches follow the reads, every line whole."""
    long = b'{"response":"' + b"x" * (1 << 20) + b'","done":false}'

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer(reader, writer, b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson")
        writer.write(b"a\nb\nc\n")
        await writer.drain()
        await asyncio.sleep(0.05)
        for part in (b"d", b"e", b"f\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(long + b"\nlast")
        await writer.drain()
        writer.close()

    batches = await read_all(handle)
    lines = [line for batch in batches for line in batch]
    assert lines == [b"a", b"b", b"c", b"def", long, b"last"]
    assert batches[0] == [b"a", b"b", b"c"] and batches[1] == [b"def"]


async def test_a_line_past_the_limit_is_refused_not_buffered() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer(reader, writer, b"HTTP/1.1 200 OK")
        chunk = b"x" * (1 << 20)
        for _ in range(MAX_LINE // len(chunk) + 2):
            writer.write(chunk)
            await writer.drain()
        writer.close()

    with pytest.raises(LineTooLong):
        await read_all(handle)


async def test_an_error_status_carries_the_body() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer(reader, writer, b"HTTP/1.1 404 Not Found\r\nContent-Length: 20")
        writer.write(b'{"error":"no model"}')
        await writer.drain()
        writer.close()

    with pytest.raises(HttpStatusError) as caught:
        await read_all(handle)
    assert (caught.value.status, caught.value.body) == (404, b'{"error":"no model"}')


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
        assert [batch async for batch in http.lines("/c", b"{}")] == [[b"{}"]]
    finally:
        await http.aclose()
    assert handler.connections == 3 and handler.requests == 5
