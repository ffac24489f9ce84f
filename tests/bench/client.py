"""The benchmarks' HTTP/1.1 client: one keep-alive connection per simulated user, on raw asyncio.

aiohttp's client reads a stream a line at a time through its ``StreamReader``; at tens of
thousands of tokens a second that cost lands in the same two cores as the proxies measured. This
client is an ``asyncio.Protocol``: it decodes ``Content-Length`` and chunked bodies, counts the
tokens in each read by the source's ``~`` marker (tests/bench/source.py), and stamps them with
the time of that read. A read that brings k tokens adds one gap since the previous token and
k - 1 gaps of zero: what a user sees when a proxy delivers tokens in bursts.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, field

MARKER = b"~"


@dataclass(frozen=True)
class Target:
    """Where one peer is reached: address, TLS, and the request line and headers it takes."""

    name: str
    host: str
    port: int
    tls: ssl.SSLContext | None = None
    server_hostname: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, path: str, body: dict[str, object] | None) -> bytes:
        """A POST of ``body`` as JSON, or a GET when there is none."""
        payload = json.dumps(body, separators=(",", ":")).encode() if body is not None else b""
        host = self.server_hostname or self.host
        head = [
            f"{'GET' if body is None else 'POST'} {path} HTTP/1.1",
            f"Host: {host}:{self.port}",
            "User-Agent: llmtunnel-bench/1",
            *(
                ("Content-Type: application/json", f"Content-Length: {len(payload)}")
                if body is not None
                else ()
            ),
            *(f"{name}: {value}" for name, value in self.headers.items()),
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


@dataclass
class Result:
    status: int
    tokens: int
    ttft: float  # seconds to the first token (0 when none came)
    total: float  # seconds to the end of the response
    gaps: list[float]  # between successive tokens, when asked for
    events: int = 0  # server-sent events (``data:`` lines), of any kind
    body: bytes = b""  # the first bytes of a failed response's body (all of it, if kept)


class ResponseFailed(Exception):
    pass


_HEAD, _LENGTH, _SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(7)


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self._waiter: asyncio.Future[Result] | None = None
        self._buffer = bytearray()
        self._state = _DONE
        self._remaining = 0
        self._keep_all = False
        self._events = 0
        self._tail = b""
        self._tokens = 0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter and not self._waiter.done():
            self._waiter.set_exception(ResponseFailed(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self._buffer += data
        tokens = 0
        buffer = self._buffer
        while True:
            state = self._state
            if state == _HEAD:
                end = buffer.find(b"\r\n\r\n")
                if end < 0:
                    break
                self._head(bytes(buffer[:end]))
                del buffer[: end + 4]
            elif state == _LENGTH:
                if not buffer:
                    break
                take = buffer[: self._remaining]
                del buffer[: len(take)]
                self._remaining -= len(take)
                tokens += self._body(take)
                if self._remaining == 0:
                    self._state = _DONE
            elif state == _SIZE:
                end = buffer.find(b"\r\n")
                if end < 0:
                    break
                self._remaining = int(bytes(buffer[:end]).split(b";")[0], 16)
                del buffer[: end + 2]
                self._state = _DATA if self._remaining else _TRAILER
            elif state == _DATA:
                if not buffer:
                    break
                take = buffer[: self._remaining]
                del buffer[: len(take)]
                self._remaining -= len(take)
                tokens += self._body(take)
                if self._remaining == 0:
                    self._state = _DATA_END
            elif state == _DATA_END:
                if len(buffer) < 2:
                    break
                del buffer[:2]
                self._state = _SIZE
            elif state == _TRAILER:
                end = buffer.find(b"\r\n")
                if end < 0:
                    break
                del buffer[: end + 2]
                if end == 0:
                    self._state = _DONE
            else:
                break
            if self._state == _DONE:
                self._count(tokens, now)
                tokens = 0
                self._finish(now)
                break
        if tokens:
            self._count(tokens, now)

    @property
    def tokens_so_far(self) -> int:
        """Tokens of the response being read, counted as they arrive."""
        return self._tokens

    # -- requests

    async def request(self, data: bytes, gaps: bool = False, keep: bool = False) -> Result:
        """Send one request and wait for its whole response."""
        assert self.transport is not None
        if self.closed or not self.reusable:
            raise ResponseFailed("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self._state = _HEAD
        self._status = 0
        self._tokens = 0
        self._first = 0.0
        self._last = 0.0
        self._gaps: list[float] | None = [] if gaps else None
        self._kept = bytearray()
        self._keep_all = keep
        self._events = 0
        self._tail = b""
        self._start = time.perf_counter()
        self.transport.write(data)
        return await self._waiter

    def _head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self._status = int(lines[0].split(" ", 2)[1])
        length, chunked = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection" and value.strip().lower() == "close":
                self.reusable = False
        if chunked:
            self._state = _SIZE
        else:
            self._remaining = length
            self._state = _LENGTH if length else _DONE

    def _body(self, data: bytearray) -> int:
        """Counts the events in a piece of the body (one may straddle two pieces) and keeps
        the start of a failure's body; returns the tokens in it."""
        self._events += (self._tail + data).count(b"data: ")
        self._tail = bytes(data[-5:])
        if self._keep_all:
            self._kept += data
        elif self._status != 200 and len(self._kept) < 500:
            self._kept += data[:500]
        return data.count(MARKER)

    def _count(self, tokens: int, now: float) -> None:
        if not tokens:
            return
        if not self._tokens:
            self._first = now - self._start
            extra = tokens - 1
        else:
            if self._gaps is not None:
                self._gaps.append(now - self._last)
            extra = tokens - 1
        if self._gaps is not None and extra:
            self._gaps.extend([0.0] * extra)
        self._tokens += tokens
        self._last = now

    def _finish(self, now: float) -> None:
        waiter = self._waiter
        if waiter and not waiter.done():
            waiter.set_result(
                Result(
                    self._status,
                    self._tokens,
                    self._first,
                    now - self._start,
                    self._gaps or [],
                    self._events,
                    bytes(self._kept),
                )
            )
        if not self.reusable and self.transport:
            self.transport.close()

    def close(self) -> None:
        if self.transport and not self.closed:
            self.transport.close()


async def connect(target: Target) -> Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        Connection,
        target.host,
        target.port,
        ssl=target.tls,
        server_hostname=target.server_hostname if target.tls else None,
    )
    return protocol
