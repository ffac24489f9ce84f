"""The tunnel connection as a sans-I/O state machine (PROTOCOL.md §4 to §10).

Theory of operation. One ``Connection`` object lives on each end of one WebSocket. The I/O layer
hands every received binary message to ``receive_message()``, which validates each of its frames
against the connection state, the stream table and the credit windows, and returns the frames for
the application to act on (leaving out those that belonged to a stream this side already closed,
dropped on purpose); ``receive()`` does the same for a message of exactly one frame, as the login
has them. The application calls ``send()`` for every frame it wants to emit; ``send()`` checks the
same rules from the other direction and queues the encoded bytes, which the I/O layer collects with
``data_to_send()`` and writes in order: once the session is open, the frames queued together share
messages up to the peer's limit (§2). Some frames are answered by the machine itself: PING gets a
PONG, and credit for dropped DELTAs is handed back with WINDOW. A peer that keeps sending PINGs
while the I/O layer cannot write (it stopped reading) would grow the outbox without end, so past
``MAX_UNSENT_PONGS`` PONGs not yet collected a PING is a protocol error (§9).

Connection states (the same names on both ends; §4):

    START ──CHALLENGE──► CHALLENGED ──AUTH──► AUTHENTICATING ──READY──► GREETING ──HELLO──► OPEN
    OPEN ──GOAWAY──► DRAINING
      any state ──ERROR on stream 0──► CLOSED

GREETING admits nothing but HELLO: the agent says who it is exactly once, before any other
session frame. The table ``TRANSITIONS`` is the single source of truth for what each state admits.

Streams (§7) are opened only by the edge, with ids 1, 2, 3, … each exactly one above the last, and
end with END or ERROR from the agent or CANCEL from the edge. Because no id is skipped, every id
up to the last one was opened: a frame for such an id that is no longer active belongs to a stream
that ended and is dropped silently (it was in flight when the stream ended); a frame for an id
above the last one is a protocol error.

Errors: ``receive()`` raises ``RemoteProtocolError`` (answer with ERROR on stream 0 and close);
``send()`` and ``consumed()`` raise ``LocalProtocolError``. Both carry the wire ``code``. Either
end answers a failure the same way, with ``fail(error)``: ERROR on stream 0 with the error's code
and message, then CLOSED. ``close(code, message)`` ends a connection on purpose (revocation,
shutdown, a dead link) the same way.
"""

from __future__ import annotations

from enum import Enum

from protocol import codec
from protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError, StreamClosed
from protocol.frames import (
    NO_STREAM,
    Cancel,
    Delta,
    Embeddings,
    End,
    Error,
    Frame,
    FrameType,
    GoAway,
    Open,
    Ping,
    Pong,
    Ready,
    StreamFrame,
    Window,
)
from protocol.traffic import Traffic
from protocol.windows import ReceiveWindow, SendWindow


class Role(Enum):
    EDGE = "edge"
    AGENT = "agent"


class State(Enum):
    START = "start"
    CHALLENGED = "challenged"
    AUTHENTICATING = "authenticating"
    GREETING = "greeting"  # READY is out; the agent's HELLO must come first (§3)
    OPEN = "open"
    DRAINING = "draining"
    CLOSED = "closed"


_EDGE_FRAMES = frozenset(
    {
        FrameType.CHALLENGE,
        FrameType.READY,
        FrameType.OPEN,
        FrameType.CANCEL,
        FrameType.WINDOW,
        FrameType.NODES,
    }
)
_AGENT_FRAMES = frozenset(
    {
        FrameType.AUTH,
        FrameType.HELLO,
        FrameType.MODELS,
        FrameType.HEALTH,
        FrameType.DELTA,
        FrameType.EMBEDDINGS,
        FrameType.END,
    }
)
_EITHER_FRAMES = frozenset({FrameType.ERROR, FrameType.PING, FrameType.PONG, FrameType.GOAWAY})
SENDERS: dict[FrameType, frozenset[Role]] = {
    **{t: frozenset({Role.EDGE}) for t in _EDGE_FRAMES},
    **{t: frozenset({Role.AGENT}) for t in _AGENT_FRAMES},
    **{t: frozenset({Role.EDGE, Role.AGENT}) for t in _EITHER_FRAMES},
}

