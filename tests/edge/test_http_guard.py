from __future__ import annotations

import asyncio
from unittest import mock

import pytest
from aiohttp.http_parser import HttpRequestParser

from edge.http_guard import describe_parse_error

HOST = b"Host: a\r\n"


def _parse_error(raw: bytes) -> BaseException:
    """What aiohttp's request parser (the one the edge runs) raises on ``raw``."""
    loop = asyncio.new_event_loop()
    try:
        parser = HttpRequestParser(mock.Mock(), loop, 2**16, max_line_size=8190)
        with pytest.raises(Exception) as caught:
            parser.feed_data(raw)
        return caught.value
    finally:
        loop.close()


@pytest.mark.parametrize(
    ("raw", "description"),
    [
        (
            b"GET / HTTP/1.1\r\n" + HOST + b"X: sk-lt-AB\x01CD\r\n\r\n",
            "invalid character in a header value",
        ),
        (b"G\x01T / HTTP/1.1\r\n\r\n", "invalid method"),
        (b"\x16\x03\x01\x00\xa5\x01\x00", "invalid method"),  # a TLS hello on a plain port
        (b"GET /sk-lt-AB\x00CD HTTP/1.1\r\n\r\n", "invalid URL"),
        (
            b"GET / HTTP/1.1\r\nX: sk-lt-" + b"A" * 9000 + b"\r\n\r\n",
            "the request line or a header is too long",
        ),
        (b"GET / HTTP/9.9\r\n\r\n", "invalid request line"),
        (b"GET / HTTP/1.1\r\n" + HOST + b"Content-Length: sk\r\n\r\n", "invalid Content-Length"),
        (b"GET / HTTP/1.1\r\n" + HOST + b"Bad Name: x\r\n\r\n", "invalid header name"),
        (b"GET / HTTP/1.1\r\n\r\n", "missing or invalid Host header"),
        (
            b"GET / HTTP/1.1\r\n"
            + HOST
            + b"".join(b"X%d: y\r\n" % i for i in range(200))
            + b"\r\n",
            "too many headers",
        ),
    ],
)
def test_parse_errors_are_described_without_the_bytes_that_caused_them(
    raw: bytes, description: str
) -> None:
    described = describe_parse_error(_parse_error(raw))
    assert described == description
    assert "sk-lt" not in described and "AB" not in described


def test_anything_else_is_a_malformed_request() -> None:
    assert describe_parse_error(ValueError("Authorization: Bearer sk-lt-x")) == "malformed request"
    assert describe_parse_error(None) == "malformed request"
