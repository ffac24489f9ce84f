"""What went wrong reaching the edge, said so that a person can act on it.

A failed connection surfaces as whatever the HTTP or WebSocket library wraps it in (``ssl``
errors inside ``aiohttp``, ``httpx`` or ``websockets`` exceptions). ``explain`` looks through
the chain of causes for the few failures people actually meet and names the fix: which CA to
pass, which scheme to use, that nothing listens there.
"""

from __future__ import annotations

import errno
import json
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

CA_HINT = (
    "pass the CA that signed it with --ca-file FILE (or LLMTUNNEL_CA_FILE); an edge started "
    "with --self-signed printed where its CA is (DATA_DIR/tls/ca.pem)"
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or wraps, once each."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (
            current.__cause__,
            current.__context__,
            getattr(current, "certificate_error", None),  # aiohttp's certificate error
            getattr(current, "os_error", None),  # aiohttp's connector errors
        ):
            if isinstance(linked, BaseException):
                pending.append(linked)
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))


def explain(exc: BaseException, url: str) -> str:
    """One sentence on why ``url`` could not be reached, naming what to do about it."""
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    causes = list(_chain(exc))
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = getattr(cause, "verify_message", None) or str(cause)
            return f"the edge's certificate at {url} is not trusted ({detail}): {CA_HINT}"
    for cause in causes:
        if isinstance(cause, ssl.SSLError) and "WRONG_VERSION_NUMBER" in str(cause):
            plain = url.replace("https://", "http://", 1)
            return f"{where} does not answer TLS: if the edge runs with --plain-http, use {plain}"
    for cause in causes:
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve {parts.hostname!r}: check the host name in {url}"
        if isinstance(cause, ConnectionRefusedError) or (
            isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED
        ):
            return f"nothing listens at {where} (connection refused): is the edge running?"
    if parts.scheme == "http" and any(_reset_or_closed(c) for c in causes):
        secure = url.replace("http://", "https://", 1)
        return (
            f"{where} closed the connection without an HTTP answer: if the edge serves HTTPS "
            f"(it does unless started with --plain-http), use {secure}"
        )
    return f"cannot reach {url}: {type(exc).__name__}: {exc}"


def _reset_or_closed(exc: BaseException) -> bool:
    name = type(exc).__name__
    return isinstance(exc, ConnectionResetError) or name in (
        "RemoteProtocolError",  # httpx: the server closed without answering
        "ServerDisconnectedError",  # aiohttp
        "InvalidMessage",  # websockets: no HTTP response to the upgrade
    )


MAX_QUOTED = 300  # characters of an edge's error message quoted in the agent's log


def refusal(status: int, body: bytes | bytearray | None) -> str:
    """An HTTP answer the edge gave instead of the WebSocket: its status and, when the body is
    the edge's JSON error, its message (cut short), which says what to change (a 421 names the
    hosts agents may dial)."""
    try:
        message = json.loads(body or b"")["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}"
    if not isinstance(message, str):
        return f"HTTP {status}"
    return f"HTTP {status}: {message[:MAX_QUOTED]}"
