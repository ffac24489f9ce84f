"""The edge's session of one machine: the MODELS budget on its own, then a session over a socket
pair on a virtual clock, the machine played by hand (PROTOCOL.md §5, §7, §8, §10)."""

from __future__ import annotations

import asyncio

import pytest

from edge.agents.registry import Registry
from edge.agents.session import MODELS_BURST, MODELS_REFILL, AgentSession, ModelsBudget
from edge.agents.stream import TunnelStream
from edge.store import Machine
from protocol import (
    Cancel,
    Delta,
    End,
    Error,
    ErrorCode,
    Frame,
    GoAway,
    Hello,
    Models,
    Nodes,
    Open,
    RemoteProtocolError,
    TunnelLimits,
    Window,
    encode,
)
from protocol.requests import GenerateRequest
from tests.llmtunnel.tunnel.pair import HELLO, MACHINE, logged_in, on_socket_pairs
from tests.llmtunnel.tunnel.pair import End as Side

LIMITS = TunnelLimits(stream_window=1024, connection_window=4096, heartbeat_interval=5.0)


def test_models_budget_allows_a_burst_then_one_per_refill() -> None:
    budget = ModelsBudget(now=100.0)
    for _ in range(MODELS_BURST):
        budget.spend(100.0)
    with pytest.raises(RemoteProtocolError, match="at most 5 at once, then one per 2 s"):
        budget.spend(100.5)
    budget.spend(100.0 + MODELS_REFILL)  # one token came back
    with pytest.raises(RemoteProtocolError):
        budget.spend(100.0 + MODELS_REFILL)
    for n in range(MODELS_BURST):  # a long quiet time refills the burst, and no more
        budget.spend(1000.0 + n * 0.001)
    with pytest.raises(RemoteProtocolError):
        budget.spend(1000.01)


# ------------------------------------------------------------------ a session over a socket pair


def _machine_record(machine_id: str = MACHINE) -> Machine:
    return Machine(machine_id, "t1", "gpu-1", b"", 0.0, None)


async def _online(
    registry: Registry[AgentSession],
) -> tuple[AgentSession, Side, asyncio.Task[None]]:
    """A logged-in machine's session in ``registry``, running; the machine's end, to play by
    hand."""
    edge, machine, _ = await logged_in(LIMITS)
    session = AgentSession(edge.transport, edge.conn, _machine_record(), HELLO, registry, LIMITS)
    running = asyncio.create_task(session.run())
    await asyncio.sleep(0)
    return session, machine, running


async def _machine_reads(machine: Side, until: type[Frame]) -> list[Frame]:
    frames: list[Frame] = []
    while not (frames and isinstance(frames[-1], until)):
        data = await machine.transport.recv()
        assert data is not None, f"the edge hung up before {until.__name__}: {frames}"
        frames.extend(machine.conn.receive_message(data))
    return frames


async def _machine_sends(machine: Side, *frames: Frame) -> None:
    for frame in frames:
        machine.conn.send(frame)
    for data in machine.conn.data_to_send():
        await machine.transport.send(data)


async def _stream(registry: Registry[AgentSession]) -> TunnelStream:
    lease = await registry.acquire("t1", "m", 1.0)
    return lease.open(GenerateRequest("m", "hi"), 60.0)


@on_socket_pairs
async def test_a_stream_reads_the_machines_output_and_hands_credit_back() -> None:
    registry: Registry[AgentSession] = Registry()
    session, machine, running = await _online(registry)
    stream = await _stream(registry)
    (opened,) = await _machine_reads(machine, Open)
    assert isinstance(opened, Open) and opened.stream_id == stream.stream_id == 1
    await _machine_sends(machine, Delta(1, "a" * 300, "", []), Delta(1, "b" * 300, "", []))
    await asyncio.sleep(0.01)
    assert await stream.next() == Delta(1, "a" * 300 + "b" * 300, "", [])  # merged while waiting
    (window,) = await _machine_reads(machine, Window)  # 600 read: over half the window of 1024
    assert window == Window(1, 600)
    await _machine_sends(machine, End(1, "stop", 1, 2, {}))
    assert await stream.next() == End(1, "stop", 1, 2, {})
    assert session.in_flight == 0
    running.cancel()


@on_socket_pairs
async def test_a_stream_closed_by_its_reader_is_cancelled_on_the_machine() -> None:
    registry: Registry[AgentSession] = Registry()
    session, machine, running = await _online(registry)
    stream = await _stream(registry)
    await _machine_reads(machine, Open)
    stream.close()
    assert (await _machine_reads(machine, Cancel))[-1] == Cancel(1, "client_closed")
    assert session.in_flight == 0
    running.cancel()


