"""One tunnel connection from the agent: login, then serve streams until the link ends.

Every OPEN becomes a task that runs the backend call and appends its output to the stream's
``Outgoing`` buffer. A single writer task turns buffers into DELTA frames as credit allows and
writes them. While the writer waits on the socket, tokens pile up in the buffers and leave
together in one frame: at low load every token goes out at once, at high load the per-token cost
disappears (DESIGN.md "coalesced"). A buffer that outgrows the stream window pauses its task, so
a slow client stops the agent reading from Ollama instead of filling memory (PROTOCOL.md §8).
A write that cannot finish within two heartbeat intervals means the edge stopped reading: the
link is dropped and redialled rather than left to fill memory (§9).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection

from agent.backend import BackendError, Finish, OllamaBackend, Piece, Vectors
from agent.config import AgentConfig
from protocol import (
    NO_STREAM,
    Auth,
    Cancel,
    Challenge,
    Connection,
    Delta,
    Embeddings,
    End,
    Error,
    ErrorCode,
    GoAway,
    Hello,
    Models,
    Open,
    Ready,
    RemoteProtocolError,
    Role,
    State,
    Window,
    auth_message,
    choose_version,
)
from protocol.codec import AGENT_MAX_RECEIVE_FRAME
from protocol.frames import ToolCall, tool_call_size
from protocol.liveness import Liveness, Verdict
from protocol.requests import Request, UnsupportedRequest

log = logging.getLogger(__name__)

AGENT_VERSION = "0.1.0"
WRITE_TIMEOUT_INTERVALS = 2  # heartbeat intervals one write may take before the link is dropped


class EdgeRefused(Exception):
    """The edge closed the tunnel with an ERROR frame; ``fatal`` when retrying cannot help."""

    FATAL = frozenset({ErrorCode.AUTH_FAILED, ErrorCode.MACHINE_REVOKED})

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.fatal = code in self.FATAL


@dataclass(slots=True)
class Outgoing:
    """A stream's output not yet sent, and the frame that will end it."""

    thinking: str = ""
    content: str = ""
    tool_calls: deque[ToolCall] = field(default_factory=deque)
    tool_call_bytes: int = 0
    vectors: deque[bytes] = field(default_factory=deque)
    vector_index: int = 0  # the input index of the first vector in ``vectors``
    vector_bytes: int = 0
    final: End | Error | None = None
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def pending_size(self) -> int:
        """Roughly the credit the waiting output needs (text counted in characters)."""
        return len(self.thinking) + len(self.content) + self.tool_call_bytes + self.vector_bytes

    def add(self, piece: Piece | Vectors) -> None:
        if isinstance(piece, Vectors):
            self.vectors.extend(piece.vectors)
            self.vector_bytes += sum(len(v) for v in piece.vectors)
        else:
            self.thinking += piece.thinking
            self.content += piece.content
            self.tool_calls.extend(piece.tool_calls)
            self.tool_call_bytes += sum(tool_call_size(call) for call in piece.tool_calls)
        self.drained.clear()

    def take(self, stream_id: int, credit: int) -> Delta | Embeddings | None:
        """Up to ``credit`` bytes (PROTOCOL.md §8): text first, thinking before content, cut
        between any two characters; then whole tool calls, in order, while the credit left
        covers the next one. A tool call is never split. Else as many whole vectors as the
        credit pays for."""
        if self.thinking or self.content or self.tool_calls:
            thinking, self.thinking, credit = _split(self.thinking, credit)
            content, self.content, credit = _split(self.content, credit)
            calls: list[ToolCall] = []
            if not (self.thinking or self.content):  # a call never overtakes text before it
                while self.tool_calls and (size := tool_call_size(self.tool_calls[0])) <= credit:
                    calls.append(self.tool_calls.popleft())
                    self.tool_call_bytes -= size
                    credit -= size
            if not (thinking or content or calls):
                return None
            return Delta(stream_id, content, thinking, calls)
        taken: list[bytes] = []
        while self.vectors and len(self.vectors[0]) <= credit:
            vector = self.vectors.popleft()
            credit -= len(vector)
            self.vector_bytes -= len(vector)
            taken.append(vector)
        if not taken:
            return None
        frame = Embeddings(stream_id, self.vector_index, taken)
        self.vector_index += len(taken)
        return frame

    @property
    def empty(self) -> bool:
        return not (self.thinking or self.content or self.tool_calls or self.vectors)


def _split(text: str, budget: int) -> tuple[str, str, int]:
    """The longest prefix of ``text`` within ``budget`` UTF-8 bytes, the rest, the budget left."""
    data = text.encode()
    if len(data) <= budget:
        return text, "", budget - len(data)
    head = data[:budget].decode("utf-8", "ignore")  # never cut a character in half
    used = len(head.encode())
    return head, text[len(head) :], budget - used


