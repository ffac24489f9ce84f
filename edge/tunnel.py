"""The agent side of the edge: the WebSocket endpoint, login, and one session per connected machine.

A session owns one ``protocol.Connection``. Its read loop feeds every message into the connection
and routes stream frames to the ``TunnelStream`` a request handler is reading; a single writer task
flushes ``data_to_send()`` so frames leave in the order they were made. A heartbeat task pings and
closes the link three intervals after the last frame heard (PROTOCOL.md §9).

A machine is a tenant's, but the edge is everyone's, so nothing a machine sends may grow the edge
without bound: what a stream buffers is bytes within its credit (``edge.stream_buffer``), a write
that the machine does not read within two heartbeat intervals drops its link, and MODELS frames
are rate-limited per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import WSCloseCode, WSMsgType, web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.errors import ApiError
from edge.registry import Registry
from edge.store import Machine, Store
from edge.stream_buffer import PendingDeltas
from protocol import (
    NO_STREAM,
    SUPPORTED_VERSIONS,
    Auth,
    Cancel,
    Challenge,
    Connection,
    Delta,
    Embeddings,
    End,
    Error,
    ErrorCode,
    Frame,
    FrameTooLarge,
    GoAway,
    Hello,
    LocalProtocolError,
    Models,
    Open,
    Ping,
    ProtocolError,
    Ready,
    RemoteProtocolError,
    Role,
    State,
    auth_message,
    connection_error,
)
from protocol.codec import AGENT_MAX_RECEIVE_FRAME
from protocol.frames import MAX_TIMEOUT
from protocol.liveness import Liveness, Verdict
from protocol.mux import FLOW_CONTROLLED
from protocol.requests import Request

log = logging.getLogger(__name__)

WRITE_TIMEOUT_INTERVALS = 2  # heartbeat intervals one write may take before the link is dropped
MODELS_BURST = 5  # MODELS frames a connection may send at once …
MODELS_REFILL = 2.0  # … and then one per this many seconds

StreamEvent = Delta | Embeddings | End | Error
TextEvent = Delta | End | Error  # what the text dialects read


def as_text(event: StreamEvent) -> TextEvent:
    """A text dialect's view of an event: embeddings on a text request mean a confused agent,
    which the client learns as a backend error rather than a reply that stops."""
    if isinstance(event, Embeddings):
        message = "the machine answered a text request with embeddings"
        return Error(event.stream_id, "backend_error", message, False)
    return event


F = TypeVar("F", bound=Frame)


@dataclass(frozen=True, slots=True)
class TunnelLimits:
    """What the edge imposes on every agent connection; sent in READY (PROTOCOL.md §4)."""

    max_frame: int = 1024 * 1024
    stream_window: int = 256 * 1024
    connection_window: int = 8 * 1024 * 1024
    heartbeat_interval: float = 5.0
    handshake_timeout: float = 10.0


class TunnelStream:
    """One request's view of its stream: events in arrival order, credit given back as read.

    Consecutive DELTAs the reader has not taken yet are merged into one ``PendingDeltas``, so
    a stream holds at most its window in bytes however many frames carried them (§8)."""

    def __init__(self, session: AgentSession, stream_id: int) -> None:
        self.session = session
        self.stream_id = stream_id
        self.finished = False
        self.buffered = 0  # bytes received, not yet read: at most the window (§8)
        self.observer: Callable[[StreamEvent], None] | None = None  # sees each event read
        self._events: deque[PendingDeltas | Embeddings | End | Error] = deque()
        self._arrived = asyncio.Event()

    def deliver(self, frame: StreamEvent) -> None:
        if isinstance(frame, Delta):
            pending = self._events[-1] if self._events else None
            if not isinstance(pending, PendingDeltas):
                pending = PendingDeltas()
                self._events.append(pending)
            self.buffered += pending.add(frame)
        else:
            if isinstance(frame, Embeddings):
                self.buffered += frame.flow_size
            self._events.append(frame)
        self._arrived.set()

    async def next(self) -> StreamEvent:
        """The next DELTA (every DELTA received since the last read, merged), EMBEDDINGS, END or
        ERROR. Credit for what it carries is returned once the caller has it."""
        while not self._events:
            self._arrived.clear()
            await self._arrived.wait()
        event = self._take(self._events.popleft())
        if not isinstance(event, FLOW_CONTROLLED):
            self.finished = True
        if self.observer is not None:
            self.observer(event)
        return event

    async def next_text(self) -> TextEvent:
        return as_text(await self.next())

    def expire(self, code: str, message: str) -> None:
        """The edge's deadline for the stream passed: its reader learns why (the audit files
        the request under ``code``), and the machine is told to stop."""
        if self.observer is not None:
            self.observer(Error(self.stream_id, code, message, False))
        self.close("deadline")

    def close(self, reason: str = "client_closed") -> None:
        """Stop the stream if it is still running (CANCEL), and hand back unread credit."""
        self.session.forget(self, reason if not self.finished else None)
        while self._events:
            self._take(self._events.popleft())
        self.finished = True

    def _take(self, item: PendingDeltas | Embeddings | End | Error) -> StreamEvent:
        """``item`` as the reader sees it; its bytes are read now, so their credit goes back."""
        if isinstance(item, PendingDeltas):
            event: StreamEvent = item.take(self.stream_id)
            size = item.size
        else:
            event = item
            size = item.flow_size if isinstance(item, Embeddings) else 0
        if size:
            self.buffered -= size
            self.session.consumed(self.stream_id, size)
        return event


class AgentSession:
    """A logged-in machine: routable through the registry until its connection ends."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        conn: Connection,
        machine: Machine,
        hello: Hello,
        registry: Registry,
        limits: TunnelLimits,
        transport: asyncio.Transport | None = None,
    ) -> None:
        self.ws = ws
        self.conn = conn
        self.machine_id = machine.id
        self.machine_name = machine.name
        self.tenant_id = machine.tenant_id
        self.agent_version = hello.agent_version
        self.max_concurrency = hello.max_concurrency
        self.models = _index_models(hello.models)
        self.connected_at = time.time()
        self.rtt: float | None = None
        self._registry = registry
        self._limits = limits
        self._transport = transport
        self._streams: dict[int, TunnelStream] = {}
        self._wake = asyncio.Event()
        self._draining = False
        now = asyncio.get_running_loop().time()
        self._liveness = Liveness(limits.heartbeat_interval, now)
        self._models_budget = ModelsBudget(now)

    # ------------------------------------------------------------------ routing surface

    @property
    def in_flight(self) -> int:
        return len(self._streams)

    @property
    def accepting(self) -> bool:
        return not self._draining and self.conn.state is State.OPEN

    def open_stream(self, request: Request, timeout: float) -> TunnelStream:
        """Start a stream (in the slot a ``registry.Lease`` held for it). ``ApiError`` 400 when
        the request holds what the tunnel cannot carry (PROTOCOL.md §2: JSON only)."""
        stream_id = self.conn.next_stream_id()
        # The agent's deadline; the edge keeps its own. A week is OPEN's bound (PROTOCOL.md §2).
        frame = Open(stream_id, request, min(timeout, MAX_TIMEOUT))
        try:
            self.conn.send(frame)
        except LocalProtocolError as exc:
            raise ApiError(400, "invalid_request", f"the request cannot be sent: {exc}") from None
        stream = TunnelStream(self, stream_id)
        self._streams[stream_id] = stream
        self._wake.set()
        return stream

    def consumed(self, stream_id: int, size: int) -> None:
        if self.conn.state in (State.OPEN, State.DRAINING):
            self.conn.consumed(stream_id, size)
            self._wake.set()

    def forget(self, stream: TunnelStream, cancel_reason: str | None) -> None:
        if self._streams.pop(stream.stream_id, None) is None:
            return
        if cancel_reason and self.conn.is_active(stream.stream_id):
            self.conn.send(Cancel(stream.stream_id, cancel_reason))
            self._wake.set()
        self._registry.notify(self.tenant_id)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve the connection until it ends; every open stream then ends with an error."""
        replaced = self._registry.add(self)
        if replaced is not None:
            await replaced.close(ErrorCode.PROTOCOL_ERROR, "replaced by a newer connection")
        writer = asyncio.create_task(self._write_loop())
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        reason = "the machine disconnected"
        close_code = WSCloseCode.OK
        try:
            reason = await self._read_loop()
        except RemoteProtocolError as exc:
            log.warning("machine %s broke the protocol: %s", self.machine_id, exc)
            reason = f"the machine broke the tunnel protocol: {exc}"
            close_code = (
                WSCloseCode.MESSAGE_TOO_BIG
                if isinstance(exc, FrameTooLarge)
                else WSCloseCode.PROTOCOL_ERROR
            )
            self._send_final(connection_error(exc))
            await self._flush()
        finally:
            self._registry.remove(self)
            heartbeat.cancel()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            self._fail_streams(reason)
            await self.ws.close(code=close_code)

    async def close(self, code: ErrorCode, message: str) -> None:
        """End the connection now (revocation, replacement, shutdown)."""
        self._send_final(Error(NO_STREAM, str(code), message, False))
        await self._flush()
        await self.ws.close(code=1008 if code is ErrorCode.MACHINE_REVOKED else 1000)

    def goaway(self, reason: str) -> None:
        if self.conn.state is State.OPEN:
            self.conn.send(GoAway(reason))
            self._draining = True
            self._wake.set()

    async def _read_loop(self) -> str:
        async for message in self.ws:
            if message.type is not WSMsgType.BINARY:
                raise RemoteProtocolError(f"unexpected WebSocket {message.type.name} message")
            self._liveness.heard(asyncio.get_running_loop().time())
            frame = self.conn.receive(message.data)
            if frame is not None:
                self._dispatch(frame)
            self._wake.set()
            if self.conn.state is State.CLOSED:
                return "the machine closed the tunnel"
        return "the machine disconnected"

    def _dispatch(self, frame: Frame) -> None:
        if isinstance(frame, (Delta, Embeddings, End, Error)) and frame.stream_id != NO_STREAM:
            stream = self._streams.get(frame.stream_id)
            if stream is not None:
                stream.deliver(frame)
                if not isinstance(frame, FLOW_CONTROLLED):
                    del self._streams[frame.stream_id]
                    self._registry.notify(self.tenant_id)
        elif isinstance(frame, Error):
            log.warning(
                "machine %s closed the tunnel: %s %s", self.machine_id, frame.code, frame.message
            )
        elif isinstance(frame, Models):
            self._models_budget.spend(asyncio.get_running_loop().time())
            self.models = _index_models(frame.models)
            self._registry.notify(self.tenant_id)
        elif isinstance(frame, GoAway):
            self._draining = True
            self._registry.notify(self.tenant_id)
        elif isinstance(frame, Ping):
            pass  # the connection queued the PONG
        else:  # Pong
            self.rtt = (time.monotonic_ns() - getattr(frame, "payload", 0)) / 1e9

    def _fail_streams(self, reason: str) -> None:
        for stream_id, stream in list(self._streams.items()):
            stream.deliver(Error(stream_id, str(ErrorCode.BACKEND_UNAVAILABLE), reason, True))
        self._streams.clear()

    def _send_final(self, frame: Error) -> None:
        if self.conn.state is not State.CLOSED:
            self.conn.send(frame)

    async def _flush(self) -> None:
        """Write what is queued, as the last thing before closing; a machine that does not read
        it within the write bound is dropped instead (§9)."""
        try:
            await self._write(self.conn.data_to_send())
        except TimeoutError:
            self._drop("a final write did not finish")
        except (ConnectionError, RuntimeError):
            pass

    async def _write(self, batch: list[bytes]) -> None:
        """Write ``batch`` in order; ``TimeoutError`` when one write takes longer than the
        bound: the machine stopped reading, and its frames would pile up in the edge (§9)."""
        loop = asyncio.get_running_loop()
        bound = WRITE_TIMEOUT_INTERVALS * self._limits.heartbeat_interval
        # One timer for the batch, moved on at each write: each write gets the whole bound.
        async with asyncio.timeout(None) as write_deadline:
            for data in batch:
                write_deadline.reschedule(loop.time() + bound)
                await self.ws.send_bytes(data)

    def _drop(self, why: str) -> None:
        """Cut the connection without a close handshake: the machine is not reading, so a
        handshake would only wait for it."""
        bound = WRITE_TIMEOUT_INTERVALS * self._limits.heartbeat_interval
        log.warning("machine %s: %s in %g s; dropping the link", self.machine_id, why, bound)
        if self._transport is not None:
            self._transport.abort()

    async def _write_loop(self) -> None:
        # The only writer once the session runs, so frames leave in the order they were made.
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                await self._write(self.conn.data_to_send())
        except TimeoutError:
            self._drop("a write did not finish")
        except (ConnectionError, RuntimeError) as exc:
            # Without a writer the session is mute: end it now rather than at the heartbeat.
            log.info("machine %s: writing failed: %s", self.machine_id, exc)
            await self.ws.close()

    async def _heartbeat_loop(self) -> None:
        # Wakes at each heartbeat tick (to PING) and at the deadline, whichever is first (§9).
        interval = self._limits.heartbeat_interval
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.0, self._liveness.next_wake() - loop.time()))
            now = loop.time()
            verdict = self._liveness.check(now)
            if verdict is Verdict.DEAD:
                silent = self._liveness.silence(now)
                log.warning("machine %s: no frame for %.2f s; closing", self.machine_id, silent)
                # Fail the streams first: the close handshake itself may hang on a dead link.
                self._registry.remove(self)
                self._fail_streams(f"the machine stopped answering for {3 * interval:g} s")
                await self.close(ErrorCode.HEARTBEAT_TIMEOUT, f"no frame for {3 * interval:g} s")
                return
            if verdict is Verdict.TICK and self.conn.state in (State.OPEN, State.DRAINING):
                self.conn.send(Ping(time.monotonic_ns()))
                self._wake.set()


def _index_models(models: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {model["name"]: model for model in models}


class ModelsBudget:
    """How many MODELS frames a connection may still send: a token bucket of ``MODELS_BURST``,
    one token back every ``MODELS_REFILL`` seconds. Each MODELS replaces the machine's model
    list and wakes the tenant's waiting requests; an agent sends one when Ollama's list changes
    (it looks every 30 s), so a flood is a broken or hostile agent (PROTOCOL.md §5)."""

    __slots__ = ("tokens", "updated")

    def __init__(self, now: float) -> None:
        self.tokens = float(MODELS_BURST)
        self.updated = now

    def spend(self, now: float) -> None:
        """Take one token; ``RemoteProtocolError`` naming the limit when there is none."""
        self.tokens = min(MODELS_BURST, self.tokens + (now - self.updated) / MODELS_REFILL)
        self.updated = now
        if self.tokens < 1:
            raise RemoteProtocolError(
                f"too many MODELS frames: at most {MODELS_BURST} at once, then one per"
                f" {MODELS_REFILL:g} s"
            )
        self.tokens -= 1


async def accept_agent(
    request: web.Request, store: Store, registry: Registry, limits: TunnelLimits
) -> web.WebSocketResponse:
    """``GET /agent/connect``: log the machine in (CHALLENGE/AUTH), then serve its session."""
    # timeout: how long a close handshake may take before the socket is dropped.
    # max_msg_size: aiohttp refuses a message whose size *equals* its limit, and closes (1009)
    # before the edge can say why. +1 admits a frame of exactly max_frame, as PROTOCOL.md §4
    # promises; one more byte lets a message one byte over reach the codec, which refuses it
    # with ERROR frame_too_large. Anything larger is cut by aiohttp, unbuffered, with 1009.
    ws = web.WebSocketResponse(max_msg_size=limits.max_frame + 2, compress=False, timeout=2.0)
    await ws.prepare(request)
    conn = Connection(
        Role.EDGE, max_receive_frame=limits.max_frame, max_send_frame=AGENT_MAX_RECEIVE_FRAME
    )
    try:
        async with asyncio.timeout(limits.handshake_timeout):
            machine, hello = await _login(ws, conn, request.host, store, limits)
    except (ProtocolError, TimeoutError, LoginRefused) as exc:
        code = (
            exc.code if isinstance(exc, (ProtocolError, LoginRefused)) else ErrorCode.PROTOCOL_ERROR
        )
        message = str(exc) or "login timed out"
        log.info("agent login from %s refused: %s", request.remote, message)
        if conn.state is not State.CLOSED:
            conn.send(Error(NO_STREAM, str(code), message, False))
        with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
            async with asyncio.timeout(limits.handshake_timeout):
                for data in conn.data_to_send():
                    await ws.send_bytes(data)
        await ws.close(code=WSCloseCode.POLICY_VIOLATION)
        return ws
    session = AgentSession(ws, conn, machine, hello, registry, limits, request.transport)
    log.info("machine %s (%s) online with %d models", machine.name, machine.id, len(session.models))
    await session.run()
    log.info("machine %s (%s) offline", machine.name, machine.id)
    return ws


class LoginRefused(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


async def _login(
    ws: web.WebSocketResponse, conn: Connection, edge_host: str, store: Store, limits: TunnelLimits
) -> tuple[Machine, Hello]:
    nonce = secrets.token_bytes(32)
    conn.send(Challenge(nonce, edge_host, list(SUPPORTED_VERSIONS)))
    for data in conn.data_to_send():
        await ws.send_bytes(data)
    auth = await _receive(ws, conn, Auth)
    if auth.version not in SUPPORTED_VERSIONS:
        raise LoginRefused(ErrorCode.UNSUPPORTED_VERSION, f"protocol version {auth.version}")
    found = await store.machines.by_id(auth.machine_id)
    machine = found if found is not None and found.revoked_at is None else None
    # One answer, and the same work, whether the machine is unknown, revoked or the signature
    # wrong: neither the words nor the time may tell which machine ids exist (§3).
    public_key = machine.public_key if machine is not None else _UNKNOWN_MACHINE_KEY
    signed = auth_message(nonce, edge_host, auth.version)
    if not verify_signature(public_key, auth.signature, signed) or machine is None:
        raise LoginRefused(ErrorCode.AUTH_FAILED, AUTH_FAILED_MESSAGE)
    conn.send(
        Ready(
            secrets.token_hex(8),
            limits.max_frame,
            limits.stream_window,
            limits.connection_window,
            limits.heartbeat_interval,
        )
    )
    for data in conn.data_to_send():
        await ws.send_bytes(data)
    hello = await _receive(ws, conn, Hello)
    return machine, hello


AUTH_FAILED_MESSAGE = "unknown machine, revoked machine or bad signature"
# Verified against when the machine id is unknown, so that refusing it costs what refusing a bad
# signature costs. Nobody holds its private key: it is thrown away at once.
_UNKNOWN_MACHINE_KEY = Ed25519PrivateKey.generate().public_key().public_bytes_raw()


def verify_signature(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Whether ``signature`` over ``message`` verifies with the raw Ed25519 ``public_key``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


async def _receive(ws: web.WebSocketResponse, conn: Connection, kind: type[F]) -> F:
    message = await ws.receive()
    if message.type is not WSMsgType.BINARY:
        raise RemoteProtocolError(f"expected {kind.__name__}, got a WebSocket {message.type.name}")
    frame = conn.receive(message.data)
    if not isinstance(frame, kind):
        raise RemoteProtocolError(f"expected {kind.__name__}, got {type(frame).__name__}")
    return frame
