"""The failures people meet reaching an edge, as the three client libraries the project uses
raise them, each explained with its fix: real sockets, a real TLS server."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import pytest
import websockets
from aiohttp import web

from agent.diagnose import explain, refusal
from edge.tls import ensure_self_signed, server_ssl_context


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[tuple[int, int]]:
    """A TLS server with a certificate from a private CA, and a plain-HTTP one."""
    bundle = ensure_self_signed(tmp_path, "example.test")

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    tls = web.TCPSite(
        runner, "127.0.0.1", 0, ssl_context=server_ssl_context(bundle.cert, bundle.key)
    )
    plain = web.TCPSite(runner, "127.0.0.1", 0)
    await tls.start()
    await plain.start()
    ports = [address[1] for address in runner.addresses]
    try:
        yield ports[0], ports[1]
    finally:
        await runner.cleanup()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _httpx(url: str) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        await http.get(url + "/healthz")


async def _aiohttp(url: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(url + "/healthz") as response:
        await response.read()


async def _websockets(url: str) -> None:
    ws_url = url.replace("https://", "wss://").replace("http://", "ws://") + "/healthz"
    context = ssl.create_default_context() if url.startswith("https") else None
    async with websockets.connect(ws_url, ssl=context, open_timeout=5):
        pass


CLIENTS: list[Callable[[str], Awaitable[None]]] = [_httpx, _aiohttp, _websockets]


async def _failure(client: Callable[[str], Awaitable[None]], url: str) -> str:
    try:
        await client(url)
    except Exception as exc:
        return explain(exc, url)
    raise AssertionError(f"{url} was reached")


@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.__name__.strip("_"))
async def test_an_untrusted_certificate_names_the_ca_option(
    servers: tuple[int, int], client: Callable[[str], Awaitable[None]]
) -> None:
    message = await _failure(client, f"https://localhost:{servers[0]}")
    assert "not trusted" in message
    assert "--ca-file" in message and "LLMTUNNEL_CA_FILE" in message


@pytest.mark.parametrize("client", [_httpx, _aiohttp], ids=lambda c: c.__name__.strip("_"))
async def test_plain_http_to_a_tls_port_says_to_use_https(
    servers: tuple[int, int], client: Callable[[str], Awaitable[None]]
) -> None:
    url = f"http://127.0.0.1:{servers[0]}"
    message = await _failure(client, url)
    assert f"use https://127.0.0.1:{servers[0]}" in message


@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.__name__.strip("_"))
async def test_tls_to_a_plain_port_says_to_use_http(
    servers: tuple[int, int], client: Callable[[str], Awaitable[None]]
) -> None:
    message = await _failure(client, f"https://127.0.0.1:{servers[1]}")
    assert "does not answer TLS" in message
    assert f"use http://127.0.0.1:{servers[1]}" in message


@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.__name__.strip("_"))
async def test_nothing_listening_says_so(client: Callable[[str], Awaitable[None]]) -> None:
    port = _free_port()
    message = await _failure(client, f"https://127.0.0.1:{port}")
    assert f"nothing listens at 127.0.0.1:{port}" in message


async def test_an_http_answer_instead_of_the_websocket_quotes_the_edges_message() -> None:
    async def misdirected(request: web.Request) -> web.Response:
        error = {"message": "this edge does not serve 'x.test': agents connect to example.com"}
        return web.json_response({"error": error}, status=421)

    app = web.Application()
    app.router.add_get("/agent/connect", misdirected)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"ws://127.0.0.1:{port}/agent/connect")
        response = refused.value.response
        assert refusal(response.status_code, response.body) == (
            "HTTP 421: this edge does not serve 'x.test': agents connect to example.com"
        )
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("body", [None, b"", b"<html>bad gateway</html>", b'{"error": "x"}'])
def test_an_answer_without_the_edges_error_is_its_status(body: bytes | None) -> None:
    assert refusal(502, body) == "HTTP 502"


def test_a_long_message_is_cut() -> None:
    body = json.dumps({"error": {"message": "m" * 5000}}).encode()
    assert refusal(400, body) == "HTTP 400: " + "m" * 300