@on_socket_pairs
async def test_when_the_machine_goes_its_streams_end_at_once_and_it_leaves_routing() -> None:
    registry: Registry[AgentSession] = Registry()
    _, machine, running = await _online(registry)
    streams = [await _stream(registry) for _ in range(2)]
    await machine.transport.close(1000)
    for stream in streams:
        event = await stream.next()
        assert isinstance(event, Error)
        assert (event.code, event.message, event.retryable) == (
            "backend_unavailable",
            "the machine disconnected",
            True,  # the request may fail over to another machine
        )
    await running
    assert registry.sessions("t1") == []


@on_socket_pairs
async def test_a_machine_that_breaks_the_protocol_is_told_why_and_cut_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry: Registry[AgentSession] = Registry()
    session, machine, running = await _online(registry)
    await machine.transport.send(encode(Hello("again", 1, [])))
    await running  # the edge keeps its handler quiet: it logs instead
    assert "machine m_1 broke the protocol: HELLO is not allowed in state open" in caplog.text
    (error,) = await machine.transport.frames()
    assert error == Error(0, "protocol_error", "HELLO is not allowed in state open", False)
    assert session.transport.closed_with == 1002  # type: ignore[attr-defined]


@on_socket_pairs
async def test_models_replace_the_list_and_goaway_takes_the_machine_out_of_routing() -> None:
    registry: Registry[AgentSession] = Registry()
    session, machine, running = await _online(registry)
    await _machine_sends(machine, Models([{"name": "n", "capabilities": []}]))
    await asyncio.sleep(0.01)
    assert list(session.models) == ["n"] and registry.candidates("t1", "n") == [session]
    await _machine_sends(machine, GoAway("shutting down"))
    await asyncio.sleep(0.01)
    assert not session.accepting and registry.candidates("t1", "n") == []
    running.cancel()


@on_socket_pairs
async def test_revoking_closes_with_machine_revoked_and_1008() -> None:
    registry: Registry[AgentSession] = Registry()
    session, machine, running = await _online(registry)
    stream = await _stream(registry)
    await session.close(ErrorCode.MACHINE_REVOKED, "this machine was revoked by an admin")
    event = await stream.next()
    assert isinstance(event, Error) and event.code == "backend_unavailable"
    assert event.message == "the tunnel was closed: this machine was revoked by an admin"
    frames = await machine.transport.frames()
    assert frames[-1] == Error(0, "machine_revoked", "this machine was revoked by an admin", False)
    assert session.transport.closed_with == 1008  # type: ignore[attr-defined]
    await running


@on_socket_pairs
async def test_a_newer_connection_of_the_machine_replaces_the_old_one() -> None:
    registry: Registry[AgentSession] = Registry()
    _, old_machine, old_running = await _online(registry)
    new, _, new_running = await _online(registry)
    assert registry.sessions("t1") == [new]
    frames = await old_machine.transport.frames()
    assert frames[-1] == Error(0, "protocol_error", "replaced by a newer connection", False)
    await old_running
    assert registry.sessions("t1") == [new]  # the old one leaving did not remove the new one
    new_running.cancel()


@on_socket_pairs
async def test_a_nodes_list_the_frame_refuses_is_not_sent_and_the_session_serves() -> None:
    registry: Registry[AgentSession] = Registry()
    edge, machine, _ = await logged_in(LIMITS)
    bad = Nodes("n" * 65, [["n" * 65, "edge-2.example.com"]])  # what NODES' checks refuse
    session = AgentSession(
        edge.transport, edge.conn, _machine_record(), HELLO, registry, LIMITS, nodes=lambda: bad
    )
    running = asyncio.create_task(session.run())
    await asyncio.sleep(0)
    stream = await _stream(registry)  # routable, and its OPEN is the first frame the agent sees
    assert [type(f) for f in await _machine_reads(machine, Open)] == [Open]
    stream.close()
    running.cancel()


@on_socket_pairs
async def test_a_session_whose_setup_fails_does_not_stay_registered() -> None:
    registry: Registry[AgentSession] = Registry()
    edge, _, _ = await logged_in(LIMITS)

    def broken() -> Nodes | None:
        raise RuntimeError("the directory failed")

    session = AgentSession(
        edge.transport, edge.conn, _machine_record(), HELLO, registry, LIMITS, nodes=broken
    )
    with pytest.raises(RuntimeError):
        await session.run()
    assert registry.sessions("t1") == []
