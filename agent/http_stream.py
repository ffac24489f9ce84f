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

from collections.abc import AsyncGenerator

import aiohttp

MAX_LINE = 64 * 1024 * 1024  # one NDJSON line or SSE event: a whole tool call fits
MAX_ERROR_BODY = 64 * 1024  # of an error response, enough for any runtime's message
CONNECT_TIMEOUT = 10.0


class HttpStatusError(Exception):
    """The runtime answered with an error status; ``body`` is (the start of) what it said."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


class LineTooLong(Exception):
    """A line grew past ``MAX_LINE`` without its newline."""


class HttpStream:
    """POST a body and read the reply's lines, on a pool of ``max_connections``."""

    def __init__(self, base_url: str, max_connections: int) -> None:
        self.base_url = base_url.rstrip("/")
        self._max_connections = max_connections
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
    ) -> AsyncGenerator[list[bytes], None]:
        """POST ``body`` to ``path`` and yield the reply's non-empty lines, without their line
        endings, as they arrive: each batch holds every line completed by one read from the
        socket, so tokens that arrived together are handled together. ``HttpStatusError`` for
        a status other than 200, ``LineTooLong``, or aiohttp's ``ClientError`` when the
        connection fails."""
        headers = {"Content-Type": content_type}
        async with self._client().post(self.base_url + path, data=body, headers=headers) as reply:
            if reply.status != 200:
                raise HttpStatusError(reply.status, await reply.content.read(MAX_ERROR_BODY))
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
                    yield batch
            if partial.strip():
                yield [bytes(partial)]  # the last line may end without a newline

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
