"""The agent's session over a socket pair, on a virtual clock, with a fake backend: streams within
credit, back-pressure on the backend, refusals, cancellation, draining (PROTOCOL.md §7, §8, §10).

The edge is played by hand: its ``Connection`` checks every frame the agent sends (a DELTA
beyond credit would be a ``FlowControlError`` here), and the test decides when it reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from agent.backend import Backend, BackendError, Finish, Piece, Vectors
from agent.session import TunnelSession
from protocol import (
    Cancel,
    ClosedByPeer,
    Delta,
    End,
    Error,
    ErrorCode,
    Frame,
    GoAway,
    Health,
    Models,
    Open,
    TunnelLimits,
)
from protocol.requests import GenerateRequest, Request, UnsupportedRequest
from tests.llmtunnel.tunnel.pair import End as Side
from tests.llmtunnel.tunnel.pair import logged_in, on_socket_pairs

LIMITS = TunnelLimits(stream_window=1024, connection_window=4096, heartbeat_interval=5.0)
MODELS = [{"name": "m", "capabilities": ["completion"]}]


class FakeBackend:
    """Streams ``pieces`` of text for every request, one per ``pace`` seconds, then finishes;
    counts what was pulled from it and whether it was stopped."""

    def __init__(self, pieces: int = 5, size: int = 100, pace: float = 0.0) -> None:
        self.pieces, self.size, self.pace = pieces, size, pace
        self.pulled = 0
        self.stopped = 0
        self.models: list[dict[str, Any]] = list(MODELS)
        self.down: str | None = None  # why it does not answer, while it does not

    async def aclose(self) -> None:
        pass

    async def discover(self) -> list[dict[str, Any]]:
        if self.down is not None:
            raise BackendError(ErrorCode.BACKEND_UNAVAILABLE, self.down, retryable=True)
        return self.models

    async def stream(
        self, request: Request | UnsupportedRequest
    ) -> AsyncGenerator[Piece | Vectors | Finish, None]:
        if self.down is not None:
            raise BackendError(ErrorCode.BACKEND_UNAVAILABLE, self.down, retryable=True)
        try:
            for n in range(self.pieces):
                await asyncio.sleep(self.pace)
                self.pulled += 1
                yield Piece(content=chr(ord("a") + n % 26) * self.size)
            yield Finish("stop", 3, self.pieces, {})
        except (asyncio.CancelledError, GeneratorExit):  # cancelled, or closed while paused
            self.stopped += 1
            raise


def session(side: Side, backend: Backend, **options: Any) -> TunnelSession:
    return TunnelSession(
        side.transport,
        side.conn,
        backend,
        options.pop("max_concurrency", 4),
        LIMITS.heartbeat_interval,
        list(MODELS),
        options.pop("model_refresh", 30.0),
        **options,
    )


async def edge_reads(edge: Side, until: type[Frame], *, consume: bool = True) -> list[Frame]:
    """What the agent sends, through the edge's connection, until a frame of type ``until``;
    the DELTAs read hand their credit back when ``consume``."""
    frames: list[Frame] = []
    while not (frames and isinstance(frames[-1], until)):
        data = await edge.transport.recv()
        assert data is not None, f"the agent hung up before {until.__name__}: {frames}"
        for frame in edge.conn.receive_message(data):
            frames.append(frame)
            if consume and isinstance(frame, Delta):
                edge.conn.consumed(frame.stream_id, frame.flow_size)
        for out in edge.conn.data_to_send():
            await edge.transport.send(out)
    return frames


async def open_stream(edge: Side, prompt: str = "go") -> int:
    sid = edge.conn.next_stream_id()
    edge.conn.send(Open(sid, GenerateRequest("m", prompt), 0))
    for data in edge.conn.data_to_send():
        await edge.transport.send(data)
    return sid


def text_of(frames: list[Frame]) -> str:
    return "".join(f.content for f in frames if isinstance(f, Delta))


@on_socket_pairs
async def test_an_open_is_answered_within_credit_then_ended() -> None:
    edge, agent_side, _ = await logged_in(LIMITS)
    backend = FakeBackend(pieces=30)  # 3,000 bytes through a window of 1,024
    agent = session(agent_side, backend)
    running = asyncio.create_task(agent.run())
    sid = await open_stream(edge)
    frames = await edge_reads(edge, End)
    assert text_of(frames) == "".join(chr(ord("a") + n % 26) * 100 for n in range(30))
    assert frames[-1] == End(sid, "stop", 3, 30, {})
    assert all(f.flow_size <= 1024 for f in frames if isinstance(f, Delta))
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


@on_socket_pairs
async def test_a_stream_without_credit_stops_reading_the_backend() -> None:
    edge, agent_side, _ = await logged_in(LIMITS)
    backend = FakeBackend(pieces=1000, pace=0.01)
    agent = session(agent_side, backend)
    running = asyncio.create_task(agent.run())
    await open_stream(edge)
    await asyncio.sleep(10)  # the edge reads nothing: no credit comes back
    # A window sent, a window's worth buffered, then the backend is not read any more.
    assert 20 <= backend.pulled <= 21
    assert backend.stopped == 0  # paused, not stopped
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)
    assert backend.stopped == 1  # the link ended: the backend call was closed


@on_socket_pairs
async def test_past_its_concurrency_the_agent_refuses_with_busy() -> None:
    edge, agent_side, _ = await logged_in(LIMITS)
    agent = session(agent_side, FakeBackend(pieces=1000, pace=1.0), max_concurrency=1)
    running = asyncio.create_task(agent.run())
    await open_stream(edge)
    second = await open_stream(edge)
    (refusal,) = [f for f in await edge_reads(edge, Error) if isinstance(f, Error)]
    assert (refusal.stream_id, refusal.code, refusal.retryable) == (second, "busy", True)
    assert refusal.message == "this machine runs at most 1 at once"
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


@on_socket_pairs
async def test_cancel_stops_the_backend_call() -> None:
    edge, agent_side, _ = await logged_in(LIMITS)
    backend = FakeBackend(pieces=1000, pace=1.0)
    agent = session(agent_side, backend)
    running = asyncio.create_task(agent.run())
    sid = await open_stream(edge)
    await edge_reads(edge, Delta)
    edge.conn.send(Cancel(sid, "client_closed"))
    for data in edge.conn.data_to_send():
        await edge.transport.send(data)
    await asyncio.sleep(2)
    assert backend.stopped == 1
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


@on_socket_pairs
async def test_a_changed_model_list_goes_out_as_models() -> None:
    edge, agent_side, _ = await logged_in(LIMITS)
    backend = FakeBackend()
    agent = session(agent_side, backend, model_refresh=3.0)
    running = asyncio.create_task(agent.run())
    backend.models = [*MODELS, {"name": "n", "capabilities": []}]
    frames = await edge_reads(edge, Models)
    assert frames == [Models(backend.models)]
    assert asyncio.get_running_loop().time() == 3.0  # at the next look, not before
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


@on_socket_pairs
async def test_a_backend_that_stops_answering_goes_out_as_health_and_so_does_its_return() -> None:
    edge, agent_side, _ = await logged_in(LIMITS)
    backend = FakeBackend()
    agent = session(agent_side, backend, model_refresh=3.0)
    running = asyncio.create_task(agent.run())
    backend.down = "cannot reach Ollama: ConnectError"
    assert await edge_reads(edge, Health) == [Health(False, "cannot reach Ollama: ConnectError")]
    assert asyncio.get_running_loop().time() == 3.0
    backend.down = None
    backend.models = [{"name": "n", "capabilities": []}]
    assert await edge_reads(edge, Models) == [Health(True, ""), Models(backend.models)]
    assert asyncio.get_running_loop().time() == 5.0  # looked at every 2 s while down
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


@on_socket_pairs
async def test_a_request_that_finds_the_backend_down_has_it_checked_at_once() -> None:
    edge, agent_side, _ = await logged_in(LIMITS)
    backend = FakeBackend()
    agent = session(agent_side, backend, model_refresh=30.0)
    running = asyncio.create_task(agent.run())
    backend.down = "cannot reach Ollama"
    sid = await open_stream(edge)
    frames = await edge_reads(edge, Health)
    assert frames == [
        Error(sid, "backend_unavailable", "cannot reach Ollama", True),
        Health(False, "cannot reach Ollama"),
    ]
    assert asyncio.get_running_loop().time() < 1.0  # not at the next look, 30 s on
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


@on_socket_pairs
async def test_a_backend_down_before_the_login_is_the_first_thing_the_edge_hears() -> None:
    edge, agent_side, _ = await logged_in(LIMITS)
    backend = FakeBackend()
    backend.down = "cannot reach Ollama"
    agent = session(agent_side, backend, backend_down="cannot reach Ollama")
    running = asyncio.create_task(agent.run())
    assert await edge_reads(edge, Health) == [Health(False, "cannot reach Ollama")]
    assert asyncio.get_running_loop().time() == 0.0
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


@on_socket_pairs
async def test_on_stop_the_agent_drains_then_closes_with_1001() -> None:
    edge, agent_side, _ = await logged_in(LIMITS)
    stop = asyncio.Event()
    agent = session(agent_side, FakeBackend(pieces=10, pace=1.0), stop=stop, drain_timeout=60.0)
    running = asyncio.create_task(agent.run())
    sid = await open_stream(edge)
    await edge_reads(edge, Delta)
    stop.set()
    for _ in range(5):
        await asyncio.sleep(0)  # the agent sends GOAWAY …
    late = await open_stream(edge)  # … and this OPEN crosses it on the wire
    assert (await edge_reads(edge, GoAway))[-1] == GoAway("the agent is shutting down")
    frames = await edge_reads(edge, End)
    assert Error(late, "draining", "this machine is shutting down", True) in frames
    assert isinstance(frames[-1], End) and frames[-1].stream_id == sid  # it finished
    async with asyncio.timeout(60):
        await running
    assert agent_side.transport.closed_with == 1001
    assert asyncio.get_running_loop().time() == pytest.approx(10.0)


@on_socket_pairs
async def test_the_edges_error_ends_the_session_as_closed_by_peer() -> None:
    edge, agent_side, _ = await logged_in(LIMITS)
    backend = FakeBackend(pieces=1000, pace=1.0)
    agent = session(agent_side, backend)
    running = asyncio.create_task(agent.run())
    await open_stream(edge)
    await edge_reads(edge, Delta)  # the stream runs
    edge.conn.close("machine_revoked", "revoked by an admin")
    for data in edge.conn.data_to_send():
        await edge.transport.send(data)
    with pytest.raises(ClosedByPeer) as caught:
        await running
    assert caught.value.error_code == "machine_revoked"
    assert backend.stopped == 1  # its streams' backend calls were closed
