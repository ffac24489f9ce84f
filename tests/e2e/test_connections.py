"""Client connections against a real edge over TLS, from raw sockets: the header timeout (slowloris
and silent clients), the idle keep-alive timeout, long streams and agent tunnels that outlive both,
and the connection cap with its 503."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from edge.config import EdgeConfig
from edge.listener import REFUSAL
from edge.server import start_edge
from tests.e2e.stack import Stack, running_stack, user

pytestmark = pytest.mark.e2e

HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"


async def _connect(stack: Stack) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1", stack.edge.port, ssl=stack.tls(), server_hostname="localhost"
    )


async def _response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body: status, headers (lower-cased), body."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")[:-2]
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


async def _seconds_until_closed(reader: asyncio.StreamReader, since: float) -> float:
    """Wait for the edge to close the connection; how long after ``since`` that was."""
    async with asyncio.timeout(10):
        while await reader.read(1024):
            pass  # nothing is expected, but whatever comes before the close is not the point
    return time.monotonic() - since


async def _drip(writer: asyncio.StreamWriter, data: bytes, interval: float) -> None:
    """Slowloris: one byte at a time, until the edge hangs up."""
    try:
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(interval)
    except (ConnectionError, RuntimeError):
        pass  # the edge closed the connection under us: what the test waits for


async def _wait_for_no_connections(stack: Stack) -> None:
    async with asyncio.timeout(5):
        while stack.edge.site.open_connections:
            await asyncio.sleep(0.02)


async def test_header_timeout_closes_slow_and_silent_clients_but_not_idle_keep_alive(
    tmp_path: Path,
) -> None:
    header, idle = 1.0, 2.5
    async with running_stack(tmp_path, header_timeout=header, idle_timeout=idle) as stack:
        slow_head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + b"a" * 100

        async def silent() -> float:
            started = time.monotonic()  # the TLS handshake counts against the header timeout
            reader, _writer = await _connect(stack)
            return await _seconds_until_closed(reader, started)

        async def slowloris() -> float:
            started = time.monotonic()
            reader, writer = await _connect(stack)
            dripping = asyncio.create_task(_drip(writer, slow_head, 0.2))
            closed_after = await _seconds_until_closed(reader, started)
            await dripping
            return closed_after

        async def normal_request_meanwhile() -> int:
            await asyncio.sleep(header / 2)
            reader, writer = await _connect(stack)
            writer.write(HEALTHZ)
            status, _, _ = await _response(reader)
            writer.close()
            return status

        async def idle_after_a_response() -> float:
            reader, writer = await _connect(stack)
            writer.write(HEALTHZ)
            status, headers, _ = await _response(reader)
            assert status == 200 and headers.get("connection", "").lower() != "close"
            return await _seconds_until_closed(reader, time.monotonic())

        async def slowloris_after_a_response() -> float:
            reader, writer = await _connect(stack)
            writer.write(HEALTHZ)
            assert (await _response(reader))[0] == 200
            answered = time.monotonic()
            await asyncio.sleep(0.5)  # idle a while: the next head's clock starts at its 1st byte
            dripping = asyncio.create_task(_drip(writer, slow_head, 0.2))
            closed_after = await _seconds_until_closed(reader, answered)
            await dripping
            return closed_after

        silent_s, slow_s, status, idle_s, slow_again_s = await asyncio.gather(
            silent(),
            slowloris(),
            normal_request_meanwhile(),
            idle_after_a_response(),
            slowloris_after_a_response(),
        )
        assert 0.8 * header <= silent_s <= header + 0.8
        assert 0.8 * header <= slow_s <= header + 0.8  # 5 bytes a second did not extend it
        assert status == 200
        assert idle - 0.2 <= idle_s <= idle + 1.0  # idle keep-alive lasts longer than a head may
        assert 0.5 + 0.8 * header <= slow_again_s <= 0.5 + header + 0.8
        await _wait_for_no_connections(stack)  # every closed connection gave its slot back


async def test_long_streams_and_agent_tunnels_outlive_both_timeouts(tmp_path: Path) -> None:
    async with running_stack(
        tmp_path, tokens_per_second=20, header_timeout=0.3, idle_timeout=0.6
    ) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        registry = stack.edge.context.registry
        tunnels = [s for t in registry.tenants() for s in registry.sessions(t)]
        assert len(tunnels) == 1
        started = time.monotonic()
        stream = await stack.openai(key).chat.completions.create(
            model="llama3.2:3b", stream=True, messages=[user("slow tokens=40")]
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert len(text.split()) == 40  # two seconds of SSE, far past both timeouts, whole
        assert time.monotonic() - started > 3 * 0.6
        # The agent's WebSocket was never cut and redialed: the same tunnel is still there.
        assert [s for t in registry.tenants() for s in registry.sessions(t)] == tunnels


async def test_past_the_connection_cap_a_new_connection_gets_503_and_the_others_work(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, max_connections=3) as stack:
        first = [await _connect(stack) for _ in range(3)]
        async with asyncio.timeout(5):
            while stack.edge.site.open_connections < 3:
                await asyncio.sleep(0.01)

        reader, writer = await _connect(stack)
        writer.write(HEALTHZ)
        status, headers, body = await _response(reader)
        assert status == 503 and headers["connection"] == "close"
        assert headers["content-type"] == "application/json"
        error = json.loads(body)["error"]
        assert error["code"] == "too_many_connections"
        assert set(error) == {"message", "type", "param", "code"}
        assert await reader.read() == b""  # and closed
        assert len(REFUSAL) < 512  # short: a refusal must cost next to nothing

        for reader, writer in first:  # the three inside the cap are served as usual
            writer.write(HEALTHZ)
            assert (await _response(reader))[0] == 200

        writer = first.pop()[1]
        writer.close()  # a slot comes free…
        async with asyncio.timeout(5):
            while stack.edge.site.open_connections > 2:
                await asyncio.sleep(0.01)
        reader, writer = await _connect(stack)  # …and the next connection gets it
        writer.write(HEALTHZ)
        assert (await _response(reader))[0] == 200
        for _, writer in first:
            writer.close()


async def test_the_cap_and_its_503_on_a_plain_http_listener(tmp_path: Path) -> None:
    config = EdgeConfig(
        domain="example.test", data_dir=tmp_path, public_scheme="http", max_connections=1
    )
    edge = await start_edge(config, "127.0.0.1", 0, None)
    try:
        inside = await asyncio.open_connection("127.0.0.1", edge.port)
        async with asyncio.timeout(5):
            while edge.site.open_connections < 1:
                await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", edge.port)
        writer.write(HEALTHZ)
        assert await reader.read() == REFUSAL  # the whole answer, then the edge's end is closed
        writer.close()
        inside[1].write(HEALTHZ)
        assert (await _response(inside[0]))[0] == 200
        inside[1].close()
    finally:
        await edge.stop()
