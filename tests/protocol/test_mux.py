"""The connection state machine, synchronous and socket-free: an edge and an agent back to back.

One WebSocket message is one frame, so there is no partial-frame feeding: instead every message
of a golden session is fed whole and the state checked after each (PROTOCOL.md §4 to §10).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import pytest

from protocol import (
    Auth,
    Cancel,
    Challenge,
    Connection,
    Delta,
    Embeddings,
    End,
    Error,
    ErrorCode,
    FlowControlError,
    Frame,
    FrameTooLarge,
    FrameType,
    GoAway,
    Health,
    Hello,
    LocalProtocolError,
    Models,
    Nodes,
    Open,
    Ping,
    Pong,
    ProtocolError,
    Ready,
    RemoteProtocolError,
    Role,
    State,
    StreamClosed,
    Window,
    choose_version,
    connection_error,
    decode,
    encode,
)
from protocol.codec import decode_many
from protocol.frames import MAX_WINDOW, NO_STREAM
from protocol.mux import MAX_UNSENT_PONGS
from protocol.requests import ChatRequest, EmbedRequest, Message, Options

STREAM_WINDOW = 100
CONNECTION_WINDOW = 250
READY = Ready("s", 1024, STREAM_WINDOW, CONNECTION_WINDOW, 5.0)
CHAT = ChatRequest("m", (Message("user", "hi"),))


def pump(source: Connection, target: Connection) -> list[Frame]:
    """Move everything ``source`` queued into ``target``, as the I/O layer does; the frames
    ``target`` delivers (dropped late frames are not among them)."""
    return [frame for data in source.data_to_send() for frame in target.receive_message(data)]


def queued(conn: Connection) -> list[Frame]:
    """Collect and decode what ``conn`` queued, without delivering it."""
    return [frame for data in conn.data_to_send() for frame in decode_many(data, 1 << 30)]


def handshake(*, hello: bool = True) -> tuple[Connection, Connection]:
    edge, agent = Connection(Role.EDGE), Connection(Role.AGENT)
    edge.send(Challenge(b"n" * 32, "edge.test", [2]))
    pump(edge, agent)
    agent.send(Auth("m_1", 1, b"s" * 64))
    pump(agent, edge)
    edge.send(READY)
    pump(edge, agent)
    if hello:
        agent.send(Hello("1", 4, [{"name": "m", "capabilities": ["completion"]}]))
        pump(agent, edge)
    return edge, agent


def open_stream(edge: Connection, agent: Connection) -> int:
    sid = edge.next_stream_id()
    edge.send(Open(sid, CHAT, 0))
    assert pump(edge, agent) == [Open(sid, CHAT, 0)]
    return sid


def delta(sid: int, size: int) -> Delta:
    return Delta(sid, "x" * size, "", [])


# ------------------------------------------------------------------ a golden session, step by step

Step = tuple[Role, Frame, str, State, State, list[str]]

# (sender, frame, its wire bytes by hand, edge state after, agent state after, automatic replies)
GOLDEN_SESSION: list[Step] = [
    (
        Role.EDGE,
        Challenge(b"\x00" * 16, "e", [2]),
        "94 01 c4 10" + " 00" * 16 + " a1 65 91 02",
        State.CHALLENGED,
        State.CHALLENGED,
        [],
    ),
    (
        Role.AGENT,
        Auth("m", 2, b"\x01" * 64),
        "94 02 a1 6d 02 c4 40" + " 01" * 64,
        State.AUTHENTICATING,
        State.AUTHENTICATING,
        [],
    ),
    (
        Role.EDGE,
        Ready("s", 1024, 100, 250, 5.0),
        "96 03 a1 73 cd 04 00 64 cc fa cb 40 14 00 00 00 00 00 00",
        State.GREETING,
        State.GREETING,
        [],
    ),
    (Role.AGENT, Hello("1", 4, []), "94 04 a1 31 04 90", State.OPEN, State.OPEN, []),
    (
        Role.EDGE,
        Open(1, CHAT, 0),
        # {"op": "chat", "model": "m", "messages": [{"role": "user", "content": "hi"}]}
        "95 06 01 83 a2 6f 70 a4 63 68 61 74 a5 6d 6f 64 65 6c a1 6d"
        " a8 6d 65 73 73 61 67 65 73 91 82 a4 72 6f 6c 65 a4 75 73 65 72"
        " a7 63 6f 6e 74 65 6e 74 a2 68 69 00 a0",
        State.OPEN,
        State.OPEN,
        [],
    ),
    (Role.AGENT, Delta(1, "hi", "", []), "95 07 01 a2 68 69 a0 90", State.OPEN, State.OPEN, []),
    (Role.EDGE, Ping(7), "92 0c 07", State.OPEN, State.OPEN, ["92 0d 07"]),
    (Role.AGENT, GoAway("bye"), "92 0e a3 62 79 65", State.DRAINING, State.DRAINING, []),
    (
        Role.AGENT,
        End(1, "stop", 3, 200, {}),
        "96 08 01 a4 73 74 6f 70 03 cc c8 80",
        State.DRAINING,
        State.DRAINING,
        [],
    ),
    (
        Role.EDGE,
        Error(0, "x", "y", False),
        "95 09 00 a1 78 a1 79 c2",
        State.CLOSED,
        State.CLOSED,
        [],
    ),
]


def test_a_golden_session_message_by_message() -> None:
    ends = {Role.EDGE: Connection(Role.EDGE), Role.AGENT: Connection(Role.AGENT)}
    edge, agent = ends[Role.EDGE], ends[Role.AGENT]
    assert (edge.state, agent.state) == (State.START, State.START)
    for sender_role, frame, wire, edge_state, agent_state, replies in GOLDEN_SESSION:
        sender = ends[sender_role]
        receiver = ends[Role.AGENT if sender_role is Role.EDGE else Role.EDGE]
        sender.send(frame)
        assert sender.data_to_send() == [bytes.fromhex(wire)], frame
        assert receiver.receive(bytes.fromhex(wire)) == frame
        assert (edge.state, agent.state) == (edge_state, agent_state), frame
        assert receiver.data_to_send() == [bytes.fromhex(reply) for reply in replies]
        if isinstance(frame, Ready):
            assert agent.max_send_frame == 1024  # READY's max_frame bounds what the agent sends
            assert edge.stream_window == agent.stream_window == 100
        if isinstance(frame, Open):
            assert edge.is_active(1) and agent.is_active(1)
            assert agent.credit(1) == 100
        if isinstance(frame, Delta):
            assert agent.credit(1) == 98
        if isinstance(frame, End):
            assert not edge.is_active(1) and not agent.is_active(1)
            assert edge.active_streams == agent.active_streams == 0


def test_the_handshake_states_and_limits() -> None:
    edge, agent = handshake(hello=False)
    assert (edge.state, agent.state) == (State.GREETING, State.GREETING)
    assert edge.connection_window == agent.connection_window == CONNECTION_WINDOW
    assert agent.max_send_frame == READY.max_frame
    assert edge.max_send_frame == 1024 * 1024  # the edge's own limit is not READY's
    assert edge.next_stream_id() == 1
    assert edge.active_streams == agent.active_streams == 0
    assert edge.peer is Role.AGENT and agent.peer is Role.EDGE


def test_hello_comes_first_after_ready_and_then_models_may_follow() -> None:
    edge, agent = handshake(hello=False)
    agent.send(Hello("1", 1, []))
    assert (agent.state, edge.state) == (State.OPEN, State.GREETING)
    agent.send(Models([{"name": "m", "capabilities": []}]))
    assert pump(agent, edge) == [Hello("1", 1, []), Models([{"name": "m", "capabilities": []}])]
    assert edge.state is State.OPEN


def test_hello_is_sent_exactly_once() -> None:
    edge, agent = handshake()
    with pytest.raises(LocalProtocolError, match="HELLO is not allowed in state open"):
        agent.send(Hello("1", 1, []))
    with pytest.raises(RemoteProtocolError, match="HELLO is not allowed in state open"):
        edge.receive(encode(Hello("1", 1, [])))
    assert edge.state is agent.state is State.OPEN


@pytest.mark.parametrize(
    "first",
    [
        Models([{"name": "m", "capabilities": []}]),
        Ping(1),
        Pong(1),
        GoAway("bye"),
        Error(1, "busy", "", True),
    ],
    ids=lambda frame: type(frame).__name__,
)
def test_no_session_frame_from_the_agent_before_hello(first: Frame) -> None:
    edge, agent = handshake(hello=False)
    name = first.TYPE.name
    with pytest.raises(LocalProtocolError, match=f"{name} is not allowed in state greeting"):
        agent.send(first)
    with pytest.raises(RemoteProtocolError, match=f"{name} is not allowed in state greeting"):
        edge.receive(encode(first))
    assert edge.state is agent.state is State.GREETING


# ------------------------------------------------------------------ the state-by-frame table

# PROTOCOL.md §4, written out: which frame types each state admits (either direction). ERROR on
# stream 0 is allowed in every state but CLOSED and is tested separately.
SESSION_TYPES = {
    FrameType.MODELS,
    FrameType.HEALTH,
    FrameType.NODES,
    FrameType.DELTA,
    FrameType.EMBEDDINGS,
    FrameType.END,
    FrameType.ERROR,
    FrameType.CANCEL,
    FrameType.WINDOW,
    FrameType.PING,
    FrameType.PONG,
    FrameType.GOAWAY,
}
ALLOWED: dict[str, set[FrameType]] = {
    "start": {FrameType.CHALLENGE},
    "challenged": {FrameType.AUTH},
    "authenticating": {FrameType.READY},
    "greeting": {FrameType.HELLO},  # HELLO exactly once, first after READY
    "open": SESSION_TYPES | {FrameType.OPEN},
    "draining_by_agent": SESSION_TYPES,
    "draining_by_edge": SESSION_TYPES,
    "closed": set(),
}
SENDERS: dict[FrameType, set[Role]] = {
    FrameType.CHALLENGE: {Role.EDGE},
    FrameType.AUTH: {Role.AGENT},
    FrameType.READY: {Role.EDGE},
    FrameType.HELLO: {Role.AGENT},
    FrameType.MODELS: {Role.AGENT},
    FrameType.HEALTH: {Role.AGENT},
    FrameType.NODES: {Role.EDGE},
    FrameType.OPEN: {Role.EDGE},
    FrameType.DELTA: {Role.AGENT},
    FrameType.EMBEDDINGS: {Role.AGENT},
    FrameType.END: {Role.AGENT},
    FrameType.ERROR: {Role.EDGE, Role.AGENT},
    FrameType.CANCEL: {Role.EDGE},
    FrameType.WINDOW: {Role.EDGE},
    FrameType.PING: {Role.EDGE, Role.AGENT},
    FrameType.PONG: {Role.EDGE, Role.AGENT},
    FrameType.GOAWAY: {Role.EDGE, Role.AGENT},
}
STATE_OF = {
    "start": State.START,
    "challenged": State.CHALLENGED,
    "authenticating": State.AUTHENTICATING,
    "greeting": State.GREETING,
    "open": State.OPEN,
    "draining_by_agent": State.DRAINING,
    "draining_by_edge": State.DRAINING,
    "closed": State.CLOSED,
}


def reach(situation: str) -> tuple[Connection, Connection]:
    """Both ends in ``situation``; from OPEN on, stream 1 is open (with full credit)."""
    edge, agent = Connection(Role.EDGE), Connection(Role.AGENT)
    script: list[tuple[str, Connection, Connection, Frame]] = [
        ("challenged", edge, agent, Challenge(b"n" * 32, "edge.test", [2])),
        ("authenticating", agent, edge, Auth("m", 1, b"s" * 64)),
        ("greeting", edge, agent, READY),
        ("open", agent, edge, Hello("1", 4, [])),
        ("open", edge, agent, Open(1, CHAT, 0)),
    ]
    if situation == "start":
        return edge, agent
    for name, sender, receiver, frame in script:
        sender.send(frame)
        pump(sender, receiver)
        if name == situation and not isinstance(frame, Hello):
            return edge, agent
    follow_up: dict[str, tuple[Connection, Connection, Frame]] = {
        "draining_by_agent": (agent, edge, GoAway("agent stops")),
        "draining_by_edge": (edge, agent, GoAway("edge stops")),
        "closed": (edge, agent, Error(NO_STREAM, "protocol_error", "bye", False)),
    }
    if situation in follow_up:
        sender, receiver, frame = follow_up[situation]
        sender.send(frame)
        pump(sender, receiver)
    assert edge.state is agent.state is STATE_OF[situation]
    return edge, agent


def sample(kind: FrameType, conn: Connection) -> Frame:
    """A frame of ``kind`` that is valid apart from the state (stream 1 is the open stream)."""
    samples: dict[FrameType, Frame] = {
        FrameType.CHALLENGE: Challenge(b"n" * 32, "edge.test", [2]),
        FrameType.AUTH: Auth("m", 1, b"s" * 64),
        FrameType.READY: READY,
        FrameType.HELLO: Hello("1", 1, []),
        FrameType.MODELS: Models([]),
        FrameType.HEALTH: Health(False, "down"),
        FrameType.NODES: Nodes("n1", [["n1", "https://n1.test"]]),
        FrameType.OPEN: Open(conn.next_stream_id(), CHAT, 0),
        FrameType.DELTA: delta(1, 1),
        FrameType.EMBEDDINGS: Embeddings(1, 0, [b"\0" * 4]),
        FrameType.END: End(1, "stop", 0, 0, {}),
        FrameType.ERROR: Error(1, "busy", "", True),
        FrameType.CANCEL: Cancel(1, "gone"),
        FrameType.WINDOW: Window(1, 1),
        FrameType.PING: Ping(1),
        FrameType.PONG: Pong(1),
        FrameType.GOAWAY: GoAway("bye"),
    }
    return samples[kind]


TABLE = [
    pytest.param(situation, role, kind, id=f"{situation}-{role.value}-{kind.name}")
    for situation in ALLOWED
    for role in Role
    for kind in FrameType
]


@pytest.mark.parametrize(("situation", "role", "kind"), TABLE)
def test_receive_follows_the_state_table(situation: str, role: Role, kind: FrameType) -> None:
    edge, agent = reach(situation)
    conn = edge if role is Role.EDGE else agent
    peer = Role.AGENT if role is Role.EDGE else Role.EDGE
    frame = sample(kind, edge)
    before = conn.state
    allowed = peer in SENDERS[kind] and kind in ALLOWED[situation]
    if (situation, role, kind) == ("draining_by_agent", Role.AGENT, FrameType.OPEN):
        allowed = True  # an OPEN that crossed the agent's own GOAWAY (§10)
    if allowed:
        result = conn.receive(encode(frame))
        assert result == frame
    else:
        with pytest.raises(RemoteProtocolError) as caught:
            conn.receive(encode(frame))
        assert not isinstance(caught.value, (FlowControlError, FrameTooLarge))
        assert caught.value.code is ErrorCode.PROTOCOL_ERROR
        assert conn.state is before


@pytest.mark.parametrize(("situation", "role", "kind"), TABLE)
def test_send_follows_the_state_table(situation: str, role: Role, kind: FrameType) -> None:
    edge, agent = reach(situation)
    conn = edge if role is Role.EDGE else agent
    frame = sample(kind, edge)
    before = conn.state
    allowed = role in SENDERS[kind] and kind in ALLOWED[situation]
    if allowed:
        conn.send(frame)
        assert queued(conn) == [frame]
    else:
        with pytest.raises(LocalProtocolError) as caught:
            conn.send(frame)
        assert caught.value.code is ErrorCode.PROTOCOL_ERROR
        assert conn.state is before
        assert conn.data_to_send() == []


@pytest.mark.parametrize("situation", list(ALLOWED))
@pytest.mark.parametrize("role", list(Role))
def test_error_on_stream_zero_is_allowed_in_every_state_but_closed(
    situation: str, role: Role
) -> None:
    edge, agent = reach(situation)
    conn, other = (edge, agent) if role is Role.EDGE else (agent, edge)
    frame = Error(NO_STREAM, "auth_failed", "no", False)
    if situation == "closed":
        with pytest.raises(LocalProtocolError, match="after the connection closed"):
            conn.send(frame)
        with pytest.raises(RemoteProtocolError, match="after the connection closed"):
            conn.receive(encode(frame))
        return
    conn.send(frame)
    assert conn.state is State.CLOSED
    assert pump(conn, other) == [frame]
    assert other.state is State.CLOSED


# ------------------------------------------------------------------ named out-of-state cases


def test_open_before_ready_is_refused_both_ways() -> None:
    for situation in ("start", "challenged", "authenticating"):
        edge, agent = reach(situation)
        with pytest.raises(RemoteProtocolError, match="OPEN is not allowed"):
            agent.receive(encode(Open(1, CHAT, 0)))
        with pytest.raises(LocalProtocolError, match="OPEN is not allowed"):
            edge.send(Open(1, CHAT, 0))
        assert not agent.is_active(1) and not edge.is_active(1)


def test_auth_twice_is_refused() -> None:
    edge, agent = reach("authenticating")
    with pytest.raises(RemoteProtocolError, match="AUTH is not allowed in state authenticating"):
        edge.receive(encode(Auth("m", 1, b"s" * 64)))
    with pytest.raises(LocalProtocolError, match="AUTH is not allowed"):
        agent.send(Auth("m", 1, b"s" * 64))


def test_challenge_twice_is_refused() -> None:
    _, agent = reach("challenged")
    with pytest.raises(RemoteProtocolError, match="CHALLENGE is not allowed"):
        agent.receive(encode(Challenge(b"n" * 32, "edge.test", [2])))


def test_frames_from_the_wrong_side_are_refused() -> None:
    edge, agent = reach("authenticating")
    with pytest.raises(RemoteProtocolError, match="agent never sends READY"):
        edge.receive(encode(READY))
    with pytest.raises(LocalProtocolError, match="agent never sends READY"):
        agent.send(READY)
    edge, agent = reach("open")
    with pytest.raises(RemoteProtocolError, match="edge never sends DELTA"):
        agent.receive(encode(delta(1, 1)))
    with pytest.raises(RemoteProtocolError, match="agent never sends OPEN"):
        edge.receive(encode(Open(2, CHAT, 0)))
    with pytest.raises(RemoteProtocolError, match="agent never sends WINDOW"):
        edge.receive(encode(Window(0, 10)))
    with pytest.raises(LocalProtocolError, match="edge never sends AUTH"):
        edge.send(Auth("m", 1, b"s" * 64))
    with pytest.raises(LocalProtocolError, match="agent never sends CANCEL"):
        agent.send(Cancel(1, "x"))


def test_a_frame_for_a_stream_never_opened_is_a_protocol_error() -> None:
    edge, agent = reach("open")  # stream 1 is open; 2 and up were never opened
    from_agent: list[Frame] = [delta(2, 1), End(7, "stop", 0, 0, {}), Error(3, "busy", "", True)]
    for frame in from_agent:
        with pytest.raises(RemoteProtocolError, match="never opened"):
            edge.receive(encode(frame))
    from_edge: list[Frame] = [Cancel(2, "x"), Window(5, 1), Error(9, "x", "", False)]
    for frame in from_edge:
        with pytest.raises(RemoteProtocolError, match="never opened"):
            agent.receive(encode(frame))
    with pytest.raises(StreamClosed):
        agent.send(delta(2, 1))


def test_stream_ids_go_up_by_exactly_one() -> None:
    edge, agent = reach("open")  # stream 1 is open
    edge.send(Open(2, CHAT, 0))
    pump(edge, agent)
    for wrong in (1, 2, 4, 2**31 - 1):  # reused while open, reused (latest), skipping ahead
        with pytest.raises(LocalProtocolError, match=r"stream id \d+ is not 3"):
            edge.send(Open(wrong, CHAT, 0))
        with pytest.raises(RemoteProtocolError, match=r"stream id \d+ is not 3"):
            agent.receive(encode(Open(wrong, CHAT, 0)))
    assert edge.next_stream_id() == agent.next_stream_id() == 3


def test_with_no_id_skipped_every_id_up_to_the_last_has_ended_or_is_active() -> None:
    # A skipped id would have been dropped as "late" forever; now it cannot exist, so a frame
    # for an id at most the last one and not active really belongs to a stream that ended.
    edge, agent = reach("open")
    open_stream(edge, agent)
    agent.send(End(1, "stop", 0, 0, {}))
    pump(agent, edge)
    assert [edge.is_active(sid) for sid in (1, 2, 3)] == [False, True, False]
    assert edge.receive(encode(delta(1, 1))) is None  # ended: dropped as late
    with pytest.raises(RemoteProtocolError, match="never opened"):
        edge.receive(encode(delta(3, 1)))


def test_a_stream_id_is_not_reused_after_the_stream_ended() -> None:
    edge, agent = reach("open")
    agent.send(End(1, "stop", 0, 0, {}))
    pump(agent, edge)
    with pytest.raises(LocalProtocolError):
        edge.send(Open(1, CHAT, 0))
    with pytest.raises(RemoteProtocolError):
        agent.receive(encode(Open(1, CHAT, 0)))


def test_stream_ids_start_at_one_and_count_up() -> None:
    edge, agent = handshake()
    assert [open_stream(edge, agent) for _ in range(3)] == [1, 2, 3]
    assert edge.active_streams == agent.active_streams == 3


# ------------------------------------------------------------------ liveness


def test_ping_is_answered_with_the_same_payload() -> None:
    edge, agent = handshake()
    for payload in (0, 1234, -(2**63), 2**64 - 1):
        edge.send(Ping(payload))
        assert pump(edge, agent) == [Ping(payload)]
        assert pump(agent, edge) == [Pong(payload)]
        assert edge.data_to_send() == []  # a PONG is not answered


def test_the_agent_may_ping_too_and_draining_still_answers() -> None:
    edge, agent = reach("draining_by_agent")
    agent.send(Ping(42))
    assert pump(agent, edge) == [Ping(42)]
    assert queued(edge) == [Pong(42)]


def test_pings_faster_than_pongs_are_collected_are_refused() -> None:
    # §9: a peer that keeps pinging while its side of the link does not read would grow the
    # outbox without end. Up to 16 unsent PONGs are fine; the 17th PING is a protocol error.
    edge, _ = handshake()
    for payload in range(MAX_UNSENT_PONGS):
        assert edge.receive(encode(Ping(payload))) == Ping(payload)
    with pytest.raises(RemoteProtocolError, match="PINGs faster than it reads: 16 PONGs"):
        edge.receive(encode(Ping(99)))
    assert edge.state is State.OPEN  # refused before anything changed …
    assert queued(edge) == [Pong(n) for n in range(MAX_UNSENT_PONGS)]  # … and nothing queued
    # Once the outbox is collected the count starts again.
    for payload in range(MAX_UNSENT_PONGS):
        edge.receive(encode(Ping(payload)))
    assert len(queued(edge)) == MAX_UNSENT_PONGS


def test_a_ping_answered_each_time_is_never_refused() -> None:
    edge, agent = handshake()
    for payload in range(10 * MAX_UNSENT_PONGS):
        agent.send(Ping(payload))
        pump(agent, edge)
        assert pump(edge, agent) == [Pong(payload)]


def test_only_pongs_count_against_the_pong_bound() -> None:
    edge, agent = handshake()
    sid, late = open_stream(edge, agent), open_stream(edge, agent)
    edge.send(Cancel(late, "gone"))
    for _ in range(3 * MAX_UNSENT_PONGS):
        agent.send(delta(sid, 1))
        agent.send(Pong(1))
    agent.send(delta(late, STREAM_WINDOW))  # dropped on arrival, its credit counted as read
    pump(agent, edge)
    edge.consumed(sid, 3 * MAX_UNSENT_PONGS)  # 100 + 48 read: a WINDOW joins the outbox
    for payload in range(MAX_UNSENT_PONGS):
        edge.receive(encode(Ping(payload)))
    replies = queued(edge)
    assert replies[0] == Cancel(late, "gone") and Window(NO_STREAM, 148) in replies
    assert replies.count(Pong(0)) == 1 and len(replies) == 2 + MAX_UNSENT_PONGS


def test_an_unsolicited_pong_is_accepted_and_not_answered() -> None:
    _, agent = handshake()
    assert agent.receive(encode(Pong(9))) == Pong(9)
    assert agent.data_to_send() == []


# ------------------------------------------------------------------ flow control (§8)


def test_the_agent_cannot_send_beyond_its_credit() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    agent.send(delta(sid, 60))
    with pytest.raises(LocalProtocolError, match="credit") as caught:
        agent.send(delta(sid, 41))
    assert not isinstance(caught.value, StreamClosed)
    assert agent.credit(sid) == 40
    assert len(agent.data_to_send()) == 1  # only the first DELTA was queued
    agent.send(delta(sid, 40))  # exactly the credit is fine
    assert agent.credit(sid) == 0
    with pytest.raises(LocalProtocolError):
        agent.send(Delta(sid, "", "x", []))  # thinking text is charged as well


def test_tool_calls_are_charged_like_text() -> None:
    # §8: a tool call costs the UTF-8 bytes of its id, name and arguments. They used to be free,
    # and an agent could send tool-call-only DELTAs forever to a client that never read.
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    call = {"id": "call_1", "name": "f", "arguments": '{"x":"' + "y" * 40 + '"}'}  # 6+1+48
    agent.send(Delta(sid, "ab", "", [call]))
    assert agent.credit(sid) == STREAM_WINDOW - 57
    assert pump(agent, edge) == [Delta(sid, "ab", "", [call])]
    with pytest.raises(LocalProtocolError, match="credit"):
        agent.send(Delta(sid, "", "", [call]))  # 55 bytes, 43 left
    assert agent.data_to_send() == []


@pytest.mark.parametrize("window", [1, 2, 3, 100, 101, 256 * 1024])
@pytest.mark.parametrize("sent", [1, 2, 49, 50, 51, 99, 100])
def test_once_everything_is_read_the_agent_holds_at_least_half_a_window(
    window: int, sent: int
) -> None:
    # §8: credit comes back in half windows, so what a whole tool call or vector may cost and
    # still be sure to go out is half the window (the agent refuses anything bigger).
    edge, agent = Connection(Role.EDGE), Connection(Role.AGENT)
    for sender, receiver, frame in [
        (edge, agent, Challenge(b"n" * 32, "edge.test", [2])),
        (agent, edge, Auth("m", 1, b"s" * 64)),
        (edge, agent, Ready("s", 1 << 20, window, 2 * window, 5.0)),
        (agent, edge, Hello("1", 4, [])),
    ]:
        sender.send(frame)
        pump(sender, receiver)
    sid = open_stream(edge, agent)
    for _ in range(3):  # round after round: every byte sent is read at once
        size = min(sent, agent.credit(sid))
        agent.send(delta(sid, size))
        pump(agent, edge)
        edge.consumed(sid, size)
        pump(edge, agent)
        assert agent.credit(sid) >= window // 2
        assert agent.credit(sid) > (window - 1) // 2


def test_a_tool_call_beyond_the_credit_is_a_flow_control_error() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    edge.receive(encode(delta(sid, STREAM_WINDOW - 10)))
    call = {"id": "c", "name": "f", "arguments": '{"x":1}'}  # 9 bytes: fits
    assert edge.receive(encode(Delta(sid, "", "", [call]))) == Delta(sid, "", "", [call])
    with pytest.raises(FlowControlError, match="peer sent 9 bytes with only 1 of credit"):
        edge.receive(encode(Delta(sid, "", "", [call])))


def test_an_empty_delta_is_refused_both_ways() -> None:
    # Every DELTA costs credit, so an edge never buffers frames that cost nothing (§8).
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    with pytest.raises(LocalProtocolError, match="empty DELTA"):
        agent.send(Delta(sid, "", "", []))
    with pytest.raises(RemoteProtocolError, match="empty DELTA"):
        edge.receive(bytes.fromhex("95 07 01 a0 a0 90"))


def test_delta_size_is_counted_in_utf8_bytes() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    agent.send(Delta(sid, "é" * 30, "€" * 10, []))  # 60 + 30 bytes, 40 characters
    assert agent.credit(sid) == STREAM_WINDOW - 90
    with pytest.raises(LocalProtocolError):
        agent.send(Delta(sid, "é" * 6, "", []))  # 12 bytes, 6 characters


@pytest.mark.parametrize("thinking", [False, True])
def test_a_delta_beyond_stream_credit_is_a_flow_control_error(thinking: bool) -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    text = "x" * (STREAM_WINDOW + 1)
    frame = Delta(sid, "", text, []) if thinking else Delta(sid, text, "", [])
    with pytest.raises(FlowControlError) as caught:
        edge.receive(encode(frame))
    assert caught.value.code is ErrorCode.FLOW_CONTROL
    assert isinstance(caught.value, RemoteProtocolError)
    assert "101" in str(caught.value)


def test_a_delta_exactly_at_the_credit_is_accepted_and_the_next_byte_is_not() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    assert edge.receive(encode(delta(sid, STREAM_WINDOW))) == delta(sid, STREAM_WINDOW)
    with pytest.raises(FlowControlError):
        edge.receive(encode(delta(sid, 1)))


def test_a_delta_beyond_connection_credit_is_a_flow_control_error() -> None:
    edge, agent = handshake()
    streams = [open_stream(edge, agent) for _ in range(3)]
    edge.receive(encode(delta(streams[0], 100)))
    edge.receive(encode(delta(streams[1], 100)))
    edge.receive(encode(delta(streams[2], 50)))  # 250: the connection window is spent
    with pytest.raises(FlowControlError):
        edge.receive(encode(Delta(streams[2], "", "x", [])))


def test_credit_comes_back_once_half_a_window_is_consumed() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    agent.send(delta(sid, 60))
    agent.send(delta(sid, 40))
    pump(agent, edge)
    assert agent.credit(sid) == 0
    edge.consumed(sid, 30)
    edge.consumed(sid, 19)
    assert edge.data_to_send() == []  # 49 < half of 100: no WINDOW yet
    edge.consumed(sid, 1)  # 50: exactly half
    assert pump(edge, agent) == [Window(sid, 50)]
    assert agent.credit(sid) == 50
    edge.consumed(sid, 50)
    assert pump(edge, agent) == [Window(sid, 50)]
    assert agent.credit(sid) == STREAM_WINDOW


def test_connection_credit_comes_back_across_streams() -> None:
    edge, agent = handshake()
    streams = [open_stream(edge, agent) for _ in range(3)]
    for sid in streams:
        agent.send(delta(sid, 45))
    pump(agent, edge)  # 135 of 250 spent
    edge.consumed(streams[0], 45)
    edge.consumed(streams[1], 45)
    assert queued(edge) == []  # 90 < 125, and 45 < 50 per stream
    edge.consumed(streams[2], 45)  # 135 ≥ 125
    assert queued(edge) == [Window(NO_STREAM, 135)]


def test_the_connection_window_caps_all_streams_together() -> None:
    edge, agent = handshake()
    streams = [open_stream(edge, agent) for _ in range(3)]
    agent.send(delta(streams[0], 100))
    agent.send(delta(streams[1], 100))
    assert agent.credit(streams[2]) == CONNECTION_WINDOW - 200
    with pytest.raises(LocalProtocolError):
        agent.send(delta(streams[2], 51))
    agent.send(delta(streams[2], 50))
    assert [agent.credit(s) for s in streams] == [0, 0, 0]
    assert all(isinstance(f, Delta) for f in pump(agent, edge))
    # Stream credit alone is not enough: the connection window has to come back too.
    edge.consumed(streams[2], 50)
    assert pump(edge, agent) == [Window(streams[2], 50)]
    assert agent.credit(streams[2]) == 0
    edge.consumed(streams[0], 100)
    assert pump(edge, agent) == [Window(NO_STREAM, 150), Window(streams[0], 100)]
    assert [agent.credit(s) for s in streams] == [100, 0, 100]


def test_a_window_beyond_the_maximum_is_a_flow_control_error() -> None:
    for sid in (1, NO_STREAM):
        _, agent = reach("open")
        with pytest.raises(FlowControlError, match="maximum window"):
            agent.receive(encode(Window(sid, MAX_WINDOW)))
    _, agent = reach("open")
    agent.receive(encode(Window(1, MAX_WINDOW - STREAM_WINDOW)))  # exactly the maximum
    assert agent.credit(1) == CONNECTION_WINDOW  # now the connection window is the limit
    with pytest.raises(FlowControlError):
        agent.receive(encode(Window(1, 1)))


def test_late_deltas_after_cancel_are_dropped_and_their_credit_returned() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    edge.send(Cancel(sid, "client went away"))
    cancel = edge.data_to_send()  # still on the wire
    assert not edge.is_active(sid)
    agent.send(delta(sid, 100))  # crossed the CANCEL on the wire
    agent.send(End(sid, "stop", 1, 1, {}))
    assert pump(agent, edge) == []  # dropped, not delivered
    assert queued(edge) == []  # 100 < half of 250: not yet
    assert [agent.receive(data) for data in cancel] == [None]  # the agent had already ended
    other = open_stream(edge, agent)
    assert agent.credit(other) == STREAM_WINDOW  # min(100, 250 - 100) = 100 still
    agent.send(delta(other, 40))
    pump(agent, edge)
    edge.consumed(other, 40)
    assert queued(edge) == [Window(NO_STREAM, 140)]  # 100 dropped + 40 read ≥ 125


def test_late_deltas_alone_return_connection_credit() -> None:
    edge, agent = handshake()
    streams = [open_stream(edge, agent) for _ in range(2)]
    for sid in streams:
        agent.send(delta(sid, 70))
        edge.send(Cancel(sid, "gone"))
    assert len(queued(edge)) == 2  # the two CANCELs, still on the wire
    assert pump(agent, edge) == []
    assert queued(edge) == [Window(NO_STREAM, 140)]


def test_late_deltas_still_count_against_the_connection_window() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    for other in [open_stream(edge, agent) for _ in range(2)]:
        edge.receive(encode(delta(other, 100)))  # 200 of 250 spent, not consumed
    edge.send(Cancel(sid, "gone"))
    with pytest.raises(FlowControlError):
        edge.receive(encode(delta(sid, 51)))


def test_consumed_on_a_closed_stream_still_returns_connection_credit() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    other = open_stream(edge, agent)
    agent.send(delta(sid, 100))
    agent.send(End(sid, "stop", 1, 1, {}))
    agent.send(delta(other, 30))
    pump(agent, edge)
    assert not edge.is_active(sid)
    edge.consumed(sid, 100)  # read after the stream ended: still counted for the connection
    edge.consumed(other, 30)
    assert queued(edge) == [Window(NO_STREAM, 130)]  # no stream WINDOW for an ended stream


@pytest.mark.parametrize(
    ("received", "consumed", "left"),
    [
        (0, 1, 0),  # nothing was received
        (40, 41, 40),  # more than was received
        (40, -1, 40),  # negative
    ],
)
def test_consumed_refuses_bytes_that_were_never_received(
    received: int, consumed: int, left: int
) -> None:
    # §8: handing back credit for bytes the agent never sent would let it exceed the windows.
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    if received:
        agent.send(delta(sid, received))
        pump(agent, edge)
    with pytest.raises(LocalProtocolError, match=f"consumed {consumed} bytes of stream {sid}"):
        edge.consumed(sid, consumed)
    assert edge.data_to_send() == []
    edge.consumed(sid, left)  # what was received can still be consumed, once
    with pytest.raises(LocalProtocolError):
        edge.consumed(sid, 1)


def test_consumed_counts_per_stream_and_across_reads() -> None:
    edge, agent = handshake()
    first, second = open_stream(edge, agent), open_stream(edge, agent)
    agent.send(delta(first, 30))
    agent.send(delta(second, 20))
    agent.send(delta(first, 10))
    pump(agent, edge)
    with pytest.raises(LocalProtocolError, match="has 20 unread"):
        edge.consumed(second, 40)  # the first stream's bytes are not the second's
    edge.consumed(first, 25)
    edge.consumed(first, 15)
    edge.consumed(second, 20)
    edge.consumed(second, 0)  # nothing is fine
    with pytest.raises(LocalProtocolError, match="has 0 unread"):
        edge.consumed(first, 1)
    assert queued(edge) == []  # 60 < 125, and less than half a window per stream


# ------------------------------------------------------------------ ending streams (§7)


@pytest.mark.parametrize("how", ["end", "error", "cancel", "edge_error"])
def test_end_error_and_cancel_close_the_stream(how: str) -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    keep = open_stream(edge, agent)
    closing: dict[str, tuple[Connection, Connection, Frame]] = {
        "end": (agent, edge, End(sid, "stop", 1, 2, {})),
        "error": (agent, edge, Error(sid, "backend_error", "boom", False)),
        "cancel": (edge, agent, Cancel(sid, "deadline")),
        "edge_error": (edge, agent, Error(sid, "internal_error", "x", False)),
    }
    sender, receiver, frame = closing[how]
    sender.send(frame)
    assert not sender.is_active(sid)
    assert receiver.is_active(sid)  # not yet delivered
    assert pump(sender, receiver) == [frame]
    for conn in (edge, agent):
        assert not conn.is_active(sid)
        assert conn.is_active(keep)
        assert conn.active_streams == 1
        assert conn.state is State.OPEN  # a stream ERROR does not close the connection
    assert agent.credit(sid) == 0
    for later in (delta(sid, 1), End(sid, "stop", 0, 0, {}), Error(sid, "x", "", False)):
        with pytest.raises(StreamClosed):
            agent.send(later)
    for later_edge in (Cancel(sid, "again"), Error(sid, "x", "", False)):
        with pytest.raises(StreamClosed):
            edge.send(later_edge)
    agent.send(delta(keep, 1))  # the other stream is untouched
    assert pump(agent, edge) == [delta(keep, 1)]


def test_frames_for_an_ended_stream_are_dropped_on_both_ends() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    agent.send(End(sid, "stop", 0, 0, {}))
    pump(agent, edge)
    assert agent.receive(encode(Window(sid, 10))) is None
    assert agent.receive(encode(Cancel(sid, "late"))) is None
    assert edge.receive(encode(End(sid, "stop", 0, 0, {}))) is None
    assert edge.receive(encode(Error(sid, "x", "", False))) is None
    assert agent.data_to_send() == edge.data_to_send() == []


# ------------------------------------------------------------------ draining (§10)


def test_goaway_drains_no_new_streams_but_a_crossed_open_is_accepted() -> None:
    edge, agent = handshake()
    running = open_stream(edge, agent)
    agent.send(GoAway("shutting down"))
    assert agent.state is State.DRAINING
    assert agent.draining_sent and not edge.draining_sent
    crossed = edge.next_stream_id()
    edge.send(Open(crossed, CHAT, 0))  # the edge has not seen the GOAWAY yet
    assert pump(edge, agent) == [Open(crossed, CHAT, 0)]
    assert agent.is_active(crossed) and agent.state is State.DRAINING
    assert pump(agent, edge) == [GoAway("shutting down")]
    assert (edge.state, agent.state) == (State.DRAINING, State.DRAINING)
    with pytest.raises(LocalProtocolError, match="OPEN is not allowed in state draining"):
        edge.send(Open(edge.next_stream_id(), CHAT, 0))
    # Running streams finish; the crossed one is refused by the application, retryably.
    agent.send(delta(running, 5))
    agent.send(End(running, "stop", 1, 1, {}))
    agent.send(Error(crossed, "draining", "no new streams", True))
    assert [type(f) for f in pump(agent, edge)] == [Delta, End, Error]
    assert edge.active_streams == agent.active_streams == 0
    agent.send(GoAway("again"))  # a second GOAWAY is harmless
    assert pump(agent, edge) == [GoAway("again")]
    assert edge.state is State.DRAINING


def test_the_edge_may_drain_too() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    edge.send(GoAway("edge restarting"))
    assert edge.draining_sent
    assert pump(edge, agent) == [GoAway("edge restarting")]
    assert (edge.state, agent.state) == (State.DRAINING, State.DRAINING)
    with pytest.raises(LocalProtocolError):
        edge.send(Open(edge.next_stream_id(), CHAT, 0))
    agent.send(delta(sid, 10))
    assert pump(agent, edge) == [delta(sid, 10)]


def test_an_open_after_the_edges_own_goaway_is_refused_by_the_agent() -> None:
    # Only an OPEN that crossed *the agent's* GOAWAY is excused (PROTOCOL.md §10, mux.py's
    # _CROSSED_GOAWAY comment). Here the agent never sent GOAWAY: the edge sent GOAWAY and then,
    # in order on the same WebSocket, an OPEN its own send() would have refused.
    _, agent = reach("draining_by_edge")
    assert not agent.draining_sent
    with pytest.raises(RemoteProtocolError):
        agent.receive(encode(Open(2, CHAT, 0)))


# ------------------------------------------------------------------ closing (§6)


def test_error_on_stream_zero_closes_the_connection_and_anything_after_raises() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    edge.send(connection_error(RemoteProtocolError("bad")))
    assert edge.state is State.CLOSED
    (frame,) = pump(edge, agent)
    assert isinstance(frame, Error)
    assert (frame.stream_id, frame.code, frame.message, frame.retryable) == (
        0,
        "protocol_error",
        "bad",
        False,
    )
    assert agent.state is State.CLOSED
    for data in (encode(Ping(1)), encode(Cancel(sid, "x")), encode(Error(0, "x", "", False))):
        with pytest.raises(RemoteProtocolError, match="after the connection closed"):
            agent.receive(data)
    for later in (Pong(1), delta(sid, 1), GoAway("x"), Error(0, "x", "", False)):
        with pytest.raises(LocalProtocolError, match="after the connection closed"):
            agent.send(later)
    with pytest.raises(LocalProtocolError):
        edge.send(Open(edge.next_stream_id(), CHAT, 0))
    assert agent.data_to_send() == edge.data_to_send() == []


def test_a_failed_login_closes_from_authenticating() -> None:
    edge, agent = reach("authenticating")
    message = "unknown machine, revoked machine or bad signature"
    edge.send(Error(NO_STREAM, ErrorCode.AUTH_FAILED.value, message, False))
    (frame,) = pump(edge, agent)
    assert isinstance(frame, Error) and frame.code == "auth_failed"
    assert edge.state is agent.state is State.CLOSED


ERRORS: list[tuple[ProtocolError, str]] = [
    (RemoteProtocolError("garbled"), "protocol_error"),
    (LocalProtocolError("oops"), "protocol_error"),
    (StreamClosed("stream 3 is not open"), "protocol_error"),
    (FrameTooLarge("frame of 9 bytes exceeds limit 8"), "frame_too_large"),
    (FlowControlError("peer sent 9 bytes with only 8 of credit left"), "flow_control_error"),
]


@pytest.mark.parametrize(("error", "code"), ERRORS, ids=lambda e: type(e).__name__)
def test_connection_error_carries_the_exceptions_code(error: ProtocolError, code: str) -> None:
    assert isinstance(error, (LocalProtocolError, RemoteProtocolError))
    frame = connection_error(error)
    assert frame == Error(NO_STREAM, code, str(error), False)
    assert type(frame.code) is str  # a plain string on the wire, not the enum
    frame.check()
    assert decode(encode(frame)) == frame


def test_connection_error_for_a_version_mismatch_and_a_long_message() -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        choose_version([7, 8])
    frame = connection_error(caught.value)
    assert frame.code == "unsupported_version"
    assert "7" in frame.message
    long = connection_error(RemoteProtocolError("x" * 5000))
    assert long.message == "x" * 1000


def test_connection_error_from_a_real_failure_can_be_sent_in_any_open_state() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    try:
        edge.receive(encode(delta(sid, STREAM_WINDOW + 1)))
    except FlowControlError as error:
        edge.send(connection_error(error))
    assert edge.state is State.CLOSED
    (frame,) = pump(edge, agent)
    assert isinstance(frame, Error) and frame.code == "flow_control_error"


# ------------------------------------------------------------------ frame size limits


def test_receive_enforces_the_receive_limit() -> None:
    agent = Connection(Role.AGENT, max_receive_frame=1024)
    with pytest.raises(FrameTooLarge, match="exceeds limit 1024"):
        agent.receive(encode(Challenge(b"n" * 32, "h" * 255, [1] * 16)) + b"\x00" * 800)


def test_the_agent_may_not_send_frames_over_readys_max_frame() -> None:
    edge, agent = handshake()
    sid = open_stream(edge, agent)
    big = Delta(sid, "", "", [{"id": "c", "name": "f", "arguments": '{"x":"' + "y" * 2000 + '"}'}])
    with pytest.raises(LocalProtocolError, match="exceeds limit 1024"):
        agent.send(big)
    assert agent.data_to_send() == []


def test_a_refused_send_leaves_no_trace_agent_side() -> None:
    # A DELTA within credit but over the frame limit is refused; the refusal must not spend
    # credit the peer never learns about.
    edge, agent = Connection(Role.EDGE), Connection(Role.AGENT)
    for sender, receiver, frame in [
        (edge, agent, Challenge(b"n" * 32, "edge.test", [2])),
        (agent, edge, Auth("m", 1, b"s" * 64)),
        (edge, agent, Ready("s", 1024, 4096, 8192, 5.0)),
        (agent, edge, Hello("1", 4, [])),
        (edge, agent, Open(1, CHAT, 0)),
    ]:
        sender.send(frame)
        pump(sender, receiver)
    big = Delta(1, "x" * 10, "", [{"id": "c", "name": "f", "arguments": '"' + "y" * 2000 + '"'}])
    assert big.flow_size < agent.credit(1)
    with pytest.raises(LocalProtocolError, match="exceeds limit 1024"):
        agent.send(big)
    assert agent.credit(1) == 4096
    assert agent.data_to_send() == []


def test_a_refused_send_leaves_no_trace_edge_side() -> None:
    # An OPEN over the edge's send limit is refused; the stream must not stay half-open locally.
    edge = Connection(Role.EDGE, max_send_frame=2048)
    agent = Connection(Role.AGENT)
    edge.send(Challenge(b"n" * 32, "edge.test", [2]))
    pump(edge, agent)
    agent.send(Auth("m", 1, b"s" * 64))
    pump(agent, edge)
    edge.send(READY)
    pump(edge, agent)
    agent.send(Hello("1", 4, []))
    pump(agent, edge)
    with pytest.raises(LocalProtocolError, match="exceeds limit 2048"):
        edge.send(Open(1, ChatRequest("m", (Message("user", images=("i" * 4000,)),)), 0))
    assert edge.data_to_send() == []
    assert not edge.is_active(1)
    assert edge.active_streams == 0
    assert edge.next_stream_id() == 1


# ------------------------------------------------------------------ send() checks what it queues


def _edge_with_stream() -> tuple[Connection, Connection]:
    return reach("open")


SEND_INVALID: list[tuple[str, Role, Frame]] = [
    ("zero window increment", Role.EDGE, Window(1, 0)),
    ("window for a stream never opened", Role.EDGE, Window(99, 5)),
    ("malformed tool call", Role.AGENT, Delta(1, "", "", [{"id": 1}])),  # type: ignore[dict-item]
    (
        "tool call with map arguments",
        Role.AGENT,
        Delta(1, "", "", [{"id": "c", "name": "f", "arguments": {}}]),  # type: ignore[dict-item]
    ),
    ("empty delta", Role.AGENT, Delta(1, "", "", [])),
    ("skipped stream id", Role.EDGE, Open(3, CHAT, 0)),
    (
        "bin in a request",
        Role.EDGE,
        Open(2, ChatRequest("m", (Message("user", images=(b"\x89PNG",)),)), 0),  # type: ignore[arg-type]
    ),
    (
        "nan in a request",
        Role.EDGE,
        Open(2, ChatRequest("m", (), options=Options(top_p=math.nan)), 0),
    ),
    ("infinite timeout", Role.EDGE, Open(2, CHAT, math.inf)),
    ("usage beyond 2**32", Role.AGENT, End(1, "stop", 2**64 - 1, 0, {})),
    ("ping payload beyond msgpack", Role.EDGE, Ping(2**64)),
    ("lone surrogate in text", Role.AGENT, Delta(1, "\ud800", "", [])),
    ("lone surrogate in a reason", Role.EDGE, Cancel(1, "\udcff")),
    (
        "unencodable request value",
        Role.EDGE,
        Open(2, ChatRequest("m", (), format={"k": {1, 2}}), 0),
    ),
    # Requests whose wire map is JSON but whose fields the agent's decoder refuses (§7).
    ("request with an empty model", Role.EDGE, Open(2, ChatRequest("", (Message("user"),)), 0)),
    ("embed with zero dimensions", Role.EDGE, Open(2, EmbedRequest("m", ("a",), dimensions=0), 0)),
]


@pytest.mark.parametrize(
    ("role", "frame"),
    [pytest.param(r, f, id=n) for n, r, f in SEND_INVALID],
)
def test_send_refuses_what_the_peer_would_refuse(role: Role, frame: Frame) -> None:
    # send() promises LocalProtocolError for a frame the protocol does not allow, and nothing
    # but ProtocolError leaves protocol/ (errors.py). A frame the peer's decoder or stream table
    # is bound to reject must be refused here, without changing any state.
    edge, agent = _edge_with_stream()
    conn = edge if role is Role.EDGE else agent
    credit, streams, next_id = agent.credit(1), conn.active_streams, conn.next_stream_id()
    with pytest.raises(LocalProtocolError):
        conn.send(frame)
    assert conn.data_to_send() == []
    assert (agent.credit(1), conn.active_streams, conn.next_stream_id()) == (
        credit,
        streams,
        next_id,
    )


def test_a_hand_made_window_keeps_both_ends_in_step() -> None:
    # mux.py lets the edge send WINDOW by hand ("goes out as is"). Either send() refuses it, or
    # the edge must expect the extra credit it granted: a DELTA the agent's send() accepted must
    # never make the edge raise FlowControlError.
    edge, agent = reach("open")
    with contextlib.suppress(LocalProtocolError):
        edge.send(Window(1, 50))
    pump(edge, agent)
    size = agent.credit(1)
    agent.send(delta(1, size))
    assert pump(agent, edge) == [delta(1, size)]


def test_a_hand_made_window_for_an_ended_stream_goes_out_and_is_dropped() -> None:
    edge, agent = reach("open")
    agent.send(End(1, "stop", 0, 0, {}))
    pump(agent, edge)
    edge.send(Window(1, 10))
    assert pump(edge, agent) == []
    edge.send(Window(NO_STREAM, 10))  # connection credit is still counted on both ends
    assert pump(edge, agent) == [Window(NO_STREAM, 10)]
    sid = open_stream(edge, agent)
    assert agent.credit(sid) == STREAM_WINDOW
    agent.send(delta(sid, STREAM_WINDOW))
    agent.send(End(sid, "stop", 0, 0, {}))
    open_stream(edge, agent)
    assert pump(agent, edge) == [delta(sid, STREAM_WINDOW), End(sid, "stop", 0, 0, {})]


@pytest.mark.parametrize("sid", [1, NO_STREAM])
def test_send_refuses_a_window_the_agent_would_overflow_on(sid: int) -> None:
    # Window(…, MAX_WINDOW) passes check(), but on top of the credit already granted it takes
    # the agent's window past 2³¹-1, which the agent answers with FlowControlError. send()
    # promises to refuse first what the peer would refuse (mux.py, Connection.send docstring).
    edge, agent = reach("open")
    with contextlib.suppress(LocalProtocolError):
        edge.send(Window(sid, MAX_WINDOW))
    for data in edge.data_to_send():
        agent.receive(data)  # must not raise FlowControlError
    assert agent.credit(1) <= MAX_WINDOW


def test_is_active_and_credit_for_unknown_streams() -> None:
    edge, agent = handshake()
    checks: list[Callable[[], object]] = [
        lambda: agent.credit(0),
        lambda: agent.credit(1),
        lambda: agent.credit(-1),
    ]
    assert [check() for check in checks] == [0, 0, 0]
    assert not edge.is_active(0) and not edge.is_active(1)


# ------------------------------------------------------------------ several frames per message (§2)


def test_login_frames_go_one_per_message_and_session_frames_share_them() -> None:
    edge, agent = handshake(hello=False)
    agent.send(Hello("1.0", 4, []))
    agent.send(Models([]))  # queued together with the HELLO, but the HELLO goes alone
    agent.send(Ping(1))
    messages = agent.data_to_send()
    assert [decode_many(m, 1 << 20) for m in messages] == [
        [Hello("1.0", 4, [])],
        [Models([]), Ping(1)],
    ]
    assert edge.receive(messages[0]) == Hello("1.0", 4, [])  # the edge's login reads one frame
    assert edge.receive_message(messages[1]) == [Models([]), Ping(1)]
    assert queued(edge) == [Pong(1)]


def test_a_message_holds_frames_up_to_the_peers_limit_and_no_more() -> None:
    edge, agent = handshake()
    edge.send(Open(1, CHAT, 0))
    pump(edge, agent)
    agent.max_send_frame = 64  # READY's max_frame, as small as a test can make it
    for _ in range(5):
        agent.send(delta(1, 15))  # 21 bytes each: three fit in 64
    messages = agent.data_to_send()
    assert [len(decode_many(m, 64)) for m in messages] == [3, 2]
    assert all(len(m) <= 64 for m in messages)
    frames = [f for m in messages for f in edge.receive_message(m)]
    assert frames == [delta(1, 15)] * 5


def test_a_message_that_closes_the_connection_ends_there() -> None:
    edge, _ = handshake()
    message = encode(Ping(1)) + encode(Error(0, "protocol_error", "bye", False)) + encode(Ping(2))
    assert edge.receive_message(message) == [Ping(1), Error(0, "protocol_error", "bye", False)]
    assert edge.state is State.CLOSED


def test_several_frames_in_one_message_are_refused_during_the_login() -> None:
    edge = Connection(Role.EDGE)
    edge.send(Challenge(b"n" * 32, "edge.test", [2]))
    edge.data_to_send()
    two = encode(Auth("m_1", 1, b"s" * 64)) * 2
    with pytest.raises(RemoteProtocolError, match="more than one frame"):
        edge.receive_message(two)


def test_a_refused_frame_in_a_message_fails_the_connection_like_a_lone_one() -> None:
    edge, _ = handshake()
    message = encode(Ping(1)) + encode(Open(1, CHAT, 0))  # the agent never sends OPEN
    with pytest.raises(RemoteProtocolError, match="never sends OPEN"):
        edge.receive_message(message)
