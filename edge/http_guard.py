"""Each client connection, as the edge serves it: a deadline for the request head, and errors that
echo nothing the client sent.

aiohttp's own ``keepalive_timeout`` closes a connection that has not delivered a complete request
head that long after it opened or after the previous response; the edge sets it to the idle
timeout. ``GuardedRequestHandler`` adds the header timeout on top:

- a new connection must deliver its first request head within ``header_timeout`` of being
  accepted (the listener's TLS handshake counts against it);
- on a kept-alive connection, once the first byte of the next request arrives, its head must be
  complete within ``header_timeout`` of that byte.

Either deadline is fixed when it is set, so drip-feeding a header a byte at a time does not move
it (slowloris). Nothing is timed while a request is being handled: an SSE stream that lasts
minutes or an agent's WebSocket that lasts days is never cut by these timeouts.

Unparsable requests get a short 400 in the OpenAI error shape naming what was wrong, never the
offending bytes (aiohttp's default echoes them, ``Authorization`` header included, and logs them
at ERROR).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    PayloadEncodingError,
)
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

from edge.errors import ApiError

log = logging.getLogger(__name__)

# For parse errors without a class of their own: a keyword of the parser's reason (its first line,
# which llhttp words itself) chooses one of these fixed descriptions. The reason itself is never
# echoed: aiohttp's Python parser puts the offending bytes in it.
_REASONS = (
    ("header value", "invalid character in a header value"),
    ("header name", "invalid header name"),
    ("header token", "invalid header name"),
    ("header field", "invalid header name"),
    ("too many headers", "too many headers"),
    ("duplicate", "a header that may appear once appears twice"),
    ("host", "missing or invalid Host header"),
    ("content-length", "invalid Content-Length"),
    ("transfer-encoding", "invalid Transfer-Encoding"),
    ("chunk", "invalid chunked body"),
    ("version", "invalid HTTP version"),
    ("method", "invalid method"),
    ("url", "invalid URL"),
    ("path", "invalid URL"),
)


def describe_parse_error(exc: BaseException | None) -> str:
    """What was wrong with an unparsable request, in words that contain none of its bytes."""
    if isinstance(exc, LineTooLong):
        return "the request line or a header is too long"
    if isinstance(exc, InvalidHeader):
        return "invalid header"
    if isinstance(exc, BadHttpMethod):
        return "invalid method"
    if isinstance(exc, InvalidURLError):
        return "invalid URL"
    if isinstance(exc, BadStatusLine):
        return "invalid request line"
    if isinstance(exc, PayloadEncodingError):
        return "invalid body encoding"
    reason = exc.message.split("\n", 1)[0].lower() if isinstance(exc, HttpProcessingError) else ""
    for keyword, description in _REASONS:
        if keyword in reason:
            return description
    return "malformed request"


class GuardedRequestHandler(RequestHandler):
    """aiohttp's per-connection protocol, with the header timeout and safe error responses.

    ``head_deadline`` is when the first request head must be complete (the accept time plus the
    header timeout); ``on_close`` runs once when the connection is gone (the listener's count)."""

    __slots__ = (
        "_first_head_deadline",
        "_head_timer",
        "_header_timeout",
        "_in_request",
        "_on_close",
    )

    def __init__(
        self,
        manager: Server,
        *,
        loop: asyncio.AbstractEventLoop,
        head_deadline: float,
        header_timeout: float,
        on_close: Callable[[], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._header_timeout = header_timeout
        self._first_head_deadline = head_deadline
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_request = False
        self._on_close = on_close

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm(self._first_head_deadline)

    def data_received(self, data: bytes) -> None:
        # The first byte after a response starts the next head's clock; later bytes do not
        # restart it. Bytes while a request runs are its body or WebSocket frames: not timed.
        if data and not self._in_request and self._head_timer is None:
            self._arm(self._loop.time() + self._header_timeout)
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        on_close, self._on_close = self._on_close, _nothing
        on_close()
        super().connection_lost(exc)

    def head_received(self) -> None:
        """A complete request head is being handled (called by ``head_received_middleware``)."""
        self._in_request = True
        self._disarm()

    def log_access(
        self, request: BaseRequest, response: web.StreamResponse, time: float | None
    ) -> None:
        # aiohttp calls this once the response is completely written (or the client went away):
        # from here on, the connection is waiting for its next request, whose first byte starts
        # a new clock. (Disarming here too covers responses aiohttp sends before any middleware,
        # such as a rejected Expect: 100-continue.)
        self._in_request = False
        self._disarm()
        super().log_access(request, response, time)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Replaces aiohttp's, which logs the offending request line or header (with any key in
        it) at ERROR and echoes it in a text/plain body."""
        if request.writer.output_size > 0:
            # As aiohttp does: part of a response went out, another cannot follow.
            raise ConnectionError("response already started; cannot send an error response")
        if status == 400:
            what = describe_parse_error(exc)
            # Port scanners and TLS sent to a plain-HTTP port send garbage all day (no method is
            # what that looks like, so as aiohttp does that is DEBUG); the rest is INFO.
            level = logging.DEBUG if isinstance(exc, BadHttpMethod) else logging.INFO
            log.log(level, "bad request from %s: %s", request.remote, what)
            error = ApiError(400, "bad_request", f"the request could not be parsed: {what}")
        else:
            # Only what escapes every middleware gets here (edge.app's turns errors into JSON).
            log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
            text = "internal error; it has been logged"
            error = ApiError(max(status, 500), "internal_error", text)
        response = error.response()
        response.force_close()
        return response

    def _arm(self, deadline: float) -> None:
        self._disarm()
        self._head_timer = self._loop.call_at(deadline, self._head_overdue)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self._in_request or self.transport is None:
            return
        log.debug(
            "closing a connection from %s: no complete request head within %.1f s",
            self.peername,
            self._header_timeout,
        )
        self.force_close()


def _nothing() -> None:
    pass


@web.middleware
async def head_received_middleware(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Outermost middleware: tells the connection its request head is complete, which stops its
    header timeout until the response has been written."""
    protocol = request.protocol
    if isinstance(protocol, GuardedRequestHandler):
        protocol.head_received()
    return await handler(request)
