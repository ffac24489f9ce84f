"""The agent's hot path to its runtime: streaming POSTs over one aiohttp keep-alive pool.

The ``ollama`` client costs most of the agent's CPU on a busy machine (an httpx/httpcore/anyio
stack and a pydantic model per line) and keeps fewer connections alive than requests run, so
connections were closed and dialed again under load (docs/ARCHITECTURE.md "The agent"). Here
one pool holds as many connections as the agent runs requests, lines are cut from whatever the
socket delivered, and the caller parses each line once. Discovery and management stay on the
``ollama`` client.

Leaving the response early (the stream was cancelled) closes its connection rather than
returning it to the pool: that is what tells the runtime to stop generating.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping

import aiohttp

MAX_LINE = 64 * 1024 * 1024  # one NDJSON line or SSE event: a whole tool call fits
MAX_ERROR_BODY = 64 * 1024  # of an error response, enough for any runtime's message
# A whole reply (a model list, a batch of embeddings): 2,048 inputs of 4,096 dimensions, as
# JSON floats, fit.
MAX_BODY = 256 * 1024 * 1024
CONNECT_TIMEOUT = 10.0


class HttpStatusError(Exception):
    """The runtime answered with an error status; ``body`` is (the start of) what it said."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


class LineTooLong(Exception):
    """A line grew past ``MAX_LINE`` without its newline (or a body past ``MAX_BODY``)."""


class HttpStream:
    """POST a body and read the reply's lines, on a pool of ``max_connections``. ``headers``
    go with every request (a runtime's ``Authorization``)."""

    def __init__(
        self, base_url: str, max_connections: int, headers: Mapping[str, str] | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._max_connections = max_connections
        self._headers = dict(headers or {})
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a ClientSession belongs to the running loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                # One runtime, no DNS to speak of, and its address must not be cached past a
                # restart on another port: nothing to gain from aiohttp's cache.
                use_dns_cache=False,
                keepalive_timeout=60.0,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # No overall timeout: a long generation is normal. Connecting must be quick.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def lines(
        self, path: str, body: bytes, content_type: str = "application/json"
    ) -> AsyncGenerator[bytes, None]:
        """POST ``body`` to ``path`` and yield each non-empty line of the reply, without its
        line ending. ``HttpStatusError`` for a status other than 200, ``LineTooLong``, or
        aiohttp's ``ClientError`` when the connection fails."""
        headers = {**self._headers, "Content-Type": content_type}
        async with self._client().post(self.base_url + path, data=body, headers=headers) as reply:
            if reply.status != 200:
                raise HttpStatusError(reply.status, await _read(reply, MAX_ERROR_BODY))
            buffer = bytearray()
            async for chunk in reply.content.iter_any():
                buffer += chunk
                start = 0
                while (end := buffer.find(b"\n", start)) >= 0:
                    line = bytes(buffer[start:end]).rstrip(b"\r")
                    start = end + 1
                    if line:
                        yield line
                del buffer[:start]
                if len(buffer) > MAX_LINE:
                    raise LineTooLong(f"a line of more than {MAX_LINE} bytes")
            if buffer.strip():
                yield bytes(buffer)  # the last line may end without a newline

    async def fetch(self, path: str, body: bytes | None = None, base_url: str = "") -> bytes:
        """The whole reply to a GET of ``path`` (a POST of ``body`` when given), from
        ``base_url`` or this stream's; the same errors as ``lines``, ``LineTooLong`` past
        ``MAX_BODY``."""
        url = (base_url or self.base_url) + path
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        method = "POST" if body is not None else "GET"
        async with self._client().request(method, url, data=body, headers=headers) as reply:
            if reply.status != 200:
                raise HttpStatusError(reply.status, await _read(reply, MAX_ERROR_BODY))
            data = await _read(reply, MAX_BODY + 1)
            if len(data) > MAX_BODY:
                raise LineTooLong(f"a reply of more than {MAX_BODY} bytes")
            return data

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read(reply: aiohttp.ClientResponse, limit: int) -> bytes:
    """The reply's body, or its first ``limit`` bytes: a read may return less than asked."""
    data = bytearray()
    async for chunk in reply.content.iter_any():
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data[:limit])
