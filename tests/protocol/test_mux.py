"""The connection state machine, synchronous and socket-free: two ends wired back to back."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from protocol import (
    Auth,
    Cancel,
    Challenge,
    Connection,
    Delta,
    End,
    Error,
    ErrorCode,
    FlowControlError,
    Frame,
    GoAway,
    Hello,
    LocalProtocolError,
    Open,
    Ping,
    Pong,
    Ready,
    RemoteProtocolError,
    Role,
    State,
    StreamClosed,
    Window,
    connection_error,
    encode,
)

STREAM_WINDOW = 100
CONNECTION_WINDOW = 250


def deliver(source: Connection, target: Connection) -> list[Frame | None]:
    return [target.receive(data) for data in source.data_to_send()]


def handshake() -> tuple[Connection, Connection]:
    edge, agent = Connection(Role.EDGE), Connection(Role.AGENT)
    edge.send(Challenge(b"n" * 32, "edge.test", [1]))
    deliver(edge, agent)
    assert (edge.state, agent.state) == (State.CHALLENGED, State.CHALLENGED)
    agent.send(Auth("m_1", 1, b"s" * 64))
    deliver(agent, edge)
    assert (edge.state, agent.state) == (State.AUTHENTICATING, State.AUTHENTICATING)
    edge.send(Ready("s", 1 << 20, STREAM_WINDOW, CONNECTION_WINDOW, 5.0))
    deliver(edge, agent)
    assert (edge.state, agent.state) == (State.OPEN, State.OPEN)
    agent.send(Hello("1", 4, [{"name": "m", "capabilities": ["completion"]}]))
    deliver(agent, edge)
    return edge, agent


def open_stream(edge: Connection, agent: Connection) -> int:
    sid = edge.next_stream_id()
    edge.send(Open(sid, {"op": "chat"}, 0))
    deliver(edge, agent)
    return sid


def test_handshake_reaches_open_with_the_edges_limits() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    assert agent.credit(sid) == STREAM_WINDOW
    assert agent.max_send_frame == 1 << 20


@pytest.mark.parametrize(
    ("frame", "state"),
    [
        (Open(1, {"op": "chat"}, 0), State.START),
        (Ready("s", 1 << 20, 1, 1, 5.0), State.START),
        (Window(1, 5), State.START),
    ],
)
def test_frames_before_the_handshake_are_refused(frame: Frame, state: State) -> None:
    agent = Connection(Role.AGENT)
    with pytest.raises(RemoteProtocolError, match="not allowed in state start"):
        agent.receive(encode(frame))
    assert agent.state is state
    edge = Connection(Role.EDGE)
    with pytest.raises(LocalProtocolError):
        edge.send(frame)


def test_frames_from_the_wrong_side_are_refused() -> None:
    edge, agent = handshake()
    with pytest.raises(RemoteProtocolError, match="agent never sends READY"):
        edge.receive(encode(Ready("s", 1 << 20, 1, 1, 5.0)))
    with pytest.raises(RemoteProtocolError, match="edge never sends DELTA"):
        agent.receive(encode(Delta(1, "x", "", [])))
    with pytest.raises(LocalProtocolError, match="edge never sends AUTH"):
        edge.send(Auth("m", 1, b"s" * 64))


def test_auth_twice_is_a_protocol_error() -> None:
    edge, _ = handshake()
    with pytest.raises(RemoteProtocolError):
        edge.receive(encode(Auth("m_1", 1, b"s" * 64)))


def test_stream_ids_must_increase() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    with pytest.raises(LocalProtocolError, match="not above"):
        edge.send(Open(sid, {"op": "chat"}, 0))
    with pytest.raises(RemoteProtocolError, match="not above"):
        agent.receive(encode(Open(sid, {"op": "chat"}, 0)))


def test_frames_for_a_stream_never_opened_are_a_protocol_error() -> None:
    edge, _ = handshake()
    with pytest.raises(RemoteProtocolError, match="never opened"):
        edge.receive(encode(Delta(7, "x", "", [])))


def test_ping_is_answered_with_the_same_payload() -> None:
    edge, agent = handshake()
    edge.send(Ping(1234))
    assert deliver(edge, agent) == [Ping(1234)]
    assert deliver(agent, edge) == [Pong(1234)]


def test_the_agent_cannot_send_beyond_its_credit() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    agent.send(Delta(sid, "x" * 60, "", []))
    with pytest.raises(LocalProtocolError, match="credit"):
        agent.send(Delta(sid, "y" * 41, "", []))
    assert agent.credit(sid) == 40


def test_a_delta_beyond_credit_is_a_flow_control_error() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    with pytest.raises(FlowControlError) as caught:
        edge.receive(encode(Delta(sid, "x" * (STREAM_WINDOW + 1), "", [])))
    assert caught.value.code is ErrorCode.FLOW_CONTROL


def test_credit_comes_back_once_half_a_window_is_consumed() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    agent.send(Delta(sid, "x" * 30, "", []))
    agent.send(Delta(sid, "x" * 30, "", []))
    deliver(agent, edge)
    edge.consumed(sid, 30)
    assert edge.data_to_send() == []  # less than half a window: no WINDOW yet
    edge.consumed(sid, 30)
    assert deliver(edge, agent) == [Window(sid, 60)]
    assert agent.credit(sid) == STREAM_WINDOW


def test_the_connection_window_caps_all_streams_together() -> None:
    edge, agent = handshake()
    streams = [open_stream(edge, agent) for _ in range(3)]
    agent.send(Delta(streams[0], "x" * 100, "", []))
    agent.send(Delta(streams[1], "x" * 100, "", []))
    assert agent.credit(streams[2]) == CONNECTION_WINDOW - 200
    with pytest.raises(LocalProtocolError):
        agent.send(Delta(streams[2], "x" * 51, "", []))


def test_late_deltas_after_cancel_are_dropped_and_their_credit_returned() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    edge.send(Cancel(sid, "client went away"))
    agent.send(Delta(sid, "x" * 100, "", []))  # crossed the CANCEL on the wire
    assert deliver(agent, edge) == [None]
    # The edge handed the connection credit back (100 ≥ half of 250 is not reached, so add more).
    other = open_stream(edge, agent)
    deliver(edge, agent)  # the CANCEL and the OPEN reach the agent
    agent.send(Delta(other, "y" * 40, "", []))
    deliver(agent, edge)
    edge.consumed(other, 40)
    windows = [f for f in deliver(edge, agent) if isinstance(f, Window)]
    assert Window(0, 140) in windows
    assert not agent.is_active(sid)


def test_end_error_and_cancel_close_the_stream() -> None:
    edge, agent = handshake()
    ended, failed, cancelled = (open_stream(edge, agent) for _ in range(3))
    agent.send(End(ended, "stop", 1, 2, {}))
    agent.send(Error(failed, "backend_error", "boom", False))
    edge.send(Cancel(cancelled, "deadline"))
    deliver(agent, edge)
    deliver(edge, agent)
    for sid in (ended, failed, cancelled):
        assert not edge.is_active(sid)
        assert not agent.is_active(sid)
        with pytest.raises(StreamClosed):
            agent.send(Delta(sid, "x", "", []))


def test_goaway_drains_no_new_streams_but_a_crossed_open_is_accepted() -> None:
    edge, agent = handshake()
    running = open_stream(edge, agent)
    agent.send(GoAway("shutting down"))
    crossed = edge.next_stream_id()
    edge.send(Open(crossed, {"op": "chat"}, 0))  # sent before the GOAWAY arrived
    assert deliver(edge, agent) == [Open(crossed, {"op": "chat"}, 0)]
    deliver(agent, edge)
    assert (edge.state, agent.state) == (State.DRAINING, State.DRAINING)
    with pytest.raises(LocalProtocolError):
        edge.send(Open(edge.next_stream_id(), {"op": "chat"}, 0))
    agent.send(Delta(running, "still going", "", []))
    agent.send(End(running, "stop", 1, 1, {}))
    agent.send(Error(crossed, "draining", "no new streams", True))
    assert [type(f) for f in deliver(agent, edge)] == [Delta, End, Error]


def test_error_on_stream_zero_closes_the_connection() -> None:
    edge, agent = handshake()
    edge.send(connection_error(RemoteProtocolError("bad")))
    (frame,) = deliver(edge, agent)
    assert isinstance(frame, Error)
    assert frame.code == "protocol_error"
    assert agent.state is State.CLOSED
    with pytest.raises(RemoteProtocolError, match="after the connection closed"):
        agent.receive(encode(Ping(1)))
    with pytest.raises(LocalProtocolError):
        agent.send(Pong(1))


class TunnelMachine(RuleBasedStateMachine):
    """Random interleavings of both ends' actions; the ends must always agree (PROTOCOL.md §7-8)."""

    def __init__(self) -> None:
        super().__init__()
        self.edge, self.agent = handshake()
        self.open: set[int] = set()  # streams the model says are open on both ends
        self.buffered: dict[int, int] = {}  # bytes the edge received but the client did not read

    def flush(self) -> None:
        for frame in deliver(self.agent, self.edge):
            if isinstance(frame, Delta) and frame.stream_id in self.open:
                self.buffered[frame.stream_id] = (
                    self.buffered.get(frame.stream_id, 0) + frame.flow_size
                )
        deliver(self.edge, self.agent)

    @rule()
    def open_stream(self) -> None:
        self.open.add(open_stream(self.edge, self.agent))

    @precondition(lambda self: self.open)
    @rule(data=st.data(), size=st.integers(0, 150))
    def agent_sends(self, data: st.DataObject, size: int) -> None:
        sid = data.draw(st.sampled_from(sorted(self.open)))
        credit = self.agent.credit(sid)
        if size > credit:
            with pytest.raises(LocalProtocolError):
                self.agent.send(Delta(sid, "x" * size, "", []))
        else:
            self.agent.send(Delta(sid, "x" * size, "", []))
        self.flush()

    @precondition(lambda self: self.buffered)
    @rule(data=st.data())
    def client_reads(self, data: st.DataObject) -> None:
        sid = data.draw(st.sampled_from(sorted(self.buffered)))
        self.edge.consumed(sid, self.buffered.pop(sid))
        self.flush()

    @precondition(lambda self: self.open)
    @rule(data=st.data(), by_edge=st.booleans())
    def stream_ends(self, data: st.DataObject, by_edge: bool) -> None:
        sid = data.draw(st.sampled_from(sorted(self.open)))
        if by_edge:
            self.edge.send(Cancel(sid, "client went away"))
        else:
            self.agent.send(End(sid, "stop", 1, 1, {}))
        self.open.discard(sid)
        if sid in self.buffered:
            self.edge.consumed(sid, self.buffered.pop(sid))
        self.flush()

    @rule(payload=st.integers(0, 2**32))
    def ping(self, payload: int) -> None:
        self.edge.send(Ping(payload))
        self.flush()
        self.flush()

    @invariant()
    def ends_agree(self) -> None:
        for sid in range(1, self.edge.next_stream_id()):
            assert self.edge.is_active(sid) == self.agent.is_active(sid) == (sid in self.open)

    @invariant()
    def credit_is_never_negative(self) -> None:
        for sid in self.open:
            assert 0 <= self.agent.credit(sid) <= STREAM_WINDOW


TunnelMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_tunnel_state_machine = TunnelMachine.TestCase