class TunnelSession:
    """Serves one logged-in connection. ``run()`` returns or raises when the link ends."""

    def __init__(
        self,
        ws: ClientConnection,
        conn: Connection,
        backend: OllamaBackend,
        max_concurrency: int,
        heartbeat_interval: float,
        models: list[dict[str, Any]],
        model_refresh: float,
        stop: asyncio.Event | None = None,
        drain_timeout: float = 30.0,
    ) -> None:
        self._ws = ws
        self._conn = conn
        self._backend = backend
        self._max_concurrency = max_concurrency
        self._heartbeat = heartbeat_interval
        self._models = models
        self._model_refresh = model_refresh
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._outgoing: dict[int, Outgoing] = {}
        self._dirty: dict[int, None] = {}  # streams with output to send, in order
        self._wake = asyncio.Event()
        self._liveness = Liveness(heartbeat_interval, asyncio.get_running_loop().time())
        self._stop_event = stop
        self._drain_timeout = drain_timeout
        self._closing = False
        self.draining = False

    async def run(self) -> None:
        helpers = [
            asyncio.create_task(self._write_loop()),
            asyncio.create_task(self._watchdog()),
            asyncio.create_task(self._watch_models()),
        ]
        if self._stop_event is not None:
            helpers.append(asyncio.create_task(self._drain_on(self._stop_event)))
        try:
            await self._read_loop()
        finally:
            tasks = helpers + list(self._tasks.values())
            for task in tasks:
                task.cancel()
            # gather, not a loop of suppress(CancelledError): a cancellation of run() itself
            # arriving now must propagate, not be mistaken for one of the helpers'.
            await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ reading

    async def _read_loop(self) -> None:
        async for message in self._ws:
            if isinstance(message, str):
                raise RemoteProtocolError("unexpected text message")
            self._liveness.heard(asyncio.get_running_loop().time())
            frame = self._conn.receive(message)
            if isinstance(frame, Open):
                self._start(frame)
            elif isinstance(frame, Cancel):
                self._stop(frame.stream_id)
            elif isinstance(frame, Window):
                self._on_window(frame.stream_id)
            elif isinstance(frame, Error) and frame.stream_id == NO_STREAM:
                raise EdgeRefused(frame.code, frame.message)
            elif isinstance(frame, Error):
                self._stop(frame.stream_id)
            elif isinstance(frame, GoAway):
                self.draining = True
            self._wake.set()

    def _start(self, frame: Open) -> None:
        sid = frame.stream_id
        refusal: tuple[ErrorCode, str] | None = None
        if self.draining or self._conn.state is State.DRAINING:
            refusal = (ErrorCode.DRAINING, "this machine is shutting down")
        elif len(self._tasks) >= self._max_concurrency:
            refusal = (ErrorCode.BUSY, f"this machine runs at most {self._max_concurrency} at once")
        if refusal is not None:
            self._conn.send(Error(sid, str(refusal[0]), refusal[1], True))
            return
        self._outgoing[sid] = Outgoing()
        self._tasks[sid] = asyncio.create_task(self._serve(sid, frame.request, frame.timeout))

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

    async def _serve(self, sid: int, request: Request | UnsupportedRequest, timeout: float) -> None:
        out = self._outgoing[sid]
        window = self._conn.stream_window
        # The largest tool call or vector that can always be sent whole (PROTOCOL.md §8). The
        # edge hands credit back in half windows, so once it has read everything it was sent the
        # agent may still hold only a little over half a window: anything bigger could wait for
        # credit that never comes.
        largest = min(window, self._conn.connection_window) // 2
        try:
            async with asyncio.timeout(timeout or None):
                async for item in self._backend.stream(request):
                    if isinstance(item, Finish):
                        out.final = End(
                            sid,
                            item.finish_reason,
                            item.prompt_tokens,
                            item.completion_tokens,
                            item.timings,
                        )
                        break
                    if isinstance(item, Vectors) and any(len(v) > largest for v in item.vectors):
                        message = (
                            "an embedding is larger than the tunnel carries whole"
                            f" ({largest} bytes)"
                        )
                        out.final = Error(sid, str(ErrorCode.BAD_REQUEST), message, False)
                        break
                    if isinstance(item, Piece) and any(
                        tool_call_size(call) > largest for call in item.tool_calls
                    ):
                        message = (
                            "the model made a tool call larger than the tunnel carries whole"
                            f" ({largest} bytes)"
                        )
                        out.final = Error(sid, str(ErrorCode.BACKEND_ERROR), message, False)
                        break
                    out.add(item)
                    self._mark(sid)
                    if out.pending_size >= window:
                        await out.drained.wait()  # back-pressure: stop reading from Ollama
        except BackendError as exc:
            out.final = Error(sid, str(exc.code), str(exc), exc.retryable)
        except TimeoutError:
            message = f"the request exceeded its {timeout:g} s deadline"
            out.final = Error(sid, str(ErrorCode.BACKEND_TIMEOUT), message, False)
        except Exception as exc:
            log.exception("stream %d failed", sid)
            out.final = Error(sid, str(ErrorCode.INTERNAL), f"agent error: {exc}", False)
        self._tasks.pop(sid, None)
        self._mark(sid)

    def _mark(self, sid: int) -> None:
        self._dirty[sid] = None
        self._wake.set()

    # ------------------------------------------------------------------ writing

    async def _write_loop(self) -> None:
        bound = WRITE_TIMEOUT_INTERVALS * self._heartbeat
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                self._emit()
                # One timer for the batch, moved on at each write: each write gets the bound.
                async with asyncio.timeout(None) as write_deadline:
                    for data in self._conn.data_to_send():
                        write_deadline.reschedule(loop.time() + bound)
                        await self._ws.send(data)
                if self._closing and not self._outgoing:
                    # Draining and every stream has sent its last frame: the link can go.
                    await self._ws.close(1001, "agent shutting down")
                    return
        except TimeoutError:
            # The edge stopped reading (PROTOCOL.md §9): waiting longer would only let the
            # outgoing frames pile up. Drop the link; the read loop ends and we redial.
            log.warning("a write to the edge did not finish in %g s; dropping the link", bound)
            self._ws.transport.abort()
        except Exception:
            # Without a writer the link is useless: drop it so the read loop ends and we redial.
            log.exception("tunnel writer failed")
            self._ws.transport.abort()
            raise

    # ------------------------------------------------------------------ draining (§10)

    async def _drain_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        log.info("draining: no new requests; waiting for %d running", len(self._tasks))
        self.draining = True
        if self._conn.state is State.OPEN:
            self._conn.send(GoAway("the agent is shutting down"))
        self._closing = True
        self._wake.set()
        try:
            async with asyncio.timeout(self._drain_timeout):
                await self._ws.wait_closed()
        except TimeoutError:
            log.warning("drain timeout: closing with %d requests running", len(self._tasks))
            await self._ws.close(1001, "agent shutting down")

    def _emit(self) -> None:
        """Turn pending output into frames, as far as credit allows."""
        for sid in list(self._dirty):
            out = self._outgoing.get(sid)
            if out is None or not self._conn.is_active(sid):
                self._dirty.pop(sid, None)
                self._outgoing.pop(sid, None)
                continue
            delta = out.take(sid, self._conn.credit(sid))
            if delta is not None:
                self._conn.send(delta)
            if out.empty:
                out.drained.set()
                if out.final is not None:
                    self._conn.send(out.final)
                    del self._outgoing[sid]
                self._dirty.pop(sid, None)
            elif self._conn.credit(sid) == 0:
                self._dirty.pop(sid, None)  # WINDOW puts it back

    # ------------------------------------------------------------------ liveness and models

    async def _watchdog(self) -> None:
        # Wakes at the edge's heartbeat ticks and at the deadline, whichever is first (§9).
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(max(0.0, self._liveness.next_wake() - loop.time()))
            now = loop.time()
            if self._liveness.check(now) is Verdict.DEAD:
                silent = self._liveness.silence(now)
                log.warning("no frame from the edge for %.2f s; reconnecting", silent)
                # No close handshake: the link is dead, waiting for a reply would only stall.
                self._ws.transport.abort()
                return

    async def _watch_models(self) -> None:
        while True:
            await asyncio.sleep(self._model_refresh if self._models else 2.0)
            try:
                models = await self._backend.discover()
            except BackendError as exc:
                log.warning("cannot list Ollama's models: %s", exc)
                continue
            if models != self._models:
                self._models = models
                log.info("models changed: %s", ", ".join(m["name"] for m in models) or "none")
                self._conn.send(Models(models))
                self._wake.set()


