"""The tunnel under faults: cancellation, deadlines, rogue agents, failover, drain, dead links,
slow clients. Real sockets; every wait is bounded."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import re
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import openai
import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from agent import config as agent_config
from agent.config import AgentConfig
from agent.login import login
from agent.ollama import OllamaBackend
from agent.pairing import pair
from agent.runner import RunOptions, connect_once
from agent.transport import WebsocketsTransport
from llmtunnel import sim_ollama
from protocol import (
    Challenge,
    Connection,
    Error,
    Open,
    Ping,
    Ready,
    Role,
    TunnelLimits,
    decode,
    encode,
)
from protocol.codec import AGENT_MAX_RECEIVE_FRAME
from protocol.frames import MAX_WINDOW
from protocol.requests import ChatRequest, GenerateRequest, Message
from tests.e2e.proxy import FaultyProxy
from tests.e2e.stack import Stack, running_stack, user

pytestmark = pytest.mark.e2e


async def _until(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_client_that_disconnects_stops_generation_on_the_gpu(tmp_path: Path) -> None:
    async with running_stack(tmp_path, tokens_per_second=100) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        assert stack.sim is not None
        stats = stack.sim.app[sim_ollama.STATS_KEY]
        body = {"model": "llama3.2:3b", "stream": True, "messages": [user("go tokens=100000")]}
        async with (
            stack.http() as http,
            http.stream(
                "POST",
                "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            ) as response,
        ):
            async for line in response.aiter_lines():
                if '"content":"go"' in line:
                    break
        await _until(lambda: stats.cancelled == 1)
        assert stats.active == 0
        tenant_id = await _tenant(stack)
        await _until(lambda: stack.edge.context.registry.sessions(tenant_id)[0].in_flight == 0)


async def _tenant(stack: Stack, slug: str = "acme") -> str:
    tenant = await stack.edge.context.store.tenants.by_slug(slug)
    assert tenant is not None
    return tenant.id


async def test_no_first_token_in_time_is_504(tmp_path: Path) -> None:
    async with running_stack(tmp_path, tokens_per_second=1, first_token_timeout=0.3) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        with pytest.raises(openai.APIStatusError) as caught:
            await stack.openai(key).chat.completions.create(
                model="llama3.2:3b", messages=[user("slow tokens=5")]
            )
        assert caught.value.status_code == 504
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["code"] == "backend_timeout"


async def test_a_request_past_its_deadline_ends_with_an_error_event(tmp_path: Path) -> None:
    async with running_stack(tmp_path, tokens_per_second=20, request_timeout=0.5) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        stream = await stack.openai(key).chat.completions.create(
            model="llama3.2:3b", messages=[user("long tokens=1000")], stream=True
        )
        seen = []
        with pytest.raises(openai.APIError, match=r"deadline|longer than allowed"):
            async for chunk in stream:
                seen.append(chunk)
        assert 2 <= len(seen) < 30
        async with stack.admin() as admin:
            events = (await admin.get("/tenants/acme/audit")).json()["events"]
        (request,) = [e for e in events if e["kind"] == "request"]
        assert (request["status"], request["error_code"]) == (200, "backend_timeout")


@pytest.mark.parametrize(
    ("payload", "close_code"),
    [
        (b"\xc1garbage", 1002),  # not msgpack
        (
            encode(Open(1, ChatRequest("m", (Message("user", "hi"),)), 0)),
            1002,
        ),  # a frame only the edge may send
        (b"\x00" * (2 * 1024 * 1024), 1009),  # over the edge's 1 MiB frame limit
    ],
)
async def test_a_rogue_agent_is_cut_off_and_nothing_else_is_affected(
    acme: tuple[Stack, str], payload: bytes, close_code: int
) -> None:
    stack, key = acme
    await stack.agent("acme", "good-gpu")
    rogue = await _pair_config(stack, "rogue-gpu")
    async with connect(
        rogue.connect_url, ssl=ssl.create_default_context(cafile=stack.ca), max_size=None
    ) as ws:
        models = [{"name": "llama3.2:3b", "capabilities": ["completion"]}]
        await login(WebsocketsTransport(ws), rogue, 4, models)
        await ws.send(payload)
        received = []
        with contextlib.suppress(ConnectionClosed):
            async with asyncio.timeout(5):
                async for message in ws:
                    assert isinstance(message, bytes)
                    received.append(decode(message, max_frame=len(message)))
        assert ws.close_code == close_code
        if close_code == 1002:  # the edge says why before it closes
            errors = [f for f in received if isinstance(f, Error) and f.stream_id == 0]
            assert [e.code for e in errors] == ["protocol_error"]
    reply = await stack.openai(key).chat.completions.create(
        model="llama3.2:3b", messages=[user("still fine tokens=3")]
    )
    assert reply.choices[0].message.content == "still fine the"


async def _pair_config(stack: Stack, name: str) -> AgentConfig:
    return await pair(await stack.pairing_code("acme", name), stack.edge_url, stack.ca)


async def test_a_machine_that_refuses_before_the_first_token_fails_over(
    stack: Stack,
) -> None:
    await stack.tenant("acme")
    key = await stack.key("acme")
    # Machine A's Ollama runs one request at a time and queues none: busy means 503.
    busy_config = sim_ollama.SimConfig(tokens_per_second=20, num_parallel=1, max_queue=0)
    busy = await sim_ollama.serve("127.0.0.1", 0, busy_config)
    busy_url = f"http://127.0.0.1:{sim_ollama.bound_port(busy)}"
    try:
        await stack.agent("acme", "gpu-a", ollama_url=busy_url)
        await stack.agent("acme", "gpu-b")
        async with httpx.AsyncClient(base_url=busy_url, timeout=30) as direct:
            hog = asyncio.create_task(
                direct.post(
                    "/api/chat",
                    json={"model": "llama3.2:3b", "messages": [user("tokens=100")]},
                )
            )
            await _until(lambda: busy.app[sim_ollama.STATS_KEY].active == 1)
            replies = await asyncio.gather(
                *(
                    stack.openai(key).chat.completions.create(
                        model="llama3.2:3b", messages=[user(f"n{i} tokens=3")]
                    )
                    for i in range(4)
                )
            )
            hog.cancel()
        assert [r.choices[0].message.content for r in replies] == [
            f"n{i} the tunnel" for i in range(4)
        ]
        assert busy.app[sim_ollama.STATS_KEY].started == 1  # only the hog ran on A
    finally:
        await busy.cleanup()


async def test_a_draining_agent_finishes_running_streams_then_leaves(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, tokens_per_second=50) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        agent = await stack.agent("acme")
        client = stack.openai(key)
        stream = await client.chat.completions.create(
            model="llama3.2:3b", messages=[user("finish me tokens=40")], stream=True
        )
        text = ""
        tenant_id = await _tenant(stack)
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
            if not agent.stop_event.is_set():
                agent.stop_event.set()  # SIGTERM: drain
                await _until(
                    lambda: not stack.edge.context.registry.candidates(tenant_id, "llama3.2:3b")
                )
                with pytest.raises(openai.InternalServerError):  # no new streams meanwhile
                    await client.chat.completions.create(
                        model="llama3.2:3b", messages=[user("new tokens=1")]
                    )
        assert len(text.split()) == 40
        async with asyncio.timeout(10):
            await agent.task  # the agent exits once its streams are done


async def test_edge_shutdown_lets_running_streams_finish(tmp_path: Path) -> None:
    async with running_stack(tmp_path, tokens_per_second=50) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        stream = await stack.openai(key).chat.completions.create(
            model="llama3.2:3b", messages=[user("finish me tokens=40")], stream=True
        )
        first = await stream.__anext__()
        stopping = asyncio.create_task(stack.edge.stop())
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) + (
            first.choices[0].delta.content or ""
        )
        assert len(text.split()) == 40
        async with asyncio.timeout(10):
            await stopping


async def test_a_stalled_client_stalls_only_its_own_stream(tmp_path: Path) -> None:
    window = 16 * 1024
    limits = TunnelLimits(stream_window=window)
    async with running_stack(tmp_path, limits=limits) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        body = json.dumps(
            {"model": "llama3.2:3b", "stream": True, "messages": [user("flood tokens=100000")]}
        ).encode()
        tls = ssl.create_default_context(cafile=stack.ca)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", stack.edge.port, ssl=tls, server_hostname="localhost"
        )
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
            + f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # headers arrive; then this client stops reading
        registry = stack.edge.context.registry
        session = registry.sessions(await _tenant(stack))[0]
        (stalled,) = session._streams.values()
        await _until(lambda: stalled.buffered > 0)
        # Another stream on the same tunnel runs to the end at full speed meanwhile.
        reply = await stack.openai(key).chat.completions.create(
            model="llama3.2:3b", messages=[user("meanwhile tokens=2000")]
        )
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 2000
        assert stalled.buffered <= window  # the edge holds at most one window for it
        assert stack.sim is not None
        assert stack.sim.app[sim_ollama.STATS_KEY].active == 1  # Ollama paused, not finished
        writer.close()


async def test_a_silent_link_is_found_at_three_intervals_and_its_streams_fail_fast(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # PROTOCOL.md §9: dead three intervals after the last frame heard, on both ends, give or take
    # scheduling (the loops used to look once per interval, and took up to four).
    interval = 0.5
    limits = TunnelLimits(heartbeat_interval=interval)
    async with running_stack(tmp_path, tokens_per_second=20, limits=limits) as stack:
        proxy = FaultyProxy(stack.edge.port)
        await proxy.start()
        try:
            await stack.tenant("acme")
            key = await stack.key("acme")
            await stack.agent("acme", dial=f"https://localhost:{proxy.port}")
            stream = await stack.openai(key).chat.completions.create(
                model="llama3.2:3b", messages=[user("long tokens=100000")], stream=True
            )
            await stream.__anext__()
            caplog.set_level(logging.WARNING, logger="agent")
            caplog.set_level(logging.WARNING, logger="edge")
            proxy.stall()
            loop = asyncio.get_running_loop()
            stalled_at = loop.time()  # the edge heard a DELTA at most 50 ms before
            with pytest.raises(openai.APIError, match="stopped answering"):
                async with asyncio.timeout(10):
                    async for _chunk in stream:
                        pass
            found_after = loop.time() - stalled_at
            await _until(lambda: "no frame from the edge" in caplog.text, timeout=5)
        finally:
            await proxy.close()
    assert 3 * interval - 0.1 <= found_after <= 3 * interval + 0.3
    # Each end logs the silence it judged: from its own last frame, 3 intervals, not 4.
    silences = [
        float(match)
        for pattern in (
            r"no frame from machine m_\w+ for ([\d.]+) s; closing",
            r"no frame from the edge for ([\d.]+) s; closing",
        )
        for match in re.findall(pattern, caplog.text)
    ]
    assert len(silences) == 2
    assert all(3 * interval <= silence <= 3 * interval + 0.3 for silence in silences), silences


async def test_an_edge_that_stops_reading_is_dropped_by_the_agent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # PROTOCOL.md §9: a write that does not finish within two heartbeat intervals drops the link.
    # A hand-made edge logs the agent in, opens a stream with all the credit it could want,
    # then keeps pinging (so the watchdog sees a live peer) and never reads again.
    caplog.set_level(logging.WARNING, logger="agent")
    interval = 0.5
    sim = await sim_ollama.serve("127.0.0.1", 0, sim_ollama.SimConfig())
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # accepted sockets inherit it
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stopped_reading = asyncio.Event()
    links: list[ServerConnection] = []

    async def edge_that_stops_reading(ws: ServerConnection) -> None:
        links.append(ws)
        conn = Connection(Role.EDGE, max_send_frame=AGENT_MAX_RECEIVE_FRAME)

        async def flush() -> None:
            for data in conn.data_to_send():
                await ws.send(data)

        conn.send(Challenge(b"n" * 32, f"127.0.0.1:{port}", [2]))
        await flush()
        conn.receive(await ws.recv(decode=False))  # AUTH: this edge trusts anyone
        conn.send(Ready("s", 1 << 20, MAX_WINDOW, MAX_WINDOW, interval))
        await flush()
        conn.receive(await ws.recv(decode=False))  # HELLO
        long_words = "w" * 4096  # every token the simulator streams is this word
        conn.send(Open(1, GenerateRequest("llama3.2:3b", f"{long_words} tokens=100000"), 0))
        await flush()
        ws.transport.pause_reading()
        stopped_reading.set()
        with contextlib.suppress(ConnectionClosed):
            for n in range(1000):
                conn.send(Ping(n))
                await flush()
                await asyncio.sleep(interval / 2)  # keeps the watchdog content

    config = AgentConfig(
        edge_url=f"http://127.0.0.1:{port}",
        machine_id="m_test",
        machine_name="gpu-1",
        tenant="acme",
        private_key=base64.b64encode(bytes(32)).decode(),  # any key: nobody checks it
        ca_file=None,
    )
    async with serve(edge_that_stops_reading, sock=listener, max_size=None, compression=None):
        agent = asyncio.create_task(
            connect_once(
                config,
                OllamaBackend(f"http://127.0.0.1:{sim_ollama.bound_port(sim)}"),
                RunOptions(),
            )
        )
        try:
            await asyncio.wait_for(stopped_reading.wait(), 10)
            started = asyncio.get_running_loop().time()
            with contextlib.suppress(ConnectionError):  # the link it cut
                await asyncio.wait_for(agent, 10)
            elapsed = asyncio.get_running_loop().time() - started
        finally:
            agent.cancel()
            for link in links:  # not reading, it would never see the agent leave
                link.transport.abort()
            await sim.cleanup()
    assert (
        f"a write to the edge did not finish in {2 * interval:g} s; dropping the link"
        in caplog.text
    )
    assert elapsed < 5  # two intervals once its socket buffers are full
    assert "no frame from the edge" not in caplog.text  # the writer found it, not the watchdog


async def test_a_thousand_concurrent_streams_through_one_tunnel(
    stack: Stack, tmp_path: Path
) -> None:
    await stack.tenant("acme")
    key = await stack.key("acme")
    # The agent and Ollama run in their own processes, as deployed: in this one the test's
    # client and the edge already keep a core busy.
    config_path = tmp_path / "agent.json"
    agent_config.save(await _pair_config(stack, "gpu-1"), config_path)
    async with (
        _process("sim-ollama", "--port", str(sim_port := _free_port())),
        _process(
            "agent",
            "run",
            "--config",
            str(config_path),
            "--max-concurrency",
            "1000",
            "--ollama",
            f"http://127.0.0.1:{sim_port}",
        ),  # fmt: skip
    ):
        await stack.wait_online("acme", "gpu-1")
        await _thousand_streams(stack, key)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _process(*args: str) -> AsyncIterator[None]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "llmtunnel", *args, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        yield
    finally:
        process.terminate()
        try:
            async with asyncio.timeout(10):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def _thousand_streams(stack: Stack, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    url = stack.edge_url + "/v1/chat/completions"

    # aiohttp rather than httpx here: this test's own client would otherwise cost more CPU than
    # the edge and agent it is testing, all on one core.
    async def one(http: aiohttp.ClientSession, n: int) -> str:
        body = {"model": "tinyllama:1.1b", "stream": True, "messages": [user(f"s{n} tokens=4")]}
        text = ""
        async with http.post(url, json=body, headers=headers) as response:
            assert response.status == 200, await response.text()
            async for raw in response.content:
                line = raw.decode().strip()
                if line.startswith("data: {"):
                    choices = json.loads(line[6:])["choices"]
                    if choices:
                        text += choices[0]["delta"].get("content") or ""
                elif line == "data: [DONE]":
                    return text
        raise AssertionError(f"stream {n} ended without [DONE]")

    connector = aiohttp.TCPConnector(limit=1000, ssl=stack.tls())
    async with aiohttp.ClientSession(connector=connector) as http, asyncio.timeout(120):
        texts = await asyncio.gather(*(one(http, n) for n in range(1000)))
    # Every stream complete and its own: each reply starts with its own request's word.
    for n, text in enumerate(texts):
        assert text == f"s{n} the tunnel carries"


async def test_one_keys_burst_does_not_starve_another_key(tmp_path: Path) -> None:
    async with running_stack(tmp_path, tokens_per_second=200) as stack:
        await stack.tenant("acme")
        flood_key = await stack.key("acme", "flood")
        other_key = await stack.key("acme", "other")
        await stack.agent("acme", max_concurrency=1)  # one slot: everything else queues
        done: list[str] = []

        async def ask(key: str, label: str) -> None:
            await stack.openai(key).chat.completions.create(
                model="llama3.2:3b", messages=[user(f"{label} tokens=10")]
            )
            done.append(label)

        flood = [asyncio.create_task(ask(flood_key, f"flood{i}")) for i in range(8)]
        registry = stack.edge.context.registry
        await _until(lambda: registry._waiters == 7)
        await ask(other_key, "other")
        await asyncio.gather(*flood)
        # Round robin between keys: the other key's one request goes right after the flood's
        # running one and the next flood request, not behind all eight.
        assert done.index("other") <= 2
        assert len(done) == 9


async def test_past_the_queue_bound_requests_get_a_clear_503(tmp_path: Path) -> None:
    async with running_stack(tmp_path, tokens_per_second=100, max_queued=2) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme", max_concurrency=1)
        client = stack.openai(key)
        running = [
            asyncio.create_task(
                client.chat.completions.create(
                    model="llama3.2:3b", messages=[user(f"r{i} tokens=20")]
                )
            )
            for i in range(3)  # one runs, two wait
        ]
        await _until(lambda: stack.edge.context.registry._waiters == 2)
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(
                model="llama3.2:3b", messages=[user("one too many")]
            )
        assert caught.value.status_code == 503
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["code"] == "machines_busy"
        assert "queue is full" in caught.value.body["message"]
        assert all(r.choices[0].finish_reason == "stop" for r in await asyncio.gather(*running))
