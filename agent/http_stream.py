"""The agent's hot path to its runtime: streaming POSTs over one aiohttp keep-alive pool.

The ``ollama`` client costs most of the agent's CPU on a busy machine (an httpx/httpcore/anyio
stack and a pydantic model per line) and keeps fewer connections alive than requests run, so
connections were closed and dialed again under load (docs/ARCHITECTURE.md "The agent"). Here
one pool holds as many connections as the agent runs requests, lines are cut from whatever the
socket delivered, and the caller parses each line once. Discovery and management stay on the
``ollama`` client.

Leaving the response early (the stream was cancelled) closes its connection rather than
returning it to the pool: that is what tells the runtime to stop generating.

A kept-alive connection the runtime has closed meanwhile (uvicorn, under vLLM and
llama-cpp-python, closes idle ones after 5 s, and drops one whose request failed after it
answered 200; llama.cpp's server after 5 s too) fails the next request sent on it before any
answer: such a request is sent once more, on another connection. ``keepalive`` below the
runtime's own timeout makes that rare.
"""

from __future__ import annotations

import errno
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
        self,
        base_url: str,
        max_connections: int,
        headers: Mapping[str, str] | None = None,
        keepalive: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._max_connections = max_connections
        self._headers = dict(headers or {})
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: a ClientSession belongs to the running loop.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections,
                # One runtime, no DNS to speak of, and its address must not be cached past a
                # restart on another port: nothing to gain from aiohttp's cache.
                use_dns_cache=False,
                keepalive_timeout=self._keepalive,
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
    ) -> AsyncGenerator[list[bytes], None]:
        """POST ``body`` to ``path`` and yield the reply's non-empty lines, without their line
        endings, as they arrive: each batch holds every line completed by one read from the
        socket, so tokens that arrived together are handled together. ``HttpStatusError`` for
        a status other than 200, ``LineTooLong``, or aiohttp's ``ClientError`` when the
        connection fails. A line may keep a ``\r`` of a CRLF ending."""
        headers = {**self._headers, "Content-Type": content_type}
        async with await self._request("POST", self.base_url + path, body, headers) as reply:
            if reply.status != 200:
                raise HttpStatusError(reply.status, await _read(reply, MAX_ERROR_BODY))
            said = False  # a 200 that ended without a line: the server failed after answering
            partial = bytearray()  # a line begun and not ended: each byte is copied once
            async for chunk in reply.content.iter_any():
                end = chunk.rfind(b"\n")
                if end < 0:
                    partial += chunk
                    if len(partial) > MAX_LINE:
                        raise LineTooLong(f"a line of more than {MAX_LINE} bytes")
                    continue
                complete = bytes(partial) + chunk[:end] if partial else chunk[:end]
                partial = bytearray(chunk[end + 1 :])
                batch = [line for line in complete.split(b"\n") if line.strip()]
                if batch:
                    said = True
                    yield batch
            if partial.strip():
                said = True
                yield [bytes(partial)]  # the last line may end without a newline
            if not said:
                reply.close()  # and drops its connection: not one to reuse

    async def fetch(self, path: str, body: bytes | None = None, base_url: str = "") -> bytes:
        """The whole reply to a GET of ``path`` (a POST of ``body`` when given), from
        ``base_url`` or this stream's; the same errors as ``lines``, ``LineTooLong`` past
        ``MAX_BODY``."""
        url = (base_url or self.base_url) + path
        headers = dict(self._headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        method = "POST" if body is not None else "GET"
        async with await self._request(method, url, body, headers) as reply:
            if reply.status != 200:
                raise HttpStatusError(reply.status, await _read(reply, MAX_ERROR_BODY))
            data = await _read(reply, MAX_BODY + 1)
            if len(data) > MAX_BODY:
                raise LineTooLong(f"a reply of more than {MAX_BODY} bytes")
            return data

    async def _request(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        """The response's head; once more on another connection when the kept-alive one
        it went out on was closed before any answer (the module docstring)."""
        try:
            return await self._client().request(method, url, data=body, headers=headers)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            stale = isinstance(exc, aiohttp.ServerDisconnectedError) or (
                not isinstance(exc, aiohttp.ClientConnectorError)  # nothing listens: no retry
                and exc.errno in (errno.ECONNRESET, errno.EPIPE)
            )
            if not stale:
                raise
            return await self._client().request(method, url, data=body, headers=headers)

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