async def login(
    ws: ClientConnection,
    config: AgentConfig,
    max_concurrency: int,
    models: list[dict[str, Any]],
) -> tuple[Connection, Ready]:
    """CHALLENGE → AUTH → READY → HELLO (PROTOCOL.md §3). ``EdgeRefused`` if turned away."""
    conn = Connection(Role.AGENT, max_receive_frame=AGENT_MAX_RECEIVE_FRAME)
    challenge = conn.receive(await _recv_bytes(ws))
    if not isinstance(challenge, Challenge):
        raise RemoteProtocolError(f"expected CHALLENGE, got {type(challenge).__name__}")
    expected = _host_of(config.edge_url)
    if challenge.edge_host.lower() != expected:
        # Signing whatever host the peer names would let one edge log in to another with us.
        raise RemoteProtocolError(
            f"edge says it is {challenge.edge_host!r}, but this agent dialed {expected!r}"
        )
    version = choose_version(challenge.versions)
    signature = config.signing_key().sign(auth_message(challenge.nonce, expected, version))
    conn.send(Auth(config.machine_id, version, signature))
    await _send_all(ws, conn)
    ready = conn.receive(await _recv_bytes(ws))
    if isinstance(ready, Error):
        raise EdgeRefused(ready.code, ready.message)
    if not isinstance(ready, Ready):
        raise RemoteProtocolError(f"expected READY, got {type(ready).__name__}")
    conn.send(Hello(AGENT_VERSION, max_concurrency, models))
    await _send_all(ws, conn)
    return conn, ready


def _host_of(url: str) -> str:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}[parts.scheme]
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


async def _recv_bytes(ws: ClientConnection) -> bytes:
    message = await ws.recv()
    if isinstance(message, str):
        raise RemoteProtocolError("unexpected text message")
    return message


async def _send_all(ws: ClientConnection, conn: Connection) -> None:
    for data in conn.data_to_send():
        await ws.send(data)
