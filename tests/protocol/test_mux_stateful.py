"""A Hypothesis state machine over both ends of a tunnel, checked against an independent model.

The model below is written from PROTOCOL.md (§4 states, §7 streams, §8 flow control), not from
mux.py. Random sequences of sends from either side (handshake frames, opens, deltas within and
beyond credit, reads, ends, cancels, pings, goaways, frames from the wrong side) are pumped
between the two ends a few messages at a time, so frames cross on the wire. Every send must raise
``LocalProtocolError`` exactly when the model says it is illegal; every receive must return what
the model predicts; nothing but ``ProtocolError`` may escape. Probes feed hand-made frames to a
copy of one end to cover (state, input) pairs beyond what a well-behaved peer sends.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

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
    StreamFrame,
    Window,
    decode,
    encode,
)
from protocol.codec import AGENT_MAX_RECEIVE_FRAME, decode_many
from protocol.frames import MAX_WINDOW, NO_STREAM
from protocol.mux import FLOW_CONTROLLED
from protocol.requests import ChatRequest, Message, Request, UnsupportedRequest
from tests.protocol.strategies import requests_or_unsupported

SW = 100  # stream window
CW = 250  # connection window: smaller than three streams' windows, so it binds too
READY = Ready("s", 1 << 20, SW, CW, 5.0)
CHAT = ChatRequest("m", (Message("user", "hi"),))

SENDERS: dict[FrameType, frozenset[Role]] = {
    FrameType.CHALLENGE: frozenset({Role.EDGE}),
    FrameType.AUTH: frozenset({Role.AGENT}),
    FrameType.READY: frozenset({Role.EDGE}),
    FrameType.HELLO: frozenset({Role.AGENT}),
    FrameType.MODELS: frozenset({Role.AGENT}),
    FrameType.HEALTH: frozenset({Role.AGENT}),
    FrameType.NODES: frozenset({Role.EDGE}),
    FrameType.OPEN: frozenset({Role.EDGE}),
    FrameType.DELTA: frozenset({Role.AGENT}),
    FrameType.EMBEDDINGS: frozenset({Role.AGENT}),
    FrameType.END: frozenset({Role.AGENT}),
    FrameType.ERROR: frozenset(Role),
    FrameType.CANCEL: frozenset({Role.EDGE}),
    FrameType.WINDOW: frozenset({Role.EDGE}),
    FrameType.PING: frozenset(Role),
    FrameType.PONG: frozenset(Role),
    FrameType.GOAWAY: frozenset(Role),
}
_SESSION = [
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
]
# PROTOCOL.md §4: (state, frame type) → next state; ERROR on stream 0 is handled apart.
TABLE: dict[tuple[State, FrameType], State] = {
    (State.START, FrameType.CHALLENGE): State.CHALLENGED,
    (State.CHALLENGED, FrameType.AUTH): State.AUTHENTICATING,
    (State.AUTHENTICATING, FrameType.READY): State.GREETING,
    (State.GREETING, FrameType.HELLO): State.OPEN,  # HELLO once, before any session frame
    (State.OPEN, FrameType.OPEN): State.OPEN,
    (State.OPEN, FrameType.GOAWAY): State.DRAINING,
    (State.DRAINING, FrameType.GOAWAY): State.DRAINING,
    **{(State.OPEN, t): State.OPEN for t in _SESSION},
    **{(State.DRAINING, t): State.DRAINING for t in _SESSION},
}


def other(role: Role) -> Role:
    return Role.AGENT if role is Role.EDGE else Role.EDGE


@dataclass
class End_:
    """What one end should believe, from the frames it sent and received."""

    role: Role
    state: State = State.START
    last_id: int = 0
    active: set[int] = field(default_factory=set)
    draining_sent: bool = False
    # The agent's credit (§8).
    send_stream: dict[int, int] = field(default_factory=dict)
    send_conn: int = 0
    # The edge's view: credit it granted, text read but not yet handed back, text not yet read.
    recv_stream: dict[int, int] = field(default_factory=dict)
    recv_conn: int = 0
    pending_stream: dict[int, int] = field(default_factory=dict)
    pending_conn: int = 0
    buffered: dict[int, int] = field(default_factory=dict)

    def forget(self, sid: int) -> None:
        self.active.discard(sid)
        for table in (self.send_stream, self.recv_stream, self.pending_stream):
            table.pop(sid, None)

    # ---------------------------------------------------------------- predictions

    def send_error(self, frame: Frame) -> type[LocalProtocolError] | None:
        """The exception send() must raise, or None when the frame may go out."""
        if self.role not in SENDERS[frame.TYPE] or self.state is State.CLOSED:
            return LocalProtocolError
        if isinstance(frame, Delta) and frame.flow_size == 0:  # §8: every DELTA costs credit
            return LocalProtocolError
        if isinstance(frame, Error) and frame.stream_id == NO_STREAM:
            return None
        if (self.state, frame.TYPE) not in TABLE:
            return LocalProtocolError
        if isinstance(frame, StreamFrame) and frame.stream_id != NO_STREAM:
            sid = frame.stream_id
            if isinstance(frame, Open):  # §7: ids go up by exactly one
                return LocalProtocolError if sid != self.last_id + 1 else None
            if isinstance(frame, Window):  # credit by hand: fine for any stream once opened
                return LocalProtocolError if sid > self.last_id else None
            if sid not in self.active:
                return StreamClosed
            if isinstance(frame, FLOW_CONTROLLED):
                credit = min(self.send_stream[sid], self.send_conn)
                return LocalProtocolError if frame.flow_size > credit else None
        return None

    def receive_outcome(self, frame: Frame) -> str | type[RemoteProtocolError]:
        """The exception receive() must raise, or "frame" / "none" for what it returns."""
        if self.state is State.CLOSED or other(self.role) not in SENDERS[frame.TYPE]:
            return RemoteProtocolError
        if isinstance(frame, Delta) and frame.flow_size == 0:
            return RemoteProtocolError
        if isinstance(frame, Error) and frame.stream_id == NO_STREAM:
            return "frame"
        if (self.state, frame.TYPE) not in TABLE and not self.crossed_open(frame):
            return RemoteProtocolError
        if isinstance(frame, StreamFrame) and frame.stream_id != NO_STREAM:
            sid = frame.stream_id
            if isinstance(frame, Open):
                return RemoteProtocolError if sid != self.last_id + 1 else "frame"
            if sid not in self.active:
                if sid > self.last_id:
                    return RemoteProtocolError
                if isinstance(frame, FLOW_CONTROLLED) and frame.flow_size > self.recv_conn:
                    return FlowControlError
                return "none"
            if isinstance(frame, FLOW_CONTROLLED) and frame.flow_size > min(
                self.recv_stream[sid], self.recv_conn
            ):
                return FlowControlError
            if isinstance(frame, Window) and self.send_stream[sid] + frame.increment > MAX_WINDOW:
                return FlowControlError
        if (
            isinstance(frame, Window)
            and frame.stream_id == NO_STREAM
            and self.send_conn + frame.increment > MAX_WINDOW
        ):
            return FlowControlError
        return "frame"

    def crossed_open(self, frame: Frame) -> bool:
        # §10: an OPEN that crossed the agent's own GOAWAY is accepted (and refused by the app).
        return (
            isinstance(frame, Open)
            and self.role is Role.AGENT
            and self.state is State.DRAINING
            and self.draining_sent
        )

    # ---------------------------------------------------------------- effects

    def adopt(self) -> None:
        self.send_conn = self.recv_conn = CW

    def sent(self, frame: Frame) -> None:
        if isinstance(frame, Error) and frame.stream_id == NO_STREAM:
            self.state = State.CLOSED
            return
        self.state = TABLE[(self.state, frame.TYPE)]
        if isinstance(frame, GoAway):
            self.draining_sent = True
        if isinstance(frame, Ready):
            self.adopt()
        if isinstance(frame, Window):
            if frame.stream_id == NO_STREAM:
                self.recv_conn += frame.increment
            elif frame.stream_id in self.active:
                self.recv_stream[frame.stream_id] += frame.increment
        elif isinstance(frame, Open):
            self.last_id = frame.stream_id
            self.active.add(frame.stream_id)
            self.recv_stream[frame.stream_id] = SW
            self.pending_stream[frame.stream_id] = 0
        elif isinstance(frame, FLOW_CONTROLLED):
            self.send_stream[frame.stream_id] -= frame.flow_size
            self.send_conn -= frame.flow_size
        elif isinstance(frame, (End, Error, Cancel)):
            self.forget(frame.stream_id)

    def received(self, frame: Frame) -> list[Frame]:
        """Apply a frame receive() accepted; the frames it must have queued in reply."""
        if isinstance(frame, Error) and frame.stream_id == NO_STREAM:
            self.state = State.CLOSED
            return []
        self.state = TABLE.get((self.state, frame.TYPE), State.DRAINING)
        if isinstance(frame, Ready):
            self.adopt()
        if isinstance(frame, Ping):
            return [Pong(frame.payload)]
        if isinstance(frame, Window) and frame.stream_id == NO_STREAM:
            self.send_conn += frame.increment
        elif isinstance(frame, Open):
            self.last_id = frame.stream_id
            self.active.add(frame.stream_id)
            self.send_stream[frame.stream_id] = SW
        elif isinstance(frame, StreamFrame) and frame.stream_id not in self.active:
            if isinstance(
                frame, FLOW_CONTROLLED
            ):  # dropped late DELTA: its connection credit comes back
                self.recv_conn -= frame.flow_size
                return self.grant_connection(frame.flow_size)
        elif isinstance(frame, FLOW_CONTROLLED):
            self.recv_stream[frame.stream_id] -= frame.flow_size
            self.recv_conn -= frame.flow_size
            sid = frame.stream_id
            self.buffered[sid] = self.buffered.get(sid, 0) + frame.flow_size
        elif isinstance(frame, Window):
            self.send_stream[frame.stream_id] += frame.increment
        elif isinstance(frame, (End, Error, Cancel)):
            self.forget(frame.stream_id)
        return []

    def grant_connection(self, size: int) -> list[Frame]:
        # §8: credit goes back once at least half a window has been taken.
        self.pending_conn += size
        if 2 * self.pending_conn < CW:
            return []
        increment, self.pending_conn = self.pending_conn, 0
        return [Window(NO_STREAM, increment)]

    def consumed(self, sid: int, size: int) -> list[Frame]:
        self.buffered[sid] -= size
        replies = self.grant_connection(size)
        if sid in self.active:
            self.pending_stream[sid] += size
            if 2 * self.pending_stream[sid] >= SW:
                replies.append(Window(sid, self.pending_stream[sid]))
                self.pending_stream[sid] = 0
        return replies


ROLES = st.sampled_from(list(Role))


def raised(action: Callable[[], object]) -> ProtocolError | None:
    """Run ``action``; the ProtocolError it raised, if any. Any other exception propagates."""
    try:
        action()
    except ProtocolError as error:
        return error
    return None


def check_receive(
    conn: Connection, data: bytes, frame: Frame, outcome: str | type[RemoteProtocolError]
) -> bool:
    """Feed ``data`` to ``conn`` and compare with the predicted outcome; True if accepted."""
    results: list[Frame | None] = []
    error = raised(lambda: results.append(conn.receive(data)))
    if error is not None:
        assert isinstance(outcome, type), f"{conn.role.value} refused {frame}: {error!r}"
        assert type(error) is outcome, f"{frame}: {error!r}, expected {outcome.__name__}"
        return False
    assert not isinstance(outcome, type), f"{conn.role.value} took {frame}, expected {outcome}"
    assert results == [None if outcome == "none" else frame]
    return True


class Tunnel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.conn = {role: Connection(role) for role in Role}
        self.model = {role: End_(role) for role in Role}
        self.wire: dict[Role, deque[bytes]] = {role: deque() for role in Role}  # sent by role

    # ---------------------------------------------------------------- plumbing

    def collect(self, role: Role, expected: list[Frame]) -> None:
        """Take what ``role`` queued: exactly ``expected``; put it on the wire one frame per
        message, so that each frame can be delivered (or held back) on its own. Frames that
        share a message are tested in test_mux.py."""
        out = self.conn[role].data_to_send()
        frames = [f for data in out for f in decode_many(data, AGENT_MAX_RECEIVE_FRAME)]
        assert frames == expected
        for frame in frames:
            self.model[role].sent(frame)
        self.wire[role].extend(encode(frame) for frame in frames)

    def send(self, role: Role, frame: Frame) -> None:
        expected = self.model[role].send_error(frame)
        error = raised(lambda: self.conn[role].send(frame))
        if error is not None:
            assert expected is not None, f"{role.value} refused {frame}: {error!r}"
            assert type(error) is expected, f"{frame}: {error!r}, expected {expected.__name__}"
            assert error.code is ErrorCode.PROTOCOL_ERROR
            assert self.conn[role].data_to_send() == []
            return
        assert expected is None, f"{role.value} sent {frame}; expected {expected.__name__}"
        self.collect(role, [frame])

    def deliver_one(self, sender: Role) -> None:
        data = self.wire[sender].popleft()
        frame = decode(data, AGENT_MAX_RECEIVE_FRAME)
        receiver = other(sender)
        outcome = self.model[receiver].receive_outcome(frame)
        if check_receive(self.conn[receiver], data, frame, outcome):
            self.collect(receiver, self.model[receiver].received(frame))

    def stream_id(self, data: st.DataObject, role: Role) -> int:
        """Mostly a stream this end has open; sometimes one that ended or was never opened."""
        model = self.model[role]
        roll = data.draw(st.integers(0, 4))
        if model.active and roll:
            return data.draw(st.sampled_from(sorted(model.active)))
        candidates = sorted(model.active | {1, model.last_id, model.last_id + 1} - {0})
        return data.draw(st.sampled_from(candidates))

    # ---------------------------------------------------------------- rules

    @initialize(steps=st.sampled_from([0, 1, 2, 3] + [4] * 12), streams=st.integers(0, 3))
    def login(self, steps: int, streams: int) -> None:
        """Most runs start logged in with a few streams open; some start mid-handshake."""
        script: list[tuple[Role, Frame]] = [
            (Role.EDGE, Challenge(b"n" * 32, "edge.test", [2])),
            (Role.AGENT, Auth("m", 1, b"s" * 64)),
            (Role.EDGE, READY),
            (Role.AGENT, Hello("1", 8, [])),
        ]
        for role, frame in script[:steps]:
            self.send(role, frame)
            self.deliver_all()
        for _ in range(streams if steps == len(script) else 0):
            self.edge_opens(0, CHAT)
            self.deliver_all()

    @rule(role=ROLES, kind=st.sampled_from(["challenge", "auth", "ready", "hello", "models"]))
    def handshake_frame(self, role: Role, kind: str) -> None:
        frames: dict[str, Frame] = {
            "challenge": Challenge(b"n" * 32, "edge.test", [2]),
            "auth": Auth("m", 1, b"s" * 64),
            "ready": READY,
            "hello": Hello("1", 8, []),
            "models": Models([{"name": "m", "capabilities": []}]),
        }
        self.send(role, frames[kind])

    @rule(step=st.sampled_from([1, 1, 1, 1, 1, 0, -1, 2]), request=requests_or_unsupported)
    def edge_opens(self, step: int, request: Request | UnsupportedRequest) -> None:
        """Mostly the next id; sometimes one reused, or one that skips an id (§7). Any valid
        request, an op the agent does not know included: the connection treats them alike."""
        self.send(Role.EDGE, Open(max(1, self.model[Role.EDGE].last_id + step), request, 0))

    @rule(
        data=st.data(),
        size=st.integers(0, 110),
        thinking=st.booleans(),
        calls=st.integers(0, 2),
    )
    def agent_sends_delta(self, data: st.DataObject, size: int, thinking: bool, calls: int) -> None:
        sid = self.stream_id(data, Role.AGENT)
        text = "é" * (size // 2) + "x" * (size % 2)  # multi-byte text: credit counts bytes
        # Tool calls are charged too: id + name + arguments, in UTF-8 bytes (§8).
        tool_calls = [{"id": f"c{n}", "name": "f", "arguments": '{"é":1}'} for n in range(calls)]
        frame = Delta(sid, "", text, tool_calls) if thinking else Delta(sid, text, "", tool_calls)
        self.send(Role.AGENT, frame)

    @rule(data=st.data())
    def agent_sends_all_its_credit(self, data: st.DataObject) -> None:
        sid = self.stream_id(data, Role.AGENT)
        self.send(Role.AGENT, Delta(sid, "x" * self.conn[Role.AGENT].credit(sid), "", []))

    @rule(data=st.data(), role=ROLES, error=st.booleans())
    def stream_ends(self, data: st.DataObject, role: Role, error: bool) -> None:
        sid = self.stream_id(data, role)
        if error:
            self.send(role, Error(sid, "backend_error", "boom", False))
        elif role is Role.AGENT:
            self.send(role, End(sid, "stop", 1, 1, {}))
        else:
            self.send(role, Cancel(sid, "client went away"))

    @precondition(
        lambda self: (
            self.conn[Role.EDGE].state in (State.OPEN, State.DRAINING)
            and any(self.model[Role.EDGE].buffered.values())
        )
    )
    @rule(data=st.data())
    def client_reads(self, data: st.DataObject) -> None:
        buffered = self.model[Role.EDGE].buffered
        sid = data.draw(st.sampled_from(sorted(s for s, n in buffered.items() if n)))
        size = data.draw(st.integers(1, buffered[sid]))
        expected = self.model[Role.EDGE].consumed(sid, size)
        self.conn[Role.EDGE].consumed(sid, size)
        self.collect(Role.EDGE, expected)

    @precondition(lambda self: self.conn[Role.EDGE].state in (State.OPEN, State.DRAINING))
    @rule(data=st.data(), extra=st.integers(1, 50), negative=st.booleans())
    def client_reads_more_than_arrived(
        self, data: st.DataObject, extra: int, negative: bool
    ) -> None:
        """consumed() refuses a size never received, or negative, and changes nothing (§8)."""
        buffered = self.model[Role.EDGE].buffered
        sid = data.draw(st.sampled_from(sorted({*buffered, 1, self.model[Role.EDGE].last_id + 1})))
        size = -extra if negative else buffered.get(sid, 0) + extra
        error = raised(lambda: self.conn[Role.EDGE].consumed(sid, size))
        assert isinstance(error, LocalProtocolError), f"consumed({sid}, {size}): {error!r}"
        assert self.conn[Role.EDGE].data_to_send() == []

    @precondition(lambda self: self.conn[Role.EDGE].state in (State.OPEN, State.DRAINING))
    @rule()
    def client_reads_everything(self) -> None:
        model = self.model[Role.EDGE]
        for sid, size in sorted(model.buffered.items()):
            if size:
                expected = model.consumed(sid, size)
                self.conn[Role.EDGE].consumed(sid, size)
                self.collect(Role.EDGE, expected)

    @rule(data=st.data(), increment=st.integers(1, 60), connection=st.booleans())
    def edge_grants_credit_by_hand(
        self, data: st.DataObject, increment: int, connection: bool
    ) -> None:
        sid = NO_STREAM if connection else self.stream_id(data, Role.EDGE)
        self.send(Role.EDGE, Window(sid, increment))

    @rule(role=ROLES, payload=st.integers(0, 2**40), pong=st.booleans())
    def ping(self, role: Role, payload: int, pong: bool) -> None:
        self.send(role, Pong(payload) if pong else Ping(payload))

    @rule(role=ROLES, dice=st.integers(0, 3))
    def goaway(self, role: Role, dice: int) -> None:
        if dice == 0:  # draining stops new streams: not too often
            self.send(role, GoAway("bye"))

    @rule(role=ROLES, dice=st.integers(0, 5))
    def close(self, role: Role, dice: int) -> None:
        if dice == 0:  # rarely: closing ends the interesting part of a run
            self.send(role, Error(NO_STREAM, "protocol_error", "bye", False))

    @rule(data=st.data(), role=ROLES)
    def wrong_side(self, data: st.DataObject, role: Role) -> None:
        sid = self.stream_id(data, role)
        frame: Frame = (
            data.draw(st.sampled_from([Delta(sid, "x", "", []), End(sid, "stop", 0, 0, {})]))
            if role is Role.EDGE
            else data.draw(
                st.sampled_from([Open(sid, CHAT, 0), Cancel(sid, "x"), READY])
                | st.builds(Open, st.just(sid), requests_or_unsupported, st.just(0))
            )
        )
        self.send(role, frame)

    @precondition(lambda self: any(self.wire.values()))
    @rule(sender=ROLES, count=st.integers(1, 4))
    def deliver(self, sender: Role, count: int) -> None:
        for _ in range(min(count, len(self.wire[sender]))):
            self.deliver_one(sender)

    @rule()
    def deliver_all(self) -> None:
        while any(self.wire.values()):
            for sender in Role:
                if self.wire[sender]:
                    self.deliver_one(sender)

    @rule(
        data=st.data(),
        at=ROLES,
        kind=st.sampled_from(list(FrameType)),
        size=st.integers(0, 260),
        increment=st.sampled_from([1, 60, MAX_WINDOW]),
        zero=st.booleans(),
    )
    def probe(
        self,
        data: st.DataObject,
        at: Role,
        kind: FrameType,
        size: int,
        increment: int,
        zero: bool,
    ) -> None:
        """Feed a hand-made frame to a copy of one end; compare with the model's prediction."""
        sid = self.stream_id(data, at)
        request = data.draw(requests_or_unsupported) if kind is FrameType.OPEN else CHAT
        frames: dict[FrameType, Frame] = {
            FrameType.CHALLENGE: Challenge(b"n" * 32, "edge.test", [2]),
            FrameType.AUTH: Auth("m", 1, b"s" * 64),
            FrameType.READY: READY,
            FrameType.HELLO: Hello("1", 1, []),
            FrameType.MODELS: Models([]),
            FrameType.HEALTH: Health(False, "down"),
            FrameType.NODES: Nodes("n1", [["n1", "https://n1.test"]]),
            FrameType.OPEN: Open(sid, request, 0),
            FrameType.DELTA: Delta(
                sid,
                "x" * (size // 2),
                "",
                [{"id": "c", "name": "f", "arguments": "{}"}] * (size % 2),
            ),
            FrameType.EMBEDDINGS: Embeddings(sid, 0, [b"\0" * (4 * (size // 4 + 1))]),
            FrameType.END: End(sid, "stop", 0, 0, {}),
            FrameType.ERROR: Error(NO_STREAM if zero else sid, "x", "", False),
            FrameType.CANCEL: Cancel(sid, "x"),
            FrameType.WINDOW: Window(NO_STREAM if zero else sid, increment),
            FrameType.PING: Ping(size),
            FrameType.PONG: Pong(size),
            FrameType.GOAWAY: GoAway("x"),
        }
        frame = frames[kind]
        model = copy.deepcopy(self.model[at])
        if (
            isinstance(frame, Open)
            and at is Role.AGENT
            and model.state is State.DRAINING
            and not model.draining_sent
        ):
            # Known divergence, pinned by test_mux.py::
            # test_an_open_after_the_edges_own_goaway_is_refused_by_the_agent.
            return
        conn = copy.deepcopy(self.conn[at])
        assert conn.data_to_send() == []
        if not check_receive(conn, encode(frame), frame, model.receive_outcome(frame)):
            return
        replies = [f for d in conn.data_to_send() for f in decode_many(d, AGENT_MAX_RECEIVE_FRAME)]
        assert replies == model.received(frame)
        assert conn.state is model.state

    # ---------------------------------------------------------------- invariants

    @invariant()
    def each_end_matches_its_model(self) -> None:
        for role in Role:
            conn, model = self.conn[role], self.model[role]
            assert conn.state is model.state
            assert conn.draining_sent == model.draining_sent
            assert conn.next_stream_id() == model.last_id + 1
            assert conn.active_streams == len(model.active)
            for sid in range(model.last_id + 2):
                assert conn.is_active(sid) == (sid in model.active)

    @invariant()
    def credit_matches_and_is_never_negative(self) -> None:
        agent, model = self.conn[Role.AGENT], self.model[Role.AGENT]
        assert model.send_conn >= 0
        for sid in range(model.last_id + 2):
            credit = agent.credit(sid)
            assert credit >= 0
            if sid in model.active:
                assert model.send_stream[sid] >= 0
                assert credit == min(model.send_stream[sid], model.send_conn)
            else:
                assert credit == 0
        edge = self.model[Role.EDGE]
        assert edge.recv_conn >= 0 and all(n >= 0 for n in edge.recv_stream.values())

    @invariant()
    def quiet_ends_agree(self) -> None:
        if any(self.wire.values()):
            return
        edge, agent = self.model[Role.EDGE], self.model[Role.AGENT]
        assert edge.state is agent.state
        if edge.state is State.CLOSED:
            return
        assert edge.active == agent.active
        assert edge.last_id == agent.last_id
        # Nothing in flight: the edge's view of the agent's credit is the agent's credit.
        assert edge.recv_conn == agent.send_conn
        for sid in agent.active:
            assert edge.recv_stream[sid] == agent.send_stream[sid]

    @invariant()
    def credit_comes_back_once_everything_is_read(self) -> None:
        edge = self.model[Role.EDGE]
        if (
            any(self.wire.values())
            or any(edge.buffered.values())
            or edge.state not in (State.OPEN, State.DRAINING)
        ):
            return
        # Less than half a window can be read and not yet handed back (§8).
        assert 2 * self.model[Role.AGENT].send_conn > CW
        for sid in self.model[Role.AGENT].active:
            assert 2 * self.conn[Role.AGENT].credit(sid) > min(SW, CW)


Tunnel.TestCase.settings = settings(max_examples=120, stateful_step_count=40, deadline=None)
test_tunnel_state_machine = Tunnel.TestCase
