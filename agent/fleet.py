"""The agent's tunnels: one to the edge, or one to each of several edge nodes (PROTOCOL.md §11).

The first tunnel dials the edge URL from pairing (a load balancer may stand behind it). An edge
node that is one of several says so with NODES: the node this tunnel reached and every node that
takes tunnels, each with its own URL. The fleet then holds ``RunOptions.connections`` tunnels to
distinct nodes (each machine prefers nodes in its own order, so machines spread evenly), dialing
the listed URLs directly, so that losing a node loses no machine: the
machine stays online through its other tunnels while the fleet dials a replacement. A node that
sends GOAWAY (it is draining) keeps its tunnel until the node closes it, and a replacement is
dialed at once. Each target has its own backoff with jitter after a failure; the edge URL is
dialed again whenever no tunnel is up and no listed node can be tried. An edge that never sends
NODES gets one tunnel, reconnected with backoff, exactly as before.

Only the edge URL's refusal of this machine (``auth_failed``, ``machine_revoked``) stops the
agent, or every listed node's: a listed node that refuses it may be misconfigured (another
server secret, a database behind), so it is left alone for ``backoff_cap`` and the others serve.
A node listed with ``http://`` when the edge URL is ``https://`` is never dialed: NODES must not
downgrade the tunnel to plain text.

The machine's ``max_concurrency`` holds over all tunnels together (``agent.gate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from websockets.exceptions import InvalidStatus, WebSocketException

from agent.backend import Backend
from agent.config import AgentConfig
from agent.diagnose import explain, refusal
from agent.gate import Gate
from agent.tunnel import AgentStopped, EdgeRefused, RunOptions, backoff_delay, connect_once
from protocol import Nodes, ProtocolError

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics

log = logging.getLogger(__name__)

EDGE_URL = ""  # the target key of the edge URL itself (node ids are never empty)
CHECK_EVERY = 1.0  # seconds between looks at the tunnels, when nothing wakes the fleet sooner


@dataclass(slots=True)
class Tunnel:
    """One tunnel the fleet runs: where it dials, which node it reached, whether it drains."""

    target: str  # a node id, or EDGE_URL
    url: str
    node_id: str | None = None  # told by the node's NODES
    draining: bool = False
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class Backoff:
    attempts: int = 0
    retry_at: float = 0.0


@dataclass
class Fleet:
    config: AgentConfig
    backend: Backend
    options: RunOptions
    stop: asyncio.Event
    metrics: AgentMetrics | None = None
    known: dict[str, str] = field(default_factory=dict)  # node id → URL, the latest NODES
    tunnels: dict[int, Tunnel] = field(default_factory=dict)
    gate: Gate = field(init=False)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _backoff: dict[str, Backoff] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    _fatal: AgentStopped | None = None
    _refused: set[str] = field(default_factory=set)  # listed nodes that refused this machine
    _downgrades: set[str] = field(default_factory=set)  # http:// URLs refused, logged once

    def __post_init__(self) -> None:
        self.gate = Gate(self.options.max_concurrency)

    async def run(self) -> None:
        """Hold the tunnels until ``stop`` is set (then let them drain) or the task is
        cancelled. ``AgentStopped`` when an edge refuses this machine."""
        loop = asyncio.get_running_loop()
        stopped = asyncio.create_task(self._wake_on_stop())
        try:
            while not self.stop.is_set() and self._fatal is None:
                self._dial(loop.time())
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._next_check(loop.time())):
                        await self._changed.wait()
            tasks = [t.task for t in self.tunnels.values() if t.task is not None]
            if self._fatal is not None:
                for task in tasks:
                    task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # they drain on stop
        finally:
            stopped.cancel()
            for tunnel in self.tunnels.values():
                if tunnel.task is not None:
                    tunnel.task.cancel()
        if self._fatal is not None:
            raise self._fatal

    async def _wake_on_stop(self) -> None:
        await self.stop.wait()
        self._changed.set()

    # ------------------------------------------------------------------ choosing targets

    def _dial(self, now: float) -> None:
        """Start tunnels until ``connections`` are up (or being dialed), to nodes not held."""
        active = [t for t in self.tunnels.values() if not t.draining]
        missing = max(1, self.options.connections) - len(active)
        held = {t.node_id or t.target for t in self.tunnels.values()}
        for node_id, url in sorted(self.known.items(), key=lambda item: self._rank(item[0])):
            if missing <= 0:
                return
            if node_id not in held and self._ready(node_id, now):
                self._start(node_id, url)
                missing -= 1
        dialing_edge = any(t.target == EDGE_URL for t in self.tunnels.values())
        if not active and not dialing_edge and self._ready(EDGE_URL, now):
            self._start(EDGE_URL, self.config.edge_url)

    def _rank(self, node_id: str) -> bytes:
        """The order this machine prefers the nodes in: a hash of the machine and the node
        (rendezvous hashing), so that machines spread evenly over the nodes, and each machine
        returns to the same nodes after a restart."""
        return hashlib.sha256(f"{self.config.machine_id}\0{node_id}".encode()).digest()

    def _ready(self, target: str, now: float) -> bool:
        backoff = self._backoff.get(target)
        return backoff is None or backoff.retry_at <= now

    def _next_check(self, now: float) -> float:
        waits = [b.retry_at - now for b in self._backoff.values() if b.retry_at > now]
        return max(0.01, min([CHECK_EVERY, *waits]))

    def _start(self, target: str, url: str) -> None:
        tunnel = Tunnel(target, url)
        number = next(self._ids)
        if number and self.metrics is not None:  # every dial after the first
            self.metrics.reconnects.inc()
        self.tunnels[number] = tunnel
        tunnel.task = asyncio.create_task(self._serve(number, tunnel), name=f"tunnel-{number}")

    # ------------------------------------------------------------------ one tunnel

    async def _serve(self, number: int, tunnel: Tunnel) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        config = self.config.model_copy(update={"edge_url": tunnel.url})
        try:
            await connect_once(
                config,
                self.backend,
                self.options,
                self.stop,
                self.metrics,
                gate=self.gate,
                on_nodes=lambda frame: self._nodes(tunnel, frame),
                on_goaway=lambda: self._going_away(tunnel),
            )
            log.info("tunnel to %s closed by the edge", tunnel.url)
        except EdgeRefused as exc:
            if exc.fatal:
                self._refused_by(tunnel, exc)
            else:
                log.warning("the edge closed the tunnel: %s", exc)
        except InvalidStatus as exc:
            answer = refusal(exc.response.status_code, exc.response.body)
            log.warning("%s refused the WebSocket: %s", tunnel.url, answer)
        except (OSError, TimeoutError, WebSocketException, ProtocolError) as exc:
            log.warning("tunnel to %s failed: %s", tunnel.url, explain(exc, tunnel.url))
        finally:
            del self.tunnels[number]
            self._ended(tunnel, loop.time() - started, loop.time())
            self._changed.set()

    def _refused_by(self, tunnel: Tunnel, exc: EdgeRefused) -> None:
        """The node ``tunnel`` reached refused this machine: fatal from the edge URL, or once
        every listed node has; otherwise that node is dialed again only after ``backoff_cap``."""
        if tunnel.target != EDGE_URL:
            self._refused.add(tunnel.target)
        if tunnel.target == EDGE_URL or (self.known and self._refused >= self.known.keys()):
            self._fatal = AgentStopped(
                f"the edge refused this machine ({exc}); pair it again with "
                "`llmtunnel agent pair CODE --edge URL`"
            )
            return
        log.warning(
            "node %s (%s) refused this machine (%s) though the edge URL takes it: not dialing"
            " it for %g s (its server.secret or database may differ from the others')",
            tunnel.target,
            tunnel.url,
            exc,
            self.options.backoff_cap,
        )

    def _ended(self, tunnel: Tunnel, lived: float, now: float) -> None:
        """Back off before dialing the same target again: after any end (a closed tunnel is
        redialed after a pause too), longer after each failure, reset by a long-lived link."""
        backoff = self._backoff.setdefault(tunnel.target, Backoff())
        if lived >= self.options.stable_after:
            backoff.attempts = 0
        delay = backoff_delay(backoff.attempts, self.options.backoff_base, self.options.backoff_cap)
        if tunnel.target in self._refused:
            delay = self.options.backoff_cap
        backoff.attempts += 1
        backoff.retry_at = now + delay
        if not self.stop.is_set():
            log.info("tunnel to %s: the next attempt in %.1f s at the earliest", tunnel.url, delay)

    def _nodes(self, tunnel: Tunnel, frame: Nodes) -> None:
        """NODES from ``tunnel``'s node: who it is, which nodes take tunnels now."""
        tunnel.node_id = frame.node_id
        self._refused.discard(tunnel.target)  # NODES comes after a login: it took this machine
        self._refused.discard(frame.node_id)
        self.known = {node_id: url for node_id, url in frame.nodes if self._secure(node_id, url)}
        twin = any(
            t is not tunnel and (t.node_id or t.target) == frame.node_id
            for t in self.tunnels.values()
        )
        if twin and tunnel.task is not None:
            # The edge URL led to a node this machine holds already: one tunnel per node.
            log.info("already connected to node %s: closing the extra tunnel", frame.node_id)
            tunnel.task.cancel()
        self._changed.set()

    def _going_away(self, tunnel: Tunnel) -> None:
        log.info("node %s is draining: dialing another", tunnel.node_id or tunnel.url)
        tunnel.draining = True
        self._changed.set()

    def _secure(self, node_id: str, url: str) -> bool:
        """Whether ``url`` keeps the edge URL's TLS: an edge reached over https:// that lists
        an http:// node would have the machine log in and serve over plain text."""
        if self.config.edge_url.startswith("https://") and not url.startswith("https://"):
            if url not in self._downgrades and len(self._downgrades) < 100:
                self._downgrades.add(url)
                log.warning("node %s is listed at %s, not https://: not dialing it", node_id, url)
            return False
        return True
