"""Rogue agents (issue 9, "no paired machine can hurt anyone else"): a really paired machine that
breaks the tunnel protocol on purpose, against a real edge over real sockets. One test (or a few)
per class of attack the red team found; the memory test runs the edge as its own process and
watches its RSS while a rogue machine does its worst."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from websockets.exceptions import ConnectionClosed

import edge.agents.endpoint
import edge.agents.session
from agent.config import AgentConfig, new_key
from agent.pairing import pair
from edge.agents.session import AgentSession
from protocol import (
    Delta,
    End,
    Frame,
    GoAway,
    Health,
    Hello,
    Models,
    Open,
    Ping,
    Pong,
    TunnelLimits,
    encode,
)
from tests.e2e.rogue import Refused, RogueAgent
from tests.e2e.stack import Stack, running_stack, user

pytestmark = pytest.mark.e2e

WINDOW = 4096
LIMITS = TunnelLimits(stream_window=WINDOW, heartbeat_interval=0.5)
ROGUE_MODEL = "rogue:1b"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """Tenant ``acme`` for the rogue machines, and tenant ``other`` with a well-behaved agent:
    the bystander every test checks is still served."""
    async with running_stack(tmp_path, limits=LIMITS) as running:
        await running.tenant("acme")
        await running.tenant("other")
        await running.agent("other", "good-gpu")
        yield running


async def _paired(stack: Stack, name: str = "rogue-gpu") -> AgentConfig:
    return await pair(await stack.pairing_code("acme", name), stack.edge_url, stack.ca)


async def _bystander_is_served(stack: Stack) -> None:
    key = await stack.key("other", "bystander")
    reply = await stack.openai(key).chat.completions.create(
        model="llama3.2:3b", messages=[user("still fine tokens=3")]
    )
    assert reply.choices[0].message.content == "still fine the"


@contextlib.asynccontextmanager
async def _client_request(stack: Stack, **body: Any) -> AsyncIterator[asyncio.Task[Any]]:
    """A chat request to the rogue's model, running in the background while the test plays the
    machine; cancelled on the way out if still running."""
    key = await stack.key("acme", f"client-{time.monotonic_ns()}")
    client = stack.openai(key)
    request = {"model": ROGUE_MODEL, "messages": [user("hi")], **body}
    task = asyncio.create_task(client.chat.completions.create(**request))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


async def _cut_off(stack: Stack, rogue: RogueAgent) -> None:
    """The edge forgot the rogue machine: it no longer routes to it."""
    registry = stack.edge.context.registry
    async with asyncio.timeout(10):
        while any(
            s.machine_name.startswith("rogue")
            for t in registry.tenants()
            for s in registry.sessions(t)
        ):
            await asyncio.sleep(0.02)


# ----------------------------------------------------------------- 1. tool calls cost credit


async def test_a_tool_call_beyond_the_credit_is_a_flow_control_error(stack: Stack) -> None:
    # Tool calls used to be free: a rogue sent tool-call-only DELTAs forever to a client that
    # never read. Now they are charged (PROTOCOL.md §8); one larger than the credit is refused.
    rogue = await RogueAgent.login(await _paired(stack))
    async with _client_request(stack) as client:
        sid = (await rogue.expect(Open)).stream_id
        arguments = json.dumps({"x": "y" * WINDOW})
        call = {"id": "call_1", "name": "f", "arguments": arguments}
        await rogue.send_raw(encode(Delta(sid, "", "", [call])))
        ending = await rogue.ending()
        assert ending.errors == [
            (
                "flow_control_error",
                f"peer sent {len(arguments) + 7} bytes with only {WINDOW} of credit left",
            )
        ]
        assert ending.code == 1002
        with pytest.raises(openai.APIStatusError) as caught:
            await client
        assert caught.value.status_code == 502
    await _bystander_is_served(stack)


async def test_within_its_credit_a_machine_streams_tool_calls_as_json_text(stack: Stack) -> None:
    rogue = await RogueAgent.login(await _paired(stack))
    async with _client_request(stack) as client:
        sid = (await rogue.expect(Open)).stream_id
        calls = [
            {"id": f"call_{n}", "name": "get_weather", "arguments": f'{{"city":"Paris","n":{n}}}'}
            for n in range(150)
        ]
        assert sum(len(json.dumps(c)) for c in calls) > 2 * WINDOW  # credit must come back
        for call in calls:
            while rogue.conn.credit(sid) < 40:
                await rogue.receive()
            await rogue.send(Delta(sid, "", "", [call]))
        await rogue.send(End(sid, "tool_calls", 5, 40, {}))
        reply = await client
    message = reply.choices[0].message
    assert message.tool_calls is not None
    assert [(c.id, c.function.arguments) for c in message.tool_calls] == [
        (c["id"], c["arguments"]) for c in calls
    ]


async def test_an_empty_delta_is_a_protocol_error(stack: Stack) -> None:
    rogue = await RogueAgent.login(await _paired(stack))
    async with _client_request(stack):
        sid = (await rogue.expect(Open)).stream_id
        await rogue.send_raw(bytes([0x95, 0x07, sid, 0xA0, 0xA0, 0x90]))  # [7, sid, "", "", []]
        ending = await rogue.ending()
    assert ending.errors == [("protocol_error", "empty DELTA: no text, no thinking, no tool call")]
    assert ending.code == 1002
    await _bystander_is_served(stack)


# ------------------------------------------------------- 3. control frames when nobody reads


async def test_pings_from_a_machine_that_does_not_read_drop_its_link(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    # PONGs for a machine that pings but never reads used to pile up in the edge (87 → 418 MB).
    caplog.set_level(logging.WARNING, logger="edge")
    rogue = await RogueAgent.login(await _paired(stack), receive_buffer=4096)
    rogue.stop_reading()
    ping = encode(Ping(1))
    started = time.monotonic()
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        async with asyncio.timeout(20):
            while True:
                await rogue.send_raw(ping)
    await _cut_off(stack, rogue)
    assert time.monotonic() - started < 10
    assert "peer sends PINGs faster than it reads: 16 PONGs are unsent" in caplog.text
    await rogue.close()
    await _bystander_is_served(stack)


async def test_a_machine_that_stops_reading_is_dropped_after_two_heartbeats(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    # The edge has megabytes to write (OPENs of big requests); the machine reads none of it.
    caplog.set_level(logging.WARNING, logger="edge")
    rogue = await RogueAgent.login(await _paired(stack), receive_buffer=4096)
    rogue.stop_reading()
    big = "x" * (2 * 1024 * 1024)
    session = await _session(stack)
    async with contextlib.AsyncExitStack() as requests:
        clients = [
            await requests.enter_async_context(_client_request(stack, messages=[user(big)]))
            for _ in range(4)
        ]
        async with asyncio.timeout(10):
            while session.in_flight < 4:
                await asyncio.sleep(0.01)
        blocked_from = time.monotonic()
        await _cut_off(stack, rogue)
        elapsed = time.monotonic() - blocked_from
        for client in clients:
            with pytest.raises(openai.APIStatusError) as caught:
                await client
            assert caught.value.status_code == 502
    assert (
        f"a write to machine {session.machine_id} did not finish in 1 s; dropping the link"
        in caplog.text
    )
    assert elapsed < 5  # two heartbeats of 0.5 s, once the socket buffers are full
    await rogue.close()
    await _bystander_is_served(stack)


async def _tenant(stack: Stack, slug: str = "acme") -> str:
    tenant = await stack.edge.context.store.tenants.by_slug(slug)
    assert tenant is not None
    return tenant.id


async def _session(stack: Stack) -> AgentSession:
    """The edge's session for the (one) rogue machine, once it is online."""
    async with asyncio.timeout(10):
        while not (sessions := stack.edge.context.registry.sessions(await _tenant(stack))):
            await asyncio.sleep(0.01)
    return sessions[0]


