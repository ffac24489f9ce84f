"""Unparsable requests carrying a real key, from raw TLS sockets: the answer is a short JSON 400 and
neither it nor any log line contains the key; and a client repeating them cannot flood the log."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from edge.logging_safety import RepeatLimiter
from tests.e2e.stack import Stack, running_stack

pytestmark = pytest.mark.e2e


def _bad_requests(key: str) -> dict[str, bytes]:
    """Requests aiohttp cannot parse, each with ``key`` where a careless error path would echo it.
    The bad byte sits inside the key itself, or in a header after it, or the header is too long."""
    inside = key[:12].encode() + b"\x01" + key[12:].encode()
    line = b"GET /v1/models HTTP/1.1\r\nHost: acme.example.test\r\n"
    return {
        "invalid byte in the key": line + b"Authorization: Bearer " + inside + b"\r\n\r\n",
        "invalid byte in x-api-key": line + b"x-api-key: " + inside + b"\x7f\r\n\r\n",
        "invalid byte after the key": line
        + f"Authorization: Bearer {key}\r\n".encode()
        + b"X-Other: a\x00b\r\n\r\n",
        "header too long": line + f"x-api-key: {key}{'k' * 9000}\r\n\r\n".encode(),
        "invalid byte in the path": b"GET /v1/models?key=" + inside + b" HTTP/1.1\r\n\r\n",
    }


async def _send(stack: Stack, raw: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", stack.edge.port, ssl=stack.tls(), server_hostname="localhost"
    )
    writer.write(raw)
    async with asyncio.timeout(10):
        answer = await reader.read()  # a parse error closes the connection after the answer
    writer.close()
    return answer


def _leaks(text: str, key: str) -> list[str]:
    """Pieces of ``key``'s secret part found in ``text`` (8 characters suffice to be a leak)."""
    secret = key.removeprefix("sk-lt-admin-").removeprefix("sk-lt-")
    return [secret[i : i + 8] for i in range(0, len(secret) - 7) if secret[i : i + 8] in text]


async def test_unparsable_requests_get_a_json_400_and_the_key_is_nowhere(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # everything anyone logs, aiohttp and asyncio included
    caplog.set_level(logging.DEBUG, logger="edge")  # tests/conftest.py quiets it otherwise
    async with running_stack(tmp_path) as stack:
        await stack.tenant("acme")
        keys = [await stack.key("acme"), stack.admin_key]
        for key in keys:
            for case, raw in _bad_requests(key).items():
                answer = await _send(stack, raw)
                head, _, body = answer.partition(b"\r\n\r\n")
                assert head.split()[1] == b"400", case
                error = json.loads(body)["error"]
                assert error["code"] == "bad_request", case
                assert error["message"].startswith("the request could not be parsed: "), case
                assert len(body) < 300, case
                assert not _leaks(answer.decode("latin-1"), key), case
    logged = caplog.text + "".join(
        str(r.exc_info) + str(r.args) for r in caplog.records
    )  # the records themselves, not only what the capture handler's formatter printed
    assert "bad request from 127.0.0.1: invalid character in a header value" in caplog.text
    for key in keys:
        assert not _leaks(logged, key)


async def test_a_client_repeating_bad_requests_cannot_flood_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.http_guard")
    limiter = RepeatLimiter(per_window=10, window=60)
    caplog.handler.addFilter(limiter)
    try:
        async with running_stack(tmp_path) as stack:
            raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad: \x01\r\n\r\n"
            for _ in range(30):
                assert (await _send(stack, raw)).split()[1] == b"400"
        limiter.flush(everything=True)
    finally:
        caplog.handler.removeFilter(limiter)
    lines = [r.getMessage() for r in caplog.records if r.name == "edge.http_guard"]
    assert lines.count("bad request from 127.0.0.1: invalid character in a header value") == 10
    assert lines[10:] == [
        "suppressed 20 similar messages in the last 60 s: bad request from %s: %s"
    ]