# (state, frame type) → state after the frame, whichever side sent it. A missing entry means the
# frame is not allowed in that state. ERROR on stream 0 is handled before the table: it always
# closes. HELLO is not a session frame: it is allowed once, in GREETING, and never again.
_SESSION = {
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
}
TRANSITIONS: dict[tuple[State, FrameType], State] = {
    (State.START, FrameType.CHALLENGE): State.CHALLENGED,
    (State.CHALLENGED, FrameType.AUTH): State.AUTHENTICATING,
    (State.AUTHENTICATING, FrameType.READY): State.GREETING,
    (State.GREETING, FrameType.HELLO): State.OPEN,
    (State.OPEN, FrameType.OPEN): State.OPEN,
    (State.OPEN, FrameType.GOAWAY): State.DRAINING,
    (State.DRAINING, FrameType.GOAWAY): State.DRAINING,
    **{(State.OPEN, t): State.OPEN for t in _SESSION},
    **{(State.DRAINING, t): State.DRAINING for t in _SESSION},
}
_CROSSED_GOAWAY = (State.DRAINING, FrameType.OPEN)
_LIVE = (State.OPEN, State.DRAINING)  # the session: frames may share a message (§2)
FLOW_CONTROLLED = (Delta, Embeddings)  # the frames charged against the windows (§8)
# Automatic PONGs the I/O layer has not collected yet; past this a PING is refused (§9). An
# honest peer pings once per heartbeat interval, so only a peer that stops reading gets here.
MAX_UNSENT_PONGS = 16
MAX_ERROR_MESSAGE = 1000  # characters of a connection ERROR's message: it must fit any frame


class _Stream:
    __slots__ = ("receive_window", "send_window")

    def __init__(self, window: int) -> None:
        self.send_window = SendWindow(window)
        self.receive_window = ReceiveWindow(window)