# ------------------------------------------------------------- 4. MODELS floods and limits


async def test_a_models_flood_is_cut_off_at_the_rate_limit(stack: Stack) -> None:
    rogue = await RogueAgent.login(await _paired(stack))
    session = await _session(stack)
    for n in range(edge.agents.session.MODELS_BURST):  # a burst of five is fine …
        await rogue.send(Models([{"name": f"m{n}", "capabilities": ["completion"]}]))
    async with asyncio.timeout(5):
        while "m4" not in session.models:
            await asyncio.sleep(0.01)
    await rogue.send(Models([{"name": "m5", "capabilities": []}]))  # … the sixth is not
    ending = await rogue.ending()
    assert ending.errors == [
        ("protocol_error", "too many MODELS frames: at most 5 at once, then one per 2 s")
    ]
    assert ending.code == 1002
    await _bystander_is_served(stack)


async def test_a_health_flood_is_cut_off_at_the_rate_limit(stack: Stack) -> None:
    rogue = await RogueAgent.login(await _paired(stack))
    session = await _session(stack)
    for n in range(edge.agents.session.MODELS_BURST):  # flapping five times is fine …
        await rogue.send(Health(n % 2 == 1, "" if n % 2 else "down"))
    async with asyncio.timeout(5):
        while session.backend_down is None:  # the fifth said: down
            await asyncio.sleep(0.01)
    await rogue.send(Health(True, ""))  # … the sixth is not
    ending = await rogue.ending()
    assert ending.errors == [
        ("protocol_error", "too many HEALTH frames: at most 5 at once, then one per 2 s")
    ]
    await _bystander_is_served(stack)


