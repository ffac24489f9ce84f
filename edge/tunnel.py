"""The agent side of the edge: the WebSocket endpoint, login, and one session per connected machine.

A session owns one ``protocol.Connection``. Its read loop feeds every message into the connection
and routes stream frames to the ``TunnelStream`` a request handler is reading; a single writer task
flushes ``data_to_send()`` so frames leave in the order they were made. A heartbeat task pings and
closes the link when nothing has arrived for three intervals (PROTOCOL.md §9).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import WSMsgType, web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.registry import Registry
from edge.store import Machine, Store
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
    GoAway,
    Hello,
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
from protocol.liveness import Liveness
from protocol.mux import FLOW_CONTROLLED

log = logging.getLogger(__name__)

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
    """One request's view of its stream: frames in arrival order, and credit given back as read."""

    def __init__(self, session: AgentSession, stream_id: int) -> None:
        self.session = session
        self.stream_id = stream_id
        self.finished = False
        self.buffered = 0  # text bytes received, not yet read: at most the window (§8)
        self.observer: Callable[[StreamEvent], None] | None = None  # sees each event read
        self._queue: asyncio.Queue[StreamEvent] = asyncio.Queue()

    def deliver(self, frame: StreamEvent) -> None:
        if isinstance(frame, FLOW_CONTROLLED):
            self.buffered += frame.flow_size
        self._queue.put_nowait(frame)

    async def next(self) -> StreamEvent:
        """The next DELTA, END or ERROR. Credit for a DELTA is returned once the caller has it."""
        frame = await self._queue.get()
        if isinstance(frame, FLOW_CONTROLLED):
            self.buffered -= frame.flow_size
            self.session.consumed(self.stream_id, frame.flow_size)
        else:
            self.finished = True
        if self.observer is not None:
            self.observer(frame)
        return frame

    async def next_text(self) -> TextEvent:
        return as_text(await self.next())

    def close(self, reason: str = "client_closed") -> None:
        """Stop the stream if it is still running (CANCEL), and hand back unread credit."""
        self.session.forget(self, reason if not self.finished else None)
        while not self._queue.empty():
            frame = self._queue.get_nowait()
            if isinstance(frame, FLOW_CONTROLLED):
                self.buffered -= frame.flow_size
                self.session.consumed(self.stream_id, frame.flow_size)
        self.finished = True


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
        self.reserved = 0  # slots granted by the registry whose stream is not open yet
        self._registry = registry
        self._limits = limits
        self._streams: dict[int, TunnelStream] = {}
        self._wake = asyncio.Event()
        self._draining = False
        self._liveness = Liveness(limits.heartbeat_interval, asyncio.get_running_loop().time())

    # ------------------------------------------------------------------ routing surface

    @property
    def in_flight(self) -> int:
        return len(self._streams)

    @property
    def accepting(self) -> bool:
        return not self._draining and self.conn.state is State.OPEN

    def open_stream(self, request: dict[str, Any], timeout: float) -> TunnelStream:
        """Start a stream on the slot ``Registry.acquire`` reserved for it."""
        self.reserved -= 1
        stream_id = self.conn.next_stream_id()
        self.conn.send(Open(stream_id, request, timeout))
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
        self._registry.notify()

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve the connection until it ends; every open stream then ends with an error."""
        replaced = self._registry.add(self)
        if replaced is not None:
            await replaced.close(ErrorCode.PROTOCOL_ERROR, "replaced by a newer connection")
        writer = asyncio.create_task(self._write_loop())
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        reason = "the machine disconnected"
        try:
            reason = await self._read_loop()
        except RemoteProtocolError as exc:
            log.warning("machine %s broke the protocol: %s", self.machine_id, exc)
            reason = f"the machine broke the tunnel protocol: {exc}"
            self._send_final(connection_error(exc))
            await self._flush()
        finally:
            self._registry.remove(self)
            heartbeat.cancel()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
            self._fail_streams(reason)
            await self.ws.close(code=1002 if "protocol" in reason else 1000)

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
                    self._registry.notify()
        elif isinstance(frame, Error):
            log.warning(
                "machine %s closed the tunnel: %s %s", self.machine_id, frame.code, frame.message
            )
        elif isinstance(frame, Models):
            self.models = _index_models(frame.models)
            self._registry.notify()
        elif isinstance(frame, Hello):
            self.max_concurrency = frame.max_concurrency
            self.models = _index_models(frame.models)
            self._registry.notify()
        elif isinstance(frame, GoAway):
            self._draining = True
            self._registry.notify()
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
        with contextlib.suppress(ConnectionError, RuntimeError):
            for data in self.conn.data_to_send():
                await self.ws.send_bytes(data)

    async def _write_loop(self) -> None:
        # The only writer once the session runs, so frames leave in the order they were made.
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                for data in self.conn.data_to_send():
                    await self.ws.send_bytes(data)
        except (ConnectionError, RuntimeError) as exc:
            # Without a writer the session is mute: end it now rather than at the heartbeat.
            log.info("machine %s: writing failed: %s", self.machine_id, exc)
            await self.ws.close()

    async def _heartbeat_loop(self) -> None:
        interval = self._limits.heartbeat_interval
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            if self._liveness.expired(loop.time()):
                log.warning("machine %s missed its heartbeats; closing", self.machine_id)
                # Fail the streams first: the close handshake itself may hang on a dead link.
                self._registry.remove(self)
                self._fail_streams(f"the machine stopped answering for {3 * interval:g} s")
                await self.close(ErrorCode.HEARTBEAT_TIMEOUT, f"no frame for {3 * interval:g} s")
                return
            if self.conn.state is State.OPEN or self.conn.state is State.DRAINING:
                self.conn.send(Ping(time.monotonic_ns()))
                self._wake.set()


def _index_models(models: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {model["name"]: model for model in models}


async def accept_agent(
    request: web.Request, store: Store, registry: Registry, limits: TunnelLimits
) -> web.WebSocketResponse:
    """``GET /agent/connect``: log the machine in (CHALLENGE/AUTH), then serve its session."""
    # timeout: how long a close handshake may take before the socket is dropped.
    ws = web.WebSocketResponse(max_msg_size=limits.max_frame, compress=False, timeout=2.0)
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
        with contextlib.suppress(ConnectionError, RuntimeError):
            for data in conn.data_to_send():
                await ws.send_bytes(data)
        await ws.close(code=1008)
        return ws
    session = AgentSession(ws, conn, machine, hello, registry, limits)
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
    machine = await store.machines.by_id(auth.machine_id)
    if machine is None or machine.revoked_at is not None:
        # Same answer for unknown and revoked: do not reveal which machine ids exist.
        raise LoginRefused(ErrorCode.AUTH_FAILED, "unknown or revoked machine")
    try:
        key = Ed25519PublicKey.from_public_bytes(machine.public_key)
        key.verify(auth.signature, auth_message(nonce, edge_host, auth.version))
    except (InvalidSignature, ValueError):
        raise LoginRefused(ErrorCode.AUTH_FAILED, "signature does not verify") from None
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


async def _receive(ws: web.WebSocketResponse, conn: Connection, kind: type[F]) -> F:
    message = await ws.receive()
    if message.type is not WSMsgType.BINARY:
        raise RemoteProtocolError(f"expected {kind.__name__}, got a WebSocket {message.type.name}")
    frame = conn.receive(message.data)
    if not isinstance(frame, kind):
        raise RemoteProtocolError(f"expected {kind.__name__}, got {type(frame).__name__}")
    return frame
