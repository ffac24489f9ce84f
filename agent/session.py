"""One logged-in tunnel on the agent: serve the edge's streams until the link ends.

The session is a ``llmtunnel.tunnel.Link`` (the read loop, the single writer, the watchdog, bounded
writes and closing are shared with the edge); what is the agent's own is here. Every OPEN
becomes a task that runs the backend call and appends its output to the stream's ``Outgoing``
buffer; before each write the writer turns buffers into DELTA and EMBEDDINGS frames as credit
allows (``prepare_frames``), so tokens that pile up while it waits leave together. A buffer that
outgrows the stream window pauses its task, so a slow client stops the agent reading from Ollama
instead of filling memory (PROTOCOL.md §8). The agent answers the edge's PINGs and drops a link
it has not heard from for three intervals, or that does not take a write within two (§9).

On ``stop`` the session drains (§10): GOAWAY, no new streams, the running ones finish (within
the drain timeout), then the WebSocket closes with 1001.

The session also watches the backend (§5): it lists the models every ``model_refresh`` seconds
(every ``UNHEALTHY_POLL`` while the backend does not answer, and at once after a request finds it
unreachable), sends MODELS when the list changes and HEALTH when the backend stops or starts
answering, so the edge stops routing to a machine whose runtime is down.

Each stream's task names its stream for the log (``agent.log_fields``: the edge's request id
from OPEN, PROTOCOL.md §2), logs how a stream that failed ended, and tells the metrics, when
there are any (``agent.metrics``), of the backend's first output and the stream's end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from agent.backend import Backend, BackendError, Finish, Piece, Vectors
from agent.gate import Gate
from agent.log_fields import serving
from agent.outgoing import Outgoing
from llmtunnel.tunnel import Link, Transport
from protocol import (
    NO_STREAM,
    Cancel,
    Connection,
    End,
    Error,
    ErrorCode,
    Frame,
    GoAway,
    Health,
    Models,
    Nodes,
    Open,
    ProtocolError,
    State,
    Window,
)
from protocol.frames import MAX_HEALTH_REASON, tool_call_size
from protocol.requests import Request, UnsupportedRequest

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics

log = logging.getLogger(__name__)

GOING_AWAY = 1001  # the WebSocket close code of an agent shutting down (§10)
# Seconds between backend checks while it is down, and at least between any two checks: a check
# sends at most one MODELS and one HEALTH, and the edge takes one of each per 2 s (§5).
UNHEALTHY_POLL = 2.0


class TunnelSession(Link):
    """Serves one logged-in connection. ``run()`` returns or raises when the link ends."""

    PEER = "the edge"

    def __init__(
        self,
        transport: Transport,
        conn: Connection,
        backend: Backend,
        max_concurrency: int,
        heartbeat_interval: float,
        models: list[dict[str, Any]],
        model_refresh: float,
        stop: asyncio.Event | None = None,
        drain_timeout: float = 30.0,
        backend_down: str | None = None,
        metrics: AgentMetrics | None = None,
        gate: Gate | None = None,
        on_nodes: Callable[[Nodes], None] | None = None,
        on_goaway: Callable[[], None] | None = None,
    ) -> None:
        """``backend_down`` is why the backend did not answer before the login, if it did not:
        the edge hears it first thing. With tunnels to several edge nodes (PROTOCOL.md §11),
        ``gate`` bounds the requests of all of them together, ``on_nodes`` hears NODES and
        ``on_goaway`` the edge's GOAWAY (time to dial another node)."""
        super().__init__(
            transport, conn, heartbeat_interval, metrics.traffic if metrics is not None else None
        )
        self._metrics = metrics
        self._backend = backend
        self._max_concurrency = max_concurrency
        self._models = models
        self._model_refresh = model_refresh
        self._backend_down = backend_down[:MAX_HEALTH_REASON] if backend_down else None
        self._check_backend = asyncio.Event()  # a request found the backend unreachable
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._outgoing: dict[int, Outgoing] = {}
        self._dirty: dict[int, None] = {}  # streams with output to send, in order
        self._stop_event = stop
        self._drain_timeout = drain_timeout
        self._idle = asyncio.Event()  # draining, and every stream has sent its last frame
        self.draining = False
        self._gate = gate or Gate(max_concurrency)
        self._on_nodes = on_nodes
        self._on_goaway = on_goaway

    @property
    def in_flight(self) -> int:
        """Streams whose backend call is running."""
        return len(self._tasks)

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            tasks = list(self._tasks.values())
            for task in tasks:
                task.cancel()  # link_lost did already, unless run() never got going
            # gather, not a loop of suppress(CancelledError): a cancellation of run() itself
            # arriving now must propagate, not be mistaken for one of the streams'.
            await asyncio.gather(*tasks, return_exceptions=True)

    def background(self) -> list[Coroutine[Any, Any, None]]:
        work = [self._watch_backend()]
        if self._stop_event is not None:
            work.append(self._drain_on(self._stop_event))
        return work

    def link_lost(self, reason: str, error: ProtocolError | None) -> None:
        for task in self._tasks.values():
            task.cancel()  # closes the Ollama responses, which stops generation on the GPU

    # ------------------------------------------------------------------ reading

    def frame_received(self, frame: Frame) -> None:
        if isinstance(frame, Open):
            self._start(frame)
        elif isinstance(frame, (Cancel, Error)):  # an ERROR on stream 0 never gets here
            self._stop(frame.stream_id)
        elif isinstance(frame, Window):
            self._on_window(frame.stream_id)
        elif isinstance(frame, GoAway):
            self.draining = True
            if self._on_goaway is not None:
                self._on_goaway()
        elif isinstance(frame, Nodes) and self._on_nodes is not None:
            self._on_nodes(frame)

    def _start(self, frame: Open) -> None:
        sid = frame.stream_id
        refusal: tuple[ErrorCode, str] | None = None
        if self.draining or self.conn.state is State.DRAINING:
            refusal = (ErrorCode.DRAINING, "this machine is shutting down")
        elif len(self._tasks) >= self._max_concurrency:
            refusal = (ErrorCode.BUSY, f"this machine runs at most {self._max_concurrency} at once")
        if refusal is not None:
            self.conn.send(Error(sid, str(refusal[0]), refusal[1], True))
            if self._metrics is not None:
                self._metrics.stream_refused(frame.request, refusal[0])
            return
        self._outgoing[sid] = Outgoing()
        self._tasks[sid] = asyncio.create_task(self._serve(frame))

    def _stop(self, sid: int) -> None:
        task = self._tasks.pop(sid, None)
        if task is not None:
            task.cancel()  # closes the Ollama response, which stops generation on the GPU
        self._outgoing.pop(sid, None)
        self._dirty.pop(sid, None)

    def _on_window(self, sid: int) -> None:
        targets = self._outgoing if sid == NO_STREAM else [sid]
        for target in targets:
            if target in self._outgoing:
                self._dirty[target] = None

    # ------------------------------------------------------------------ serving a stream

    async def _serve(self, frame: Open) -> None:
        sid, request, timeout = frame.stream_id, frame.request, frame.timeout
        serving(frame.request_id, sid)  # this task's log lines are about this stream
        started = time.monotonic()
        outcome = "cancelled"
        out = self._outgoing[sid]
        try:
            try:
                async with asyncio.timeout(timeout or None), self._gate.slot(self):
                    await self._relay(sid, out, request, started)
            except BackendError as exc:
                out.final = Error(sid, str(exc.code), str(exc), exc.retryable)
                if exc.code is ErrorCode.BACKEND_UNAVAILABLE:
                    self._check_backend.set()
            except TimeoutError:
                message = f"the request exceeded its {timeout:g} s deadline"
                out.final = Error(sid, str(ErrorCode.BACKEND_TIMEOUT), message, False)
            except Exception as exc:
                log.exception("stream %d failed", sid)
                out.final = Error(sid, str(ErrorCode.INTERNAL), f"agent error: {exc}", False)
            outcome = "end"
            if isinstance(out.final, Error):  # its line carries the request id (log_fields)
                outcome = out.final.code
                log.info("stream %d ended with %s: %s", sid, outcome, out.final.message)
        finally:
            if self._metrics is not None:
                self._metrics.stream_ended(request, outcome, started)
        self._tasks.pop(sid, None)
        self._mark(sid)

    async def _relay(
        self, sid: int, out: Outgoing, request: Request | UnsupportedRequest, started: float
    ) -> None:
        """The backend's output into ``out`` until it finishes, pausing while a window's worth
        waits for credit; ``out.final`` is the frame that ends the stream."""
        window = self.conn.stream_window
        # The largest tool call or vector that can always be sent whole (PROTOCOL.md §8). The
        # edge hands credit back in half windows, so once it has read everything it was sent the
        # agent may still hold only a little over half a window: anything bigger could wait for
        # credit that never comes.
        largest = min(window, self.conn.connection_window) // 2
        # aclosing: cancelled while paused below, the backend call is closed at once (which
        # stops generation on the GPU), not whenever its generator is collected.
        first = True
        async with contextlib.aclosing(self._backend.stream(request)) as items:
            async for item in items:
                if first and self._metrics is not None:
                    self._metrics.first_output_after(request, started)
                first = False
                out.final = _final_for(sid, item, largest)
                if out.final is not None:
                    return
                assert not isinstance(item, Finish)
                out.add(item)
                self._mark(sid)
                if out.pending_size >= window:
                    await out.drained.wait()  # back-pressure: stop reading from Ollama

    def _mark(self, sid: int) -> None:
        self._dirty[sid] = None
        self.wake()

    # ------------------------------------------------------------------ writing

    def prepare_frames(self) -> None:
        """Turn pending output into frames, as far as credit allows."""
        for sid in list(self._dirty):
            out = self._outgoing.get(sid)
            if out is None or not self.conn.is_active(sid):
                self._dirty.pop(sid, None)
                self._outgoing.pop(sid, None)
                continue
            frame = out.take(sid, self.conn.credit(sid))
            if frame is not None:
                self.conn.send(frame)
            if out.empty:
                out.drained.set()
                if out.final is not None:
                    self.conn.send(out.final)
                    del self._outgoing[sid]
                self._dirty.pop(sid, None)
            elif self.conn.credit(sid) == 0:
                self._dirty.pop(sid, None)  # WINDOW puts it back
        if self.draining and not self._outgoing:
            self._idle.set()

    # ------------------------------------------------------------------ draining (§10)

    async def _drain_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        log.info("draining: no new requests; waiting for %d running", len(self._tasks))
        self.draining = True
        if self.conn.state is State.OPEN:
            self.conn.send(GoAway("the agent is shutting down"))
        self.wake()
        try:
            async with asyncio.timeout(self._drain_timeout):
                await self._idle.wait()
        except TimeoutError:
            log.warning("drain timeout: closing with %d requests running", len(self._tasks))
        await self.close(ws_code=GOING_AWAY)

    # ------------------------------------------------------------------ the backend (§5)

    async def _watch_backend(self) -> None:
        if self._backend_down is not None:
            self._send_live(Health(False, self._backend_down))
        while True:
            healthy = self._backend_down is None
            # (A test may refresh faster than the edge's budget allows; it sends few changes.)
            floor = min(UNHEALTHY_POLL, self._model_refresh)
            asked = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._model_refresh if healthy else floor):
                    await self._check_backend.wait()
                    asked = True
            self._check_backend.clear()
            await self._check()
            if asked:
                await asyncio.sleep(floor)  # requests failing in a burst ask once

    async def _check(self) -> None:
        """List the backend's models: HEALTH when it stops or starts answering, MODELS when the
        list changed."""
        try:
            models = await self._backend.discover()
        except BackendError as exc:
            if self._backend_down is None:
                log.warning("the backend stopped answering: %s", exc)
                self._backend_down = str(exc)[:MAX_HEALTH_REASON]
                self._send_live(Health(False, self._backend_down))
                if self._metrics is not None:
                    self._metrics.backend_up = False
            return
        if self._backend_down is not None:
            log.info("the backend answers again")
            self._backend_down = None
            self._send_live(Health(True, ""))
            if self._metrics is not None:
                self._metrics.backend_up = True
        if models != self._models:
            self._models = models
            log.info("models changed: %s", ", ".join(m["name"] for m in models) or "none")
            self._send_live(Models(models))

    def _send_live(self, frame: Frame) -> None:
        if self.conn.state in (State.OPEN, State.DRAINING):
            self.conn.send(frame)
            self.wake()


def _final_for(sid: int, item: Piece | Vectors | Finish, largest: int) -> End | Error | None:
    """The frame that ends the stream with ``item``, if it does: its END, or the ERROR for a
    tool call or vector too large to be sent whole (PROTOCOL.md §8)."""
    if isinstance(item, Finish):
        tokens = (item.prompt_tokens, item.completion_tokens)
        return End(sid, item.finish_reason, *tokens, item.timings, item.usage_reported)
    if isinstance(item, Vectors) and any(len(v) > largest for v in item.vectors):
        message = f"an embedding is larger than the tunnel carries whole ({largest} bytes)"
        return Error(sid, str(ErrorCode.BAD_REQUEST), message, False)
    if isinstance(item, Piece) and any(tool_call_size(c) > largest for c in item.tool_calls):
        message = (
            f"the model made a tool call larger than the tunnel carries whole ({largest} bytes)"
        )
        return Error(sid, str(ErrorCode.BACKEND_ERROR), message, False)
    return None
