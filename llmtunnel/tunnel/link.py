"""A logged-in tunnel connection served over a ``Transport``: the one asyncio loop both ends run.

Theory of operation. ``run()`` reads: each binary message goes to ``Connection.receive``, and the
frame to ``frame_received``, which the edge's and the agent's sessions implement (PING and PONG
are handled here: the connection queues the PONG itself, and a PONG gives the round-trip time).
A single writer task is the only thing that writes, so frames leave in the order they were made:
woken by ``wake()``, it lets the subclass turn pending output into frames (``prepare_frames``),
then writes ``data_to_send()``, each write bounded by two heartbeat intervals: a peer that stops
reading is dropped at once rather than let its frames pile up here (PROTOCOL.md §9). A watchdog
task sleeps until the next heartbeat or the liveness deadline (``protocol.liveness``), whichever
is first: at each heartbeat the edge sends PING; three intervals after the last frame heard the
link is dead.

However the link ends, ``link_lost(reason, error)`` runs exactly once, first, so that its
streams end (and the failure is logged) at once rather than after a close handshake; then the
writer flushes what is queued (a final ERROR included) and stops; then the transport is closed,
or cut where a handshake would only wait for a peer that is not there. ``run()`` then returns if
the peer simply went away, raises ``ClosedByPeer`` if it sent ERROR on stream 0, and raises the
``RemoteProtocolError`` if it broke the protocol, after telling it why with ``Connection.fail``
(WebSocket close 1002, or 1009 for a frame too large, §4). ``close()`` ends the link from this
side, from any task, any number of times, even before ``run()``: everything still goes out
through the one writer.

What a link moves is counted in a ``Traffic`` (``protocol.traffic``), which many links may share:
its connection counts the frames, the read loop and the writer the messages and their bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any, ClassVar

from llmtunnel.tunnel.transport import Transport, send_all
from protocol.errors import (
    ClosedByPeer,
    ErrorCode,
    FrameTooLarge,
    ProtocolError,
    RemoteProtocolError,
)
from protocol.frames import NO_STREAM, Error, Frame, Ping, Pong
from protocol.liveness import SILENT_INTERVALS, Liveness, Verdict
from protocol.mux import Connection, Role, State
from protocol.traffic import Traffic

WRITE_TIMEOUT_INTERVALS = 2  # heartbeat intervals one write may take before the link is dropped
# WebSocket close codes (RFC 6455 §7.4.1).
NORMAL = 1000
PROTOCOL_VIOLATION = 1002
POLICY_VIOLATION = 1008  # a machine refused: its key is wrong, or it was revoked
MESSAGE_TOO_BIG = 1009
_REFUSED = frozenset({ErrorCode.AUTH_FAILED, ErrorCode.MACHINE_REVOKED})
_LIVE = (State.OPEN, State.DRAINING)


class Link:
    """One logged-in connection (see the module docstring). Subclasses implement the hooks."""

    PEER: ClassVar[str] = "the peer"  # who is at the other end, in the reasons streams end with
    log: ClassVar[logging.Logger] = logging.getLogger(__name__)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.log = logging.getLogger(cls.__module__)  # a session logs as the end it serves

    def __init__(
        self,
        transport: Transport,
        conn: Connection,
        heartbeat_interval: float,
        traffic: Traffic | None = None,
    ) -> None:
        self.transport = transport
        self.conn = conn
        self.traffic = traffic if traffic is not None else Traffic()
        conn.traffic = self.traffic  # from now on: the login's frames are not counted
        self.heartbeat_interval = heartbeat_interval
        self.write_bound = WRITE_TIMEOUT_INTERVALS * heartbeat_interval
        self.rtt: float | None = None  # seconds, from the last PONG to this side's PING
        self._liveness = Liveness(heartbeat_interval, asyncio.get_running_loop().time())
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._stopping = False  # the writer flushes once more, then stops
        self._aborted = False
        self._lost = False
        self._closer: asyncio.Future[None] | None = None

    @property
    def log_name(self) -> str:
        """Who is at the other end, in log lines."""
        return self.PEER

    # ------------------------------------------------------------------ what subclasses do

    def frame_received(self, frame: Frame) -> None:
        """A frame from the peer: anything but PING, PONG and ERROR on stream 0."""

    def prepare_frames(self) -> None:
        """Before each write: queue on ``conn`` the output waiting to go (as credit allows)."""

    def link_lost(self, reason: str, error: ProtocolError | None) -> None:
        """The link ended: called once, first. ``reason`` says how, for the streams on it;
        ``error`` is why, when the peer broke the protocol or closed it with ERROR."""

    def background(self) -> list[Coroutine[Any, Any, None]]:
        """More tasks to run for as long as the link does; cancelled when it ends."""
        return []

    # ------------------------------------------------------------------ the public surface

    def wake(self) -> None:
        """Something was queued on ``conn``: the writer sends it."""
        self._wake.set()

    async def run(self) -> None:
        """Serve the link until it ends (see the module docstring for how it ends)."""
        if self._writer is None:  # close() may have started it already
            self._writer = asyncio.create_task(self._write_loop())
        helpers = [self._writer, asyncio.create_task(self._watchdog())]
        helpers += [asyncio.create_task(work) for work in self.background()]
        reason, ws_code = f"{self.PEER} disconnected", NORMAL
        error: ProtocolError | None = None
        try:
            await self._read_loop()
        except ClosedByPeer as exc:
            reason, error = f"{self.PEER} closed the tunnel", exc
            raise
        except RemoteProtocolError as exc:
            reason, error = f"{self.PEER} broke the tunnel protocol: {exc}", exc
            ws_code = MESSAGE_TOO_BIG if isinstance(exc, FrameTooLarge) else PROTOCOL_VIOLATION
            self.conn.fail(exc)
            raise
        finally:
            try:
                self._lose(reason, error)
                await self._shutdown(ws_code)
            finally:
                for task in helpers:
                    task.cancel()
                await asyncio.gather(*helpers, return_exceptions=True)

    async def close(
        self, code: ErrorCode | None = None, message: str = "", *, ws_code: int | None = None
    ) -> None:
        """End the link from this side: ERROR on stream 0 with ``code`` and ``message`` if given
        (§6), everything queued flushed in order, then the closing handshake with ``ws_code``
        (by default 1008 for a machine refused, ``auth_failed`` or ``machine_revoked``, else
        1000). Returns once closed; a second call waits for the first."""
        if code is not None:
            self.conn.close(code, message)
        self._lose(
            f"the tunnel was closed: {message}" if message else "the tunnel was closed", None
        )
        if ws_code is None:
            ws_code = POLICY_VIOLATION if code in _REFUSED else NORMAL
        await self._shutdown(ws_code)

    # ------------------------------------------------------------------ reading

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        traffic = self.traffic
        while (data := await self.transport.recv()) is not None:
            traffic.messages_received += 1
            traffic.bytes_received += len(data)
            self._liveness.heard(loop.time())
            if self.conn.state is State.CLOSED:
                continue  # this side closed it: what still arrives was in flight
            for frame in self.conn.receive_message(data):
                if isinstance(frame, Error) and frame.stream_id == NO_STREAM:
                    raise ClosedByPeer(frame.code, frame.message)
                if isinstance(frame, Pong):
                    self.rtt = (time.monotonic_ns() - frame.payload) / 1e9
                elif not isinstance(frame, Ping):
                    self.frame_received(frame)
            self._wake.set()  # the connection may have queued a PONG or a WINDOW

    # ------------------------------------------------------------------ writing

    async def _write_loop(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                stopping = self._stopping  # read first: all queued before the stop goes now
                if not stopping and self.conn.state is not State.CLOSED:
                    self.prepare_frames()
                batch = self.conn.data_to_send()
                self.traffic.messages_sent += len(batch)
                self.traffic.bytes_sent += sum(map(len, batch))
                await send_all(self.transport, batch, self.write_bound)
                if stopping:
                    return
        except TimeoutError:
            # The peer stopped reading (§9): waiting longer would only pile frames up here.
            self.log.warning(
                "a write to %s did not finish in %g s; dropping the link",
                self.log_name,
                self.write_bound,
            )
            self._abort()
        except ConnectionError as exc:
            self.log.info("writing to %s failed: %s", self.log_name, exc)
            self._abort()
        except Exception:
            # Without a writer the link is mute: cut it, so that the read loop ends now.
            self.log.exception("the tunnel writer to %s failed", self.log_name)
            self._abort()

    # ------------------------------------------------------------------ liveness (§9)

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.0, self._liveness.next_wake() - loop.time()))
            now = loop.time()
            verdict = self._liveness.check(now)
            if verdict is Verdict.DEAD:
                await self._dead(self._liveness.silence(now))
                return
            if verdict is Verdict.TICK and self.conn.role is Role.EDGE and self.conn.state in _LIVE:
                self.conn.send(Ping(time.monotonic_ns()))
                self._wake.set()

    async def _dead(self, silence: float) -> None:
        window = f"{SILENT_INTERVALS * self.heartbeat_interval:g} s"
        self.log.warning("no frame from %s for %.2f s; closing", self.log_name, silence)
        # The streams end first: even the last write may wait on a dead link.
        self._lose(f"{self.PEER} stopped answering for {window}", None)
        self.conn.close(ErrorCode.HEARTBEAT_TIMEOUT, f"no frame for {window}")
        await self._shutdown(NORMAL, handshake=False)

    # ------------------------------------------------------------------ ending

    def _lose(self, reason: str, error: ProtocolError | None) -> None:
        if not self._lost:
            self._lost = True
            self.link_lost(reason, error)

    async def _shutdown(self, ws_code: int, *, handshake: bool = True) -> None:
        # Shielded: a caller cancelled midway (the watchdog, when run() ends) must not leave
        # the transport half closed; run() waits for the same close.
        if self._closer is None:
            self._closer = asyncio.ensure_future(self._close_transport(ws_code, handshake))
        await asyncio.shield(self._closer)

    async def _close_transport(self, ws_code: int, handshake: bool) -> None:
        self._stopping = True
        self._wake.set()
        if self._writer is None:  # closed before run(): the writer flushes all the same
            self._writer = asyncio.create_task(self._write_loop())
        await asyncio.wait([self._writer])
        if self._aborted:
            return
        if handshake:
            await self.transport.close(ws_code)
        else:
            self._abort()

    def _abort(self) -> None:
        self._aborted = True
        self.transport.abort()
