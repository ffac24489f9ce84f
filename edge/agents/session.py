"""A logged-in machine's session on the edge: its streams, its models, its place in the registry.

The session is a ``llmtunnel.tunnel.Link`` (the read loop, the single writer, heartbeats, bounded
writes and closing are shared with the agent); what is the edge's own is here. Stream frames go
to the ``TunnelStream`` a request handler reads; a MODELS replaces the machine's model list; a
HEALTH saying its backend is down takes it out of routing until one says it is back; a GOAWAY
takes it out for good. When the link ends, the machine leaves the registry and every
stream on it ends at once with ``backend_unavailable`` (retryable: the request may fail over).

A machine is a tenant's, but the edge is everyone's, so nothing a machine sends may grow the edge
without bound: what a stream buffers is bytes within its credit (``edge.agents.stream``), a write
that the machine does not read within two heartbeat intervals drops its link (the ``Link``), and
MODELS and HEALTH frames are rate-limited per connection (``ModelsBudget``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from edge.agents.registry import Registry
from edge.agents.stream import TunnelStream
from edge.errors import ApiError
from edge.store import Machine
from llmtunnel.tunnel import Link, Traffic, Transport
from protocol import (
    Cancel,
    Connection,
    Delta,
    Embeddings,
    End,
    Error,
    ErrorCode,
    Frame,
    GoAway,
    Health,
    Hello,
    LocalProtocolError,
    Models,
    Nodes,
    Open,
    ProtocolError,
    RemoteProtocolError,
    State,
    TunnelLimits,
)
from protocol.errors import ClosedByPeer
from protocol.frames import MAX_TIMEOUT
from protocol.mux import FLOW_CONTROLLED
from protocol.requests import Request

MODELS_BURST = 5  # MODELS frames a connection may send at once …
MODELS_REFILL = 2.0  # … and then one per this many seconds
_LIVE = (State.OPEN, State.DRAINING)


class AgentSession(Link):
    """A logged-in machine: routable through the registry until its connection ends."""

    PEER = "the machine"

    def __init__(
        self,
        transport: Transport,
        conn: Connection,
        machine: Machine,
        hello: Hello,
        registry: Registry[AgentSession],
        limits: TunnelLimits,
        traffic: Traffic | None = None,
        nodes: Callable[[], Nodes | None] | None = None,
    ) -> None:
        """``nodes`` gives the NODES this machine hears first (several edge nodes, PROTOCOL.md
        §11); later changes come through ``announce``."""
        super().__init__(transport, conn, limits.heartbeat_interval, traffic)
        self.machine_id = machine.id
        self.machine_name = machine.name
        self.tenant_id = machine.tenant_id
        self.agent_version = hello.agent_version
        self.max_concurrency = hello.max_concurrency
        self.models = _index_models(hello.models)
        self.backend_down: str | None = None  # why its backend does not answer (HEALTH, §5)
        self.connected_at = time.time()
        self._registry = registry
        self._streams: dict[int, TunnelStream] = {}
        self._draining = False
        self._nodes = nodes
        now = asyncio.get_running_loop().time()
        self._models_budget = ModelsBudget(now, "MODELS")
        self._health_budget = ModelsBudget(now, "HEALTH")

    @property
    def log_name(self) -> str:
        return f"machine {self.machine_id}"

    # ------------------------------------------------------------------ routing surface

    @property
    def in_flight(self) -> int:
        return len(self._streams)

    @property
    def accepting(self) -> bool:
        return not self._draining and self.conn.state is State.OPEN

    def open_stream(self, request: Request, timeout: float, request_id: str = "") -> TunnelStream:
        """Start a stream (in the slot a ``registry.Lease`` held for it). ``ApiError`` 400 when
        the request holds what the tunnel cannot carry (PROTOCOL.md §2: JSON only)."""
        stream_id = self.conn.next_stream_id()
        # The agent's deadline; the edge keeps its own. A week is OPEN's bound (PROTOCOL.md §2).
        frame = Open(stream_id, request, min(timeout, MAX_TIMEOUT), request_id)
        try:
            self.conn.send(frame)
        except LocalProtocolError as exc:
            raise ApiError(400, "invalid_request", f"the request cannot be sent: {exc}") from None
        stream = TunnelStream(self, stream_id)
        self._streams[stream_id] = stream
        self.wake()
        return stream

    def consumed(self, stream_id: int, size: int) -> None:
        if self.conn.state in _LIVE:
            self.conn.consumed(stream_id, size)
            self.wake()

    def forget(self, stream: TunnelStream, cancel_reason: str | None) -> None:
        if self._streams.pop(stream.stream_id, None) is None:
            return
        if cancel_reason and self.conn.state in _LIVE and self.conn.is_active(stream.stream_id):
            self.conn.send(Cancel(stream.stream_id, cancel_reason))
            self.wake()
        self._registry.notify(self.tenant_id)

    def announce(self, frame: Nodes) -> None:
        """Tell the agent which edge nodes take tunnels now (PROTOCOL.md §11). A NODES the
        frame's own checks refuse is not sent, and never raises: the directory's task announces
        to every session, and one bad list must neither end it nor a session's setup."""
        if self.conn.state is State.OPEN:
            try:
                self.conn.send(frame)
            except LocalProtocolError as exc:
                self.log.error("NODES not sent to machine %s: %s", self.machine_id, exc)
                return
            self.wake()

    def goaway(self, reason: str) -> None:
        if self.conn.state is State.OPEN:
            self.conn.send(GoAway(reason))
            self._draining = True
            self.wake()

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        """Serve the connection until it ends; every open stream then ends with an error."""
        replaced = self._registry.add(self)
        try:
            if replaced is not None:
                await replaced.close(ErrorCode.PROTOCOL_ERROR, "replaced by a newer connection")
            if self._nodes is not None and (frame := self._nodes()) is not None:
                self.announce(frame)
            with contextlib.suppress(ClosedByPeer, RemoteProtocolError):  # logged by link_lost
                await super().run()
        finally:
            # link_lost has removed it when the link ran; this covers setup failing before, so
            # no session that serves nothing stays routable.
            self._registry.remove(self)

    def frame_received(self, frame: Frame) -> None:
        if isinstance(frame, (Delta, Embeddings, End, Error)):
            stream = self._streams.get(frame.stream_id)
            if stream is not None:
                stream.deliver(frame)
                if not isinstance(frame, FLOW_CONTROLLED):
                    del self._streams[frame.stream_id]
                    self._registry.notify(self.tenant_id)
        elif isinstance(frame, Models):
            self._models_budget.spend(asyncio.get_running_loop().time())
            self.models = _index_models(frame.models)
            self._registry.notify(self.tenant_id)
        elif isinstance(frame, Health):
            self._health_budget.spend(asyncio.get_running_loop().time())
            if frame.healthy == (self.backend_down is None):
                return
            self.backend_down = None if frame.healthy else frame.reason
            if frame.healthy:
                self.log.info("machine %s: its backend answers again", self.machine_id)
            else:
                self.log.warning("machine %s is degraded: %s", self.machine_id, frame.reason)
            self._registry.notify(self.tenant_id)
        elif isinstance(frame, GoAway):
            self._draining = True
            self._registry.notify(self.tenant_id)

    def link_lost(self, reason: str, error: ProtocolError | None) -> None:
        if isinstance(error, ClosedByPeer):
            self.log.warning("machine %s closed the tunnel: %s", self.machine_id, error)
        elif error is not None:
            self.log.warning("machine %s broke the protocol: %s", self.machine_id, error)
        self._registry.remove(self)
        for stream_id, stream in list(self._streams.items()):
            stream.deliver(Error(stream_id, str(ErrorCode.BACKEND_UNAVAILABLE), reason, True))
        self._streams.clear()


def _index_models(models: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {model["name"]: model for model in models}


class ModelsBudget:
    """How many MODELS (or HEALTH) frames a connection may still send: a token bucket of
    ``MODELS_BURST``, one token back every ``MODELS_REFILL`` seconds. Each one changes how the
    machine is routed and wakes the tenant's waiting requests; an agent sends one when its
    backend changes (it looks every 30 s, every 2 s while the backend is down), so a flood is a
    broken or hostile agent (PROTOCOL.md §5)."""

    __slots__ = ("kind", "tokens", "updated")

    def __init__(self, now: float, kind: str = "MODELS") -> None:
        self.kind = kind
        self.tokens = float(MODELS_BURST)
        self.updated = now

    def spend(self, now: float) -> None:
        """Take one token; ``RemoteProtocolError`` naming the limit when there is none."""
        self.tokens = min(MODELS_BURST, self.tokens + (now - self.updated) / MODELS_REFILL)
        self.updated = now
        if self.tokens < 1:
            raise RemoteProtocolError(
                f"too many {self.kind} frames: at most {MODELS_BURST} at once, then one per"
                f" {MODELS_REFILL:g} s"
            )
        self.tokens -= 1