async def test_models_come_back_one_per_refill(stack: Stack) -> None:
    rogue = await RogueAgent.login(await _paired(stack))
    session = await _session(stack)
    for n in range(edge.agents.session.MODELS_BURST):
        await rogue.send(Models([{"name": f"m{n}", "capabilities": []}]))
    async with rogue.answering_pings():
        await asyncio.sleep(edge.agents.session.MODELS_REFILL + 0.1)
    await rogue.send(Models([{"name": "later", "capabilities": []}]))  # a token came back
    await rogue.send(Ping(7))
    assert await rogue.expect(Pong) == Pong(7)  # still connected
    assert list(session.models) == ["later"]


# ------------------------------------------------------------- 5. login and state holes


async def test_a_session_frame_before_hello_is_refused(stack: Stack) -> None:
    rogue = await RogueAgent.login(await _paired(stack), hello=False)
    await rogue.send_raw(encode(Models([{"name": ROGUE_MODEL, "capabilities": []}])))
    ending = await rogue.ending()
    assert ending.errors == [("protocol_error", "MODELS is not allowed in state greeting")]
    assert ending.code == 1008
    assert stack.edge.context.registry.sessions(await _tenant(stack)) == []


async def test_hello_twice_is_refused(stack: Stack) -> None:
    rogue = await RogueAgent.login(await _paired(stack))
    await rogue.send_raw(encode(Hello("rogue", 100_000, [])))
    ending = await rogue.ending()
    assert ending.errors == [("protocol_error", "HELLO is not allowed in state open")]
    assert ending.code == 1002
    await _cut_off(stack, rogue)


# ------------------------------------------------------------------ 6. unchecked fields

BAD_FRAMES: list[tuple[str, Frame, str]] = [
    ("usage-beyond-2**32", End(1, "stop", 2**64 - 1, 1, {}), "token counts"),
    ("timings-of-a-float", End(1, "stop", 1, 1, {"total": 1.5}), "a timing"),  # type: ignore[dict-item]
    ("too-many-timings", End(1, "stop", 1, 1, {f"t{i}": 1 for i in range(17)}), "timings"),
    (
        "tool-call-as-a-map",
        Delta(1, "", "", [{"id": "c", "name": "f", "arguments": {}}]),  # type: ignore[dict-item]
        "tool call",
    ),
    ("bin-in-a-model", Models([{"name": "m", "capabilities": [], "family": b"\x00"}]), "family"),
    ("unknown-model-field", Models([{"name": "m", "capabilities": [], "x": 1}]), "unknown fields"),
    (
        "too-many-models",
        Models([{"name": str(i), "capabilities": []} for i in range(1025)]),
        "1025",
    ),
]


@pytest.mark.parametrize(
    ("frame", "reason"), [(f, r) for _, f, r in BAD_FRAMES], ids=[n for n, _, _ in BAD_FRAMES]
)
async def test_fields_out_of_bounds_are_a_protocol_error(
    stack: Stack, frame: Frame, reason: str
) -> None:
    rogue = await RogueAgent.login(await _paired(stack))
    async with _client_request(stack) as client:
        assert (await rogue.expect(Open)).stream_id == 1
        await rogue.send_raw(encode(frame))
        ending = await rogue.ending()
        with pytest.raises(openai.APIStatusError):
            await client
    ((code, message),) = ending.errors
    assert code == "protocol_error" and reason in message
    assert ending.code == 1002
    assert await stack.edge.context.recorder.flush()  # the audit writes (2**64-1 once broke it)
    await _bystander_is_served(stack)


# ------------------------------------------------------------- 7. the frame size limit


async def test_a_frame_of_exactly_max_frame_is_accepted_and_one_byte_more_is_not(
    stack: Stack,
) -> None:
    limit = LIMITS.max_frame
    overhead = len(encode(GoAway(""))) + 4  # the reason becomes a str32: a 5-byte header
    at_limit = encode(GoAway("x" * (limit - overhead)))
    assert len(at_limit) == limit
    rogue = await RogueAgent.login(await _paired(stack))
    await rogue.send_raw(at_limit)
    await rogue.send(Ping(1))
    assert await rogue.expect(Pong) == Pong(1)  # taken, and the link is still up
    over = encode(GoAway("x" * (limit - overhead + 1)))
    assert len(over) == limit + 1
    await rogue.send_raw(over)
    ending = await rogue.ending()
    assert ending.errors == [
        ("frame_too_large", f"frame of {limit + 1} bytes exceeds limit {limit}")
    ]
    assert ending.code == 1009


