"""The edge's listening socket: a cap on open connections, and a clean refusal past it.

Without a cap, enough idle or slow clients take every file descriptor the process may open; from
then on asyncio's accept loop fails with EMFILE (logging it each time), and new requests, agent
logins and even the database hang. ``GuardedSite`` accepts connections itself and counts them:

- up to ``max_connections`` are served (TLS handshake within the header timeout, then HTTP);
- past it, a new connection gets ``HTTP/1.1 503`` with ``Connection: close`` and an OpenAI-shaped
  JSON error, code ``too_many_connections``, and is closed;
- refusing costs a descriptor for up to a second too, so at most ``REFUSALS_AT_ONCE`` refusals run
  at once; past that, new connections are closed at once without an answer.

The default cap leaves ``FD_RESERVE`` descriptors of the open-file limit for everything else (the
database, refusals, the agent tunnels' own needs); ``raise_open_file_limit`` lifts the soft limit
to the hard one first, where the system allows.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import resource
import socket
import ssl
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web
from yarl import URL

from edge.errors import ApiError

log = logging.getLogger(__name__)

REFUSALS_AT_ONCE = 64
REFUSAL_LINGER = 1.0  # how long a refused connection may take to send its request and go
FD_RESERVE = 256  # descriptors the default cap leaves for everything but client connections
TLS_SHUTDOWN_TIMEOUT = 5.0  # waiting for a client's close_notify after the edge closes
ACCEPT_RETRY_DELAY = 0.5  # after the system refused to accept (out of descriptors or memory)
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

# Made once per connection; ``accepted_at`` is the loop time of accept(), ``on_close`` must run
# exactly once when the connection is gone (GuardedRequestHandler does).
ProtocolFactory = Callable[[float, Callable[[], None]], asyncio.Protocol]


def _refusal_response() -> bytes:
    error = ApiError(
        503, "too_many_connections", "the server has too many open connections; retry shortly"
    )
    body = json.dumps(error.body()).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Retry-After: 1\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    return head.encode() + body


REFUSAL = _refusal_response()


def open_file_limit() -> int:
    """The process's soft limit on open files (a large number where it is unlimited)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def raise_open_file_limit() -> int:
    """Lift the soft open-file limit to the hard one, where the system allows; returns the soft
    limit in effect. A server that holds one descriptor per client needs all it may have."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            log.info("open-file limit raised from %d to %d", soft, hard)
        except (ValueError, OSError) as exc:  # e.g. macOS refuses an unlimited soft limit
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
    return open_file_limit()


def default_max_connections(open_files: int) -> int:
    """Connections one listener accepts by default: the open-file limit less ``FD_RESERVE``, and
    at least half of it where the limit is small."""
    return max(open_files - FD_RESERVE, open_files // 2, 1)


class _Refusal(asyncio.Protocol):
    """Answers 503 at once, reads (and drops) the request so that closing does not reset the
    connection under the answer, and closes when the request head is in, the client closes, or
    ``REFUSAL_LINGER`` has passed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.closed: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(REFUSAL)
        if transport.can_write_eof():
            transport.write_eof()
        self._timer = self._loop.call_later(REFUSAL_LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        self._tail = (self._tail + data)[-4096:]
        if b"\r\n\r\n" in self._tail and self._transport is not None:
            self._transport.close()

    def eof_received(self) -> bool:
        return False  # the transport closes itself

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.closed.done():
            self.closed.set_result(None)


class GuardedSite(web.BaseSite):
    """A TCP (optionally TLS) listener for an aiohttp runner that caps its open connections.

    ``make_protocol`` builds the HTTP protocol of each admitted connection. The TLS handshake must
    finish within ``handshake_timeout``."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        make_protocol: ProtocolFactory,
        max_connections: int,
        handshake_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 1024,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._make_protocol = make_protocol
        self.max_connections = max_connections
        self._handshake_timeout = handshake_timeout
        self._sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._connecting: set[asyncio.Task[None]] = set()  # handshakes and refusals under way
        self.open_connections = 0
        self.refusing = 0

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return str(URL.build(scheme=scheme, host=self._host or "0.0.0.0", port=self.port))

    @property
    def port(self) -> int:
        """The bound port (the one asked for until started)."""
        if self._sockets:
            port: int = self._sockets[0].getsockname()[1]
            return port
        return self._port

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            self._host or None, self._port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        port = self._port
        try:
            for family, type_, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, type_, proto)
                self._sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    # As asyncio does: one socket per family, no dual-stack surprises.
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                # With port 0 and several addresses, all of them share the first one's port.
                sock.bind((address[0], port, *address[2:]))
                port = sock.getsockname()[1]
                sock.listen(self._backlog)
                sock.setblocking(False)
        except OSError:
            self._close_sockets()
            raise
        self._accepting = [
            asyncio.create_task(self._accept(sock), name=f"accept {self.name}")
            for sock in self._sockets
        ]

    async def stop(self) -> None:
        """Stop accepting; connections already served keep going (the runner shuts them down).
        Handshakes and refusals under way are dropped."""
        tasks = [*self._accepting, *self._connecting]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._accepting = []
        self._close_sockets()
        await super().stop()

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()
        self._sockets = []

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        accepted = 0
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    log.error(
                        "cannot accept connections: %s (%d open); retrying in %.1f s",
                        exc.strerror,
                        self.open_connections,
                        ACCEPT_RETRY_DELAY,
                    )
                    await asyncio.sleep(ACCEPT_RETRY_DELAY)
                elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    log.exception("accept failed on %s", self.name)
                    await asyncio.sleep(ACCEPT_RETRY_DELAY)
                continue
            self._admit(conn, loop.time())
            accepted += 1
            if accepted % 64 == 0:
                await asyncio.sleep(0)  # a flood of connections must not starve the loop

    def _admit(self, conn: socket.socket, accepted_at: float) -> None:
        if self.open_connections < self.max_connections:
            self.open_connections += 1
            self._spawn(self._serve(conn, accepted_at), conn)
        elif self.refusing < REFUSALS_AT_ONCE:
            self.refusing += 1
            log.warning(
                "refusing a new connection with 503: %d open, the limit (--max-connections)",
                self.open_connections,
            )
            self._spawn(self._refuse(conn), conn)
        else:
            conn.close()  # past even the refusal budget: no descriptor to spare for an answer

    def _spawn(self, coro: Coroutine[Any, Any, None], conn: socket.socket) -> None:
        task = asyncio.create_task(coro)
        self._connecting.add(task)

        def done(task: asyncio.Task[None]) -> None:
            self._connecting.discard(task)
            if task.cancelled():  # stop() came first, maybe before the task even ran
                conn.close()

        task.add_done_callback(done)

    async def _serve(self, conn: socket.socket, accepted_at: float) -> None:
        loop = asyncio.get_running_loop()
        released = made = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.open_connections -= 1

        def protocol() -> asyncio.Protocol:
            nonlocal made
            made = True
            return self._make_protocol(accepted_at, release)

        try:
            await loop.connect_accepted_socket(
                protocol, conn, **self._tls_options(self._handshake_timeout)
            )
        except BaseException as exc:
            # The handshake failed or timed out, or the site stopped: asyncio closed the transport
            # and the protocol never saw the connection, so it will not release it.
            release()
            if not made:
                conn.close()
            if not isinstance(exc, Exception):
                raise
            log.debug("connection dropped before HTTP: %r", exc)

    async def _refuse(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        made = False
        transport: asyncio.Transport | None = None

        def protocol() -> _Refusal:
            nonlocal made
            made = True
            return _Refusal(loop)

        try:
            transport, refusal = await loop.connect_accepted_socket(
                protocol, conn, **self._tls_options(min(self._handshake_timeout, 5.0))
            )
            async with asyncio.timeout(REFUSAL_LINGER + TLS_SHUTDOWN_TIMEOUT):
                await refusal.closed
        except Exception as exc:
            log.debug("refused connection ended: %r", exc)
        finally:
            self.refusing -= 1
            if transport is not None:
                transport.abort()  # nothing if it closed already; else its time is up
            elif not made:
                conn.close()

    def _tls_options(self, handshake_timeout: float) -> dict[str, Any]:
        if self._ssl_context is None:
            return {}
        return {
            "ssl": self._ssl_context,
            "ssl_handshake_timeout": handshake_timeout,
            "ssl_shutdown_timeout": TLS_SHUTDOWN_TIMEOUT,
        }
