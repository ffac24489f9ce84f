"""The shared asyncio adapter (``llmtunnel.tunnel.Link``) over a socket pair, on a virtual clock: a
stream end to end with credit coming back, heartbeats, the watchdog, the write bound, and every
way a link ends (PROTOCOL.md §4, §6, §8, §9).

The two ends are small ``Link`` subclasses written here; where one end misbehaves, the test
plays it by hand on the raw transport."""

from __future__ import annotations

import asyncio

import pytest

from llmtunnel.tunnel import Link
from protocol import (
    ClosedByPeer,
    Delta,
    End,
    Error,
    ErrorCode,
    Frame,
    FrameTooLarge,
    GoAway,
    Open,
    Ping,
    Pong,
    ProtocolError,
    RemoteProtocolError,
    TunnelLimits,
    Window,
)
from protocol.codec import decode_many
from protocol.requests import GenerateRequest
from tests.llmtunnel.tunnel.pair import End as Side
from tests.llmtunnel.tunnel.pair import logged_in, on_socket_pairs

INTERVAL = 1.0
LIMITS = TunnelLimits(stream_window=1024, connection_window=4096, heartbeat_interval=INTERVAL)
REPLY = 10_000  # bytes of text per stream: almost ten stream windows


class Recorder(Link):
    """An end that records what reaches it and how its link ended."""

    PEER = "the peer"

    def __init__(self, side: Side) -> None:
        super().__init__(side.transport, side.conn, INTERVAL)
        self.frames: list[Frame] = []
        self.lost: list[tuple[str, ProtocolError | None]] = []
        self.lost_at: float | None = None

    def frame_received(self, frame: Frame) -> None:
        self.frames.append(frame)

    def link_lost(self, reason: str, error: ProtocolError | None) -> None:
        self.lost.append((reason, error))
        self.lost_at = asyncio.get_running_loop().time()


class Reader(Recorder):
    """An edge that reads each DELTA as it comes, handing its credit back."""

    def __init__(self, side: Side) -> None:
        super().__init__(side)
        self.text = ""
        self.ended = asyncio.Event()

    def frame_received(self, frame: Frame) -> None:
        super().frame_received(frame)
        if isinstance(frame, Delta):
            self.text += frame.content
            self.conn.consumed(frame.stream_id, frame.flow_size)
        elif isinstance(frame, End):
            self.ended.set()


class Writer(Recorder):
    """An agent that answers each OPEN with REPLY bytes of text, as credit allows, then END."""

    def __init__(self, side: Side) -> None:
        super().__init__(side)
        self.left: dict[int, int] = {}
        self.short_of_credit = 0  # times output waited for a WINDOW

    def frame_received(self, frame: Frame) -> None:
        super().frame_received(frame)
        if isinstance(frame, Open):
            self.left[frame.stream_id] = REPLY

    def prepare_frames(self) -> None:
        for sid, left in list(self.left.items()):
            size = min(left, self.conn.credit(sid))
            if size:
                self.conn.send(Delta(sid, "x" * size, "", []))
                self.left[sid] = left = left - size
            if not left:
                self.conn.send(End(sid, "stop", 1, REPLY, {}))
                del self.left[sid]
            elif not self.conn.credit(sid):
                self.short_of_credit += 1


async def both(edge: Link, agent: Link) -> tuple[asyncio.Task[None], asyncio.Task[None]]:
    return asyncio.create_task(edge.run()), asyncio.create_task(agent.run())


# ------------------------------------------------------------------ the happy path


@on_socket_pairs
async def test_a_stream_goes_end_to_end_with_credit_coming_back() -> None:
    edge_side, agent_side, _ = await logged_in(LIMITS)
    edge, agent = Reader(edge_side), Writer(agent_side)
    running = await both(edge, agent)
    edge.conn.send(Open(1, GenerateRequest("m", "go"), 0))
    edge.wake()
    async with asyncio.timeout(60):
        await edge.ended.wait()
    assert edge.text == "x" * REPLY  # every byte, in order, through windows of 1024
    assert agent.short_of_credit > 0  # the agent did wait for credit …
    windows = [f for f in agent.frames if isinstance(f, Window)]
    assert sum(w.increment for w in windows if w.stream_id == 1) >= REPLY - 1024  # … and got it
    assert edge.lost == agent.lost == []
    await edge.close()
    await asyncio.gather(*running, return_exceptions=True)