class Connection:
    """One end of a tunnel. See the module docstring for the promises it keeps."""

    def __init__(
        self,
        role: Role,
        max_receive_frame: int = codec.DEFAULT_MAX_FRAME,
        max_send_frame: int = codec.DEFAULT_MAX_FRAME,
    ) -> None:
        self.role = role
        self.state = State.START
        self.max_receive_frame = max_receive_frame
        self.max_send_frame = max_send_frame
        self.stream_window = 0
        self.connection_window = 0
        self.draining_sent = False
        self._streams: dict[int, _Stream] = {}
        self._last_stream_id = 0
        self._connection_send = SendWindow(0)
        self._connection_receive = ReceiveWindow(0)
        # Messages to write, each a list of encoded frames. Once the session is open, frames
        # queued together share a message up to the peer's limit (§2): one write for many.
        self._outbox: list[list[bytes]] = []
        self._batch_size = 0  # bytes in the last message, while it still takes frames
        self._unsent_pongs = 0
        # Flow-controlled bytes received per stream and not yet reported by consumed(); kept
        # after the stream ends until the application has read them.
        self._unconsumed: dict[int, int] = {}
        self.traffic: Traffic | None = None  # frames counted here when set (protocol.traffic)

    # ------------------------------------------------------------------ inspection

    @property
    def peer(self) -> Role:
        return Role.AGENT if self.role is Role.EDGE else Role.EDGE

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    def is_active(self, stream_id: int) -> bool:
        return stream_id in self._streams

    def credit(self, stream_id: int) -> int:
        """Bytes of DELTA or EMBEDDINGS the agent may send on ``stream_id`` right now (§8)."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        return min(stream.send_window.available, self._connection_send.available)

    def next_stream_id(self) -> int:
        return self._last_stream_id + 1

    def data_to_send(self) -> list[bytes]:
        """Messages to write, oldest first: the frames queued by ``send()`` and by automatic
        replies, each message holding one frame during the login and as many as fit once the
        session is open (§2)."""
        out, self._outbox = self._outbox, []
        self._batch_size = 0
        self._unsent_pongs = 0
        return [parts[0] if len(parts) == 1 else b"".join(parts) for parts in out]

    # ------------------------------------------------------------------ sending

    def send(self, frame: Frame) -> None:
        """Queue ``frame`` after checking it is allowed now; ``LocalProtocolError`` if not.

        Everything the peer would refuse is refused here first, and a refused frame changes
        nothing: checks run before any state, stream or window is touched.
        """
        if self.role not in SENDERS[frame.TYPE]:
            raise LocalProtocolError(f"the {self.role.value} never sends {frame.TYPE.name}")
        data = self._encode(frame)
        new_state = self._next_state(frame, receiving=False)
        batchable = self.state in _LIVE  # sent in the session, not in the login
        if isinstance(frame, StreamFrame):
            self._account_sent(frame)
        self._enter(new_state, frame)
        if isinstance(frame, GoAway):
            self.draining_sent = True
        self._queue(data, batchable)

    def _queue(self, data: bytes, batchable: bool) -> None:
        if self.traffic is not None:
            self.traffic.frames_sent += 1
        if batchable and self._batch_size and self._batch_size + len(data) <= self.max_send_frame:
            self._outbox[-1].append(data)
            self._batch_size += len(data)
            return
        self._outbox.append([data])
        self._batch_size = len(data) if batchable else 0

    def _encode(self, frame: Frame) -> bytes:
        try:
            frame.check_outgoing()
            data = codec.encode(frame)
        except RemoteProtocolError as exc:
            raise LocalProtocolError(str(exc)) from None
        except (TypeError, ValueError, OverflowError) as exc:  # UnicodeEncodeError is a ValueError
            raise LocalProtocolError(f"{frame.TYPE.name} cannot be encoded: {exc}") from None
        if len(data) > self.max_send_frame:
            raise LocalProtocolError(
                f"{frame.TYPE.name} frame of {len(data)} bytes exceeds limit {self.max_send_frame}"
            )
        return data

    def _open(self, sid: int, error: type[LocalProtocolError | RemoteProtocolError]) -> None:
        # Exactly one above the last: with no gaps, "at most the last id and not active" means
        # "ended", which is what lets late frames be dropped rather than refused (§7).
        if sid != self._last_stream_id + 1:
            raise error(f"stream id {sid} is not {self._last_stream_id + 1}")
        self._last_stream_id = sid
        self._streams[sid] = _Stream(self.stream_window)

    def _account_sent(self, frame: StreamFrame) -> None:
        sid = frame.stream_id
        if isinstance(frame, Window):
            # Every grant of credit goes out as a WINDOW and is counted here, whether consumed()
            # or the application made it, so both ends always agree on the window (§8).
            if sid == NO_STREAM:
                self._connection_receive.check_grant(frame.increment)
                self._connection_receive.grant(frame.increment)
                return
            if sid > self._last_stream_id:
                raise LocalProtocolError(f"WINDOW for stream {sid}, never opened")
            if sid in self._streams:
                self._streams[sid].receive_window.check_grant(frame.increment)
                self._streams[sid].receive_window.grant(frame.increment)
            return
        if sid == NO_STREAM:  # ERROR on stream 0: the connection, not a stream
            return
        if isinstance(frame, Open):
            self._open(sid, LocalProtocolError)
            return
        if sid not in self._streams:
            raise StreamClosed(f"stream {sid} is not open")
        if isinstance(frame, FLOW_CONTROLLED):
            size = frame.flow_size
            if size > self.credit(sid):
                raise LocalProtocolError(
                    f"{frame.TYPE.name} of {size} bytes exceeds the {self.credit(sid)} bytes"
                    " of credit"
                )
            self._streams[sid].send_window.consume(size)
            self._connection_send.consume(size)
        elif isinstance(frame, (End, Error, Cancel)):
            del self._streams[sid]

    def close(self, code: str, message: str) -> None:
        """End the connection from this side: queue ERROR on stream 0 with ``code`` and
        ``message`` (§6) and enter CLOSED; nothing is sent or received after it. A no-op once
        CLOSED (the peer's ERROR, or ours, already ended it)."""
        if self.state is not State.CLOSED:
            self.send(Error(NO_STREAM, str(code), message[:MAX_ERROR_MESSAGE], False))

    def fail(self, error: ProtocolError) -> None:
        """The connection failed with ``error`` (either side's fault): tell the peer why, with
        the error's code and message, and close (§4)."""
        self.close(error.code, str(error))

    # ------------------------------------------------------------------ receiving

    def receive(self, data: bytes) -> Frame | None:
        """Validate a received message of one frame; the frame, or ``None`` for a dropped late
        frame. The login (§3) goes one frame per message."""
        return self._take(codec.decode(data, self.max_receive_frame))

    def receive_message(self, data: bytes) -> list[Frame]:
        """Validate a received message: the frames for the application, in order, late frames
        dropped. Once the session is open a message may carry several frames (§2); a frame that
        closes the connection ends the message there."""
        if self.state not in _LIVE:
            frame = self.receive(data)
            return [] if frame is None else [frame]
        frames = []
        for frame in codec.decode_many(data, self.max_receive_frame):
            taken = self._take(frame)
            if taken is not None:
                frames.append(taken)
            if self.state is State.CLOSED:
                break
        return frames

    def _take(self, frame: Frame) -> Frame | None:
        if self.traffic is not None:
            self.traffic.frames_received += 1
        if self.peer not in SENDERS[frame.TYPE]:
            raise RemoteProtocolError(f"the {self.peer.value} never sends {frame.TYPE.name}")
        new_state = self._next_state(frame, receiving=True)
        if isinstance(frame, Ping) and self._unsent_pongs >= MAX_UNSENT_PONGS:
            raise RemoteProtocolError(
                f"peer sends PINGs faster than it reads: {self._unsent_pongs} PONGs are unsent"
            )
        self._enter(new_state, frame)
        if isinstance(frame, Ping):
            self.send(Pong(frame.payload))
            self._unsent_pongs += 1
        if isinstance(frame, StreamFrame) and frame.stream_id != NO_STREAM:
            return self._account_received(frame)
        if isinstance(frame, Window):
            self._connection_send.grow(frame.increment)
        return frame

    def _account_received(self, frame: StreamFrame) -> Frame | None:
        sid = frame.stream_id
        if isinstance(frame, Open):
            self._open(sid, RemoteProtocolError)
            return frame
        stream = self._streams.get(sid)
        if stream is None:
            if sid > self._last_stream_id:
                raise RemoteProtocolError(f"{frame.TYPE.name} for stream {sid}, never opened")
            if isinstance(frame, FLOW_CONTROLLED):
                # Sent before our CANCEL arrived: the peer spent connection credit on it.
                size = frame.flow_size
                self._connection_receive.receive(size)
                self._grant_connection(size)
            return None
        if isinstance(frame, FLOW_CONTROLLED):
            size = frame.flow_size
            stream.receive_window.receive(size)
            self._connection_receive.receive(size)
            self._unconsumed[sid] = self._unconsumed.get(sid, 0) + size
        elif isinstance(frame, Window):
            stream.send_window.grow(frame.increment)
        elif isinstance(frame, (End, Error, Cancel)):
            del self._streams[sid]
        return frame

    # ------------------------------------------------------------------ flow control (receiver)

    def consumed(self, stream_id: int, size: int) -> None:
        """The application delivered ``size`` bytes of a stream's DELTAs or EMBEDDINGS: maybe
        announce credit. ``LocalProtocolError`` for a size that was never received: crediting
        bytes the peer never sent would let it send more than the windows allow (§8)."""
        unconsumed = self._unconsumed.get(stream_id, 0)
        if not 0 <= size <= unconsumed:
            raise LocalProtocolError(
                f"consumed {size} bytes of stream {stream_id}, which has {unconsumed} unread"
            )
        if size == 0:
            return
        if size == unconsumed:
            del self._unconsumed[stream_id]
        else:
            self._unconsumed[stream_id] = unconsumed - size
        self._grant_connection(size)
        stream = self._streams.get(stream_id)
        if stream is not None:
            increment = stream.receive_window.consumed(size)
            if increment:
                self.send(Window(stream_id, increment))

    def _grant_connection(self, size: int) -> None:
        increment = self._connection_receive.consumed(size)
        if increment and self.state in (State.OPEN, State.DRAINING):
            self.send(Window(NO_STREAM, increment))

    # ------------------------------------------------------------------ state

    def _next_state(self, frame: Frame, *, receiving: bool) -> State:
        """The state ``frame`` leads to; raises if it is not allowed now. Changes nothing."""
        error = RemoteProtocolError if receiving else LocalProtocolError
        if self.state is State.CLOSED:
            raise error(f"{frame.TYPE.name} after the connection closed")
        if isinstance(frame, Error) and frame.stream_id == NO_STREAM:
            return State.CLOSED
        new_state = TRANSITIONS.get((self.state, frame.TYPE))
        if (
            new_state is None
            and receiving
            and self.draining_sent
            and (self.state, frame.TYPE) == _CROSSED_GOAWAY
        ):
            # The edge sent OPEN before our GOAWAY reached it: the protocol accepts the frame and
            # the application refuses the stream with a retryable DRAINING error (§10). After
            # the edge's own GOAWAY, an OPEN is simply out of state.
            new_state = State.DRAINING
        if new_state is None:
            raise error(f"{frame.TYPE.name} is not allowed in state {self.state.value}")
        return new_state

    def _enter(self, state: State, frame: Frame) -> None:
        if isinstance(frame, Ready):
            self._adopt_limits(frame)
        self.state = state

    def _adopt_limits(self, ready: Ready) -> None:
        # READY's max_frame is what the edge accepts: it bounds what the agent sends (§4).
        if self.role is Role.AGENT:
            self.max_send_frame = ready.max_frame
        self.stream_window = ready.stream_window
        self.connection_window = ready.connection_window
        self._connection_send = SendWindow(ready.connection_window)
        self._connection_receive = ReceiveWindow(ready.connection_window)


def connection_error(error: ProtocolError) -> Error:
    """The ERROR frame that reports ``error`` to the peer before closing (what ``fail`` sends)."""
    return Error(NO_STREAM, str(error.code), str(error)[:MAX_ERROR_MESSAGE], False)