# ------------------------------------------------------------------ 9. the login oracle


async def test_unknown_revoked_and_forged_logins_get_one_answer_for_the_same_work(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[bytes] = []
    real_verify = edge.agents.endpoint.verify_signature

    def counting(public_key: bytes, signature: bytes, message: bytes) -> bool:
        verified.append(public_key)
        return real_verify(public_key, signature, message)

    monkeypatch.setattr(edge.agents.endpoint, "verify_signature", counting)
    known = await _paired(stack, "rogue-known")
    revoked = await _paired(stack, "rogue-revoked")
    async with stack.admin() as admin:
        (await admin.delete("/tenants/acme/machines/rogue-revoked")).raise_for_status()
    forged_key = new_key()[0]
    seed = forged_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    attempts = {
        "unknown": known.model_copy(update={"machine_id": "m_" + "0" * 24}),
        "revoked": revoked,
        "forged": known.model_copy(update={"private_key": base64.b64encode(seed).decode()}),
    }
    answers = {}
    for name, config in attempts.items():
        with pytest.raises(Refused) as caught:
            await RogueAgent.login(config)
        answers[name] = (caught.value.error.code, caught.value.error.message)
    assert set(answers.values()) == {
        ("auth_failed", "unknown machine, revoked machine or bad signature")
    }
    # A signature check for each, the unknown and the revoked machine too (against a key
    # nobody holds), so the time taken does not tell them apart either.
    assert len(verified) == 3 and all(len(key) == 32 for key in verified)
    assert verified[0] == verified[1] != verified[2]


# ------------------------------------- 1, 2 and 3 together: the edge's memory under abuse

ABUSE_SECONDS = 16.0
RSS_BUDGET_MB = 50.0  # what the edge may grow by while the rogues below do their worst
CLIENTS = 8
MASKED_PING = b"\x82\x83\x00\x00\x00\x00" + encode(Ping(1))  # a client frame, zero mask key


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _edge_process(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``llmtunnel edge serve`` as its own process, its log in a file (a pipe nobody reads
    would stall it)."""
    log = (data_dir.parent / "edge.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "llmtunnel", "edge", "serve", "--domain", "example.test",
         "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir), "--self-signed"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield process
    finally:
        # Killed, not drained: a graceful stop would wait for streams nobody reads.
        process.kill()
        process.wait()
        log.close()


async def _until_up(edge_url: str, ca: Path) -> None:
    async with asyncio.timeout(20):
        while not await asyncio.to_thread(ca.exists):
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca))) as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(edge_url + "/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)


async def _silent_client(port: int, tls: ssl.SSLContext, key: str) -> asyncio.StreamWriter:
    """A streaming chat request from a client that then never reads a byte."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    _, writer = await asyncio.open_connection(sock=sock, ssl=tls, server_hostname="localhost")
    body = json.dumps({"model": ROGUE_MODEL, "stream": True, "messages": [user("go")]}).encode()
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    return writer


async def _online(admin: httpx.AsyncClient, name: str) -> bool:
    machines = (await admin.get("/tenants/acme/machines")).json()["machines"]
    return any(m["name"] == name and m["online"] for m in machines)


class Abuse:
    """What the rogues managed, for the assertions and the record."""

    def __init__(self) -> None:
        self.frames = 0  # DELTAs the streaming rogue sent
        self.charged = 0  # the credit they cost
        self.pings = 0  # PINGs the flooding rogue sent
        self.floods_cut = 0  # times the edge dropped the flooding rogue


def _abusive_delta(sid: int, n: int) -> Delta:
    """Mostly one-byte DELTAs, the most frames per byte of credit; every eighth a tool call."""
    if n % 8:
        return Delta(sid, "x", "", [])
    return Delta(sid, "", "", [{"id": f"c{n}", "name": "f", "arguments": "{}"}])


async def _stream_as_fast_as_credit_allows(config: AgentConfig, abuse: Abuse, until: float) -> None:
    """On every stream the edge opens, DELTAs whenever the machine's own connection says there
    is credit: what an agent may send by the protocol, as fast as it can."""
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        rogue = await RogueAgent.login(config)
        news = asyncio.Event()  # an OPEN or a WINDOW arrived

        async def read(rogue: RogueAgent = rogue, news: asyncio.Event = news) -> None:
            while True:
                await rogue.receive()
                news.set()

        reader = asyncio.create_task(read())
        n = 0
        try:
            while loop.time() < until and not reader.done():
                news.clear()
                streams = [
                    s for s in range(1, rogue.conn.next_stream_id()) if rogue.conn.is_active(s)
                ]
                for sid in streams:
                    while rogue.conn.credit(sid) >= 5 and loop.time() < until:
                        frame = _abusive_delta(sid, n := n + 1)
                        await rogue.send(frame)
                        abuse.frames += 1
                        abuse.charged += frame.flow_size
                        if n % 64 == 0:
                            await asyncio.sleep(0)  # send() rarely waits: let the others run
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.2):
                        await news.wait()
        except ConnectionClosed:
            pass
        finally:
            reader.cancel()
            await rogue.close()


async def _ping_without_reading(config: AgentConfig, abuse: Abuse, until: float) -> None:
    """PINGs as fast as the socket takes them, never reading a PONG; when the edge drops the
    link, log in again and carry on."""
    loop = asyncio.get_running_loop()
    batch = MASKED_PING * 4096
    while loop.time() < until:
        rogue = await RogueAgent.login(config, models=[], receive_buffer=4096)
        rogue.stop_reading()
        transport = rogue.ws.transport
        while loop.time() < until and not transport.is_closing():
            if transport.get_write_buffer_size() > 1024 * 1024:
                await asyncio.sleep(0.01)  # our own memory, not the edge's: keep it small
                continue
            transport.write(batch)  # whole WebSocket frames, straight to the socket
            abuse.pings += 4096
            await asyncio.sleep(0)
        if transport.is_closing() and loop.time() < until:
            abuse.floods_cut += 1
        await rogue.close()


async def test_a_rogue_machine_cannot_grow_the_edges_memory(tmp_path: Path) -> None:
    """One rogue machine streams one-byte DELTAs and tool calls as fast as its credit allows to
    clients that never read; another floods PINGs and never reads. The edge runs as its own
    process; its RSS must stay within RSS_BUDGET_MB of where it started."""
    port = _free_port()
    data_dir = tmp_path / "edge"
    edge_url = f"https://localhost:{port}"
    with _edge_process(data_dir, port) as process:
        ca = data_dir / "tls" / "ca.pem"
        await _until_up(edge_url, ca)
        tls = ssl.create_default_context(cafile=str(ca))
        admin_key = (data_dir / "admin.key").read_text().strip()
        loop = asyncio.get_running_loop()
        abuse = Abuse()
        async with httpx.AsyncClient(
            base_url=edge_url + "/admin/v1",
            headers={"Authorization": f"Bearer {admin_key}"},
            verify=tls,
        ) as admin:
            (await admin.post("/tenants", json={"slug": "acme"})).raise_for_status()
            key = (await admin.post("/tenants/acme/keys", json={"name": "k"})).json()["secret"]
            configs = []
            for name in ("rogue-streamer", "rogue-flooder"):
                code = (
                    await admin.post("/tenants/acme/machines/pair", json={"name": name})
                ).json()["code"]
                configs.append(await pair(code, edge_url, str(ca)))
            streamer, flooder = configs
            until = loop.time() + ABUSE_SECONDS
            streaming = asyncio.create_task(
                _stream_as_fast_as_credit_allows(streamer, abuse, until)
            )
            async with asyncio.timeout(10):
                while not await _online(admin, "rogue-streamer"):
                    await asyncio.sleep(0.05)
        clients = [await _silent_client(port, tls, key) for _ in range(CLIENTS)]
        flooding = asyncio.create_task(_ping_without_reading(flooder, abuse, until))
        start = peak = _rss_mb(process.pid)
        while loop.time() < until and not (streaming.done() or flooding.done()):
            peak = max(peak, _rss_mb(process.pid))
            if peak - start > RSS_BUDGET_MB:
                break  # it is growing without bound: no need to watch it eat the machine
            await asyncio.sleep(0.25)
        streaming.cancel()
        flooding.cancel()
        for task in (streaming, flooding):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for writer in clients:
            writer.transport.abort()
        assert process.poll() is None, "the edge died"
    print(  # the figures, for the record (pytest -s shows them)
        f"\nedge RSS {start:.1f} MB -> peak {peak:.1f} MB (+{peak - start:.1f});"
        f" {abuse.frames} DELTAs for {abuse.charged} bytes of credit;"
        f" {abuse.pings} PINGs; flooding rogue cut off {abuse.floods_cut} times"
    )
    assert peak - start < RSS_BUDGET_MB
    assert abuse.frames > 50_000 and abuse.pings > 100_000  # the abuse really happened
    assert abuse.floods_cut >= 1  # and the edge cut the rogue that did not read