@on_socket_pairs
async def test_traffic_counts_the_frames_and_bytes_each_end_received_and_sent() -> None:
    edge_side, agent_side, _ = await logged_in(LIMITS)
    edge, agent = Reader(edge_side), Writer(agent_side)
    running = await both(edge, agent)
    edge.conn.send(Open(1, GenerateRequest("m", "go"), 0))
    edge.wake()
    async with asyncio.timeout(60):
        await edge.ended.wait()
    await edge.close()
    await asyncio.gather(*running, return_exceptions=True)
    for link, side in ((edge, edge_side), (agent, agent_side)):
        received = side.transport.received  # every message after the login, as it arrived
        assert link.traffic.messages_received == len(received)
        assert link.traffic.bytes_received == sum(map(len, received))
        frames = sum(len(decode_many(message)) for message in received)
        assert link.traffic.frames_received == frames >= len(received)
    assert edge.traffic.bytes_received > REPLY  # the text, and the frames around it
    assert edge.traffic.frames_received > REPLY // 1024  # a DELTA per window at least, an END
    edge_counts, agent_counts = edge.traffic.totals(), agent.traffic.totals()
    assert [(u, out) for u, _, out in edge_counts] == [(u, got) for u, got, _ in agent_counts]
    assert agent.traffic.frames_sent >= edge.traffic.frames_received


@on_socket_pairs
async def test_the_edge_pings_every_interval_and_the_agent_answers() -> None:
    edge_side, agent_side, _ = await logged_in(LIMITS)
    edge, agent = Recorder(edge_side), Recorder(agent_side)
    running = await both(edge, agent)
    await asyncio.sleep(3.5 * INTERVAL)
    pings = [f for m in agent_side.transport.received for f in decode_many(m, len(m))]
    pongs = [f for m in edge_side.transport.received for f in decode_many(m, len(m))]
    assert [type(f) for f in pings] == [Ping, Ping, Ping]  # at 1, 2 and 3 intervals
    assert [type(f) for f in pongs] == [Pong, Pong, Pong]  # the agent answers, never pings
    assert [p.payload for p in pings] == [p.payload for p in pongs]  # type: ignore[attr-defined]
    assert edge.rtt is not None and edge.rtt >= 0
    assert edge.frames == agent.frames == []  # PING and PONG are the adapter's business
    assert edge.lost == agent.lost == []  # each hears the other: nobody is dead
    await edge.close()
    await asyncio.gather(*running, return_exceptions=True)


# ------------------------------------------------------------------ liveness (§9)


@on_socket_pairs
async def test_a_silent_peer_is_dead_three_intervals_after_the_last_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    edge_side, silent, _ = await logged_in(LIMITS)
    edge = Recorder(edge_side)
    running = asyncio.create_task(edge.run())
    await asyncio.sleep(1.5 * INTERVAL)
    await silent.transport.send_frame(Ping(7))  # one frame at 1.5 intervals …
    async with asyncio.timeout(60):
        await running  # … so dead at 4.5, not 3
    assert edge.lost_at == 4.5 * INTERVAL
    assert edge.lost == [("the peer stopped answering for 3 s", None)]
    assert "no frame from the peer for 3.00 s; closing" in caplog.text
    frames = await silent.transport.frames()
    assert frames[-1] == Error(0, "heartbeat_timeout", "no frame for 3 s", False)
    assert [type(f) for f in frames[:-1]] == [Ping, Pong, Ping, Ping, Ping]
    assert edge_side.transport.aborted  # no close handshake with a dead peer


@on_socket_pairs
async def test_the_agent_finds_a_silent_edge_dead_too_and_never_pings() -> None:
    silent, agent_side, _ = await logged_in(LIMITS)
    agent = Recorder(agent_side)
    async with asyncio.timeout(60):
        await agent.run()
    assert agent.lost_at == 3 * INTERVAL
    frames = await silent.transport.frames()
    assert frames == [Error(0, "heartbeat_timeout", "no frame for 3 s", False)]


@on_socket_pairs
async def test_a_peer_that_stops_reading_is_dropped_by_the_write_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    edge_side, stalled, _ = await logged_in(LIMITS)
    stalled.transport.stop_reading()
    edge = Recorder(edge_side)
    running = asyncio.create_task(edge.run())
    big = GenerateRequest("m", "x" * 500_000)  # more than the socket buffers hold
    for sid in range(1, 5):
        edge.conn.send(Open(sid, big, 0))
    edge.wake()
    async with asyncio.timeout(60):
        await running
    # Two intervals after the write that could not finish; before the watchdog's three.
    assert edge.lost_at == 2 * INTERVAL
    assert edge.lost == [("the peer disconnected", None)]
    assert "a write to the peer did not finish in 2 s; dropping the link" in caplog.text
    assert edge_side.transport.aborted


# ------------------------------------------------------------------ how a link ends


@on_socket_pairs
async def test_a_protocol_error_is_answered_with_error_and_close_1002() -> None:
    edge_side, rogue, _ = await logged_in(LIMITS)
    edge = Recorder(edge_side)
    running = asyncio.create_task(edge.run())
    await rogue.transport.send(b"\xc1garbage")
    with pytest.raises(RemoteProtocolError) as caught:
        await running
    assert str(caught.value).startswith("malformed frame")
    ((reason, error),) = edge.lost
    assert reason == f"the peer broke the tunnel protocol: {caught.value}" and error is caught.value
    assert await rogue.transport.frames() == [Error(0, "protocol_error", str(caught.value), False)]
    assert edge_side.transport.closed_with == 1002


@on_socket_pairs
async def test_a_frame_over_the_limit_is_frame_too_large_and_close_1009() -> None:
    edge_side, rogue, _ = await logged_in(LIMITS)
    edge = Recorder(edge_side)
    running = asyncio.create_task(edge.run())
    await rogue.transport.send(b"\x00" * (LIMITS.max_frame + 1))
    with pytest.raises(FrameTooLarge):
        await running
    (error,) = await rogue.transport.frames()
    assert isinstance(error, Error) and error.code == "frame_too_large"
    assert edge_side.transport.closed_with == 1009


@on_socket_pairs
async def test_the_peers_error_ends_the_link_as_closed_by_peer() -> None:
    edge_side, agent_side, _ = await logged_in(LIMITS)
    edge = Recorder(edge_side)
    running = asyncio.create_task(edge.run())
    await agent_side.transport.send_frame(Error(0, "draining", "going away", True))
    with pytest.raises(ClosedByPeer) as caught:
        await running
    assert (caught.value.error_code, caught.value.error_message) == ("draining", "going away")
    assert edge.lost == [("the peer closed the tunnel", caught.value)]
    assert await agent_side.transport.frames() == []  # nothing to say to a peer that left
    assert edge_side.transport.closed_with == 1000


@on_socket_pairs
async def test_close_flushes_what_is_queued_then_its_error_then_closes() -> None:
    edge_side, agent_side, _ = await logged_in(LIMITS)
    edge = Recorder(edge_side)
    running = asyncio.create_task(edge.run())
    edge.conn.send(GoAway("revoking"))  # queued, not yet written …
    await edge.close(ErrorCode.MACHINE_REVOKED, "this machine was revoked")
    assert await agent_side.transport.frames() == [  # … it leaves first, in order
        GoAway("revoking"),
        Error(0, "machine_revoked", "this machine was revoked", False),
    ]
    assert edge_side.transport.closed_with == 1008  # a machine refused: policy violation
    assert edge.lost == [("the tunnel was closed: this machine was revoked", None)]
    async with asyncio.timeout(60):
        await running  # the read loop ends with the transport
    await edge.close(ErrorCode.DRAINING, "again")  # a second close waits for the first: no-op
    assert edge_side.transport.closed_with == 1008 and len(edge.lost) == 1


@on_socket_pairs
async def test_closed_before_it_runs_a_link_still_sends_its_error() -> None:
    edge_side, agent_side, _ = await logged_in(LIMITS)
    edge = Recorder(edge_side)
    await edge.close(ErrorCode.MACHINE_REVOKED, "revoked while replacing another")
    assert await agent_side.transport.frames() == [
        Error(0, "machine_revoked", "revoked while replacing another", False)
    ]
    await edge.run()  # starting it after that only ends it
    assert edge_side.transport.closed_with == 1008 and len(edge.lost) == 1


@on_socket_pairs
async def test_a_peer_that_hangs_up_ends_the_link_quietly() -> None:
    edge_side, agent_side, _ = await logged_in(LIMITS)
    edge = Recorder(edge_side)
    running = asyncio.create_task(edge.run())
    await agent_side.transport.close(1000)
    async with asyncio.timeout(60):
        await running
    assert edge.lost == [("the peer disconnected", None)]
    assert edge_side.transport.closed_with == 1000


@on_socket_pairs
async def test_frames_in_flight_after_this_side_closed_are_dropped() -> None:
    edge_side, agent_side, _ = await logged_in(LIMITS)
    edge = Recorder(edge_side)
    running = asyncio.create_task(edge.run())
    edge.conn.close(ErrorCode.DRAINING, "bye")  # the ERROR is queued: the connection is closed
    await agent_side.transport.send_frame(Ping(1))  # crossed it on the wire
    await asyncio.sleep(0.1)
    assert edge.lost == [] and not running.done()  # not a protocol error: it was in flight
    await edge.close()
    await running
    assert edge.lost == [("the tunnel was closed", None)]
