"""Which edge nodes are up, where they are reached, and which machines each holds tunnels to.

Every node writes its own entry to Redis every ``INTERVAL`` seconds (``llmtunnel:node:ID``,
expiring after ``TTL``): its advertised URL, whether it is draining, and a summary of each tunnel
it holds (tenant, machine, models, health, load). Every node reads the others' entries just as
often and keeps the last view in memory, so routing and ``/v1/models`` read it without waiting.
A node that dies stops writing and its entry expires: within ``TTL`` no node routes to it, and
sooner when a forward to it fails (``suspect``). A node that drains says so at once (``leave``).

The same view tells agents where to hold their other tunnels: NODES (PROTOCOL.md §11) lists
every node that advertises a URL and is not draining, this one included; a change is sent to
every agent connected here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from edge.agents.registry import Registry
from edge.agents.session import AgentSession
from edge.cluster.redis_link import REDIS_ERRORS, key
from protocol import Nodes, ProtocolError
from protocol.frames import MAX_NODES, check_node

log = logging.getLogger(__name__)

INTERVAL = 0.5  # seconds between writes of this node's entry and reads of the others'
TTL = 3.0  # seconds an entry lives unless rewritten: a dead node is forgotten by then
SUSPECT_FOR = 5.0  # seconds a node that failed a forward is not routed to
NODES_SET = key("nodes")


@dataclass(frozen=True, slots=True)
class RemoteMachine:
    """A tunnel another node holds: enough to route a request there."""

    node_id: str
    node_url: str
    tenant_id: str
    machine_id: str
    machine_name: str
    models: dict[str, dict[str, Any]]
    backend_down: str | None
    accepting: bool
    in_flight: int
    max_concurrency: int

    @property
    def free(self) -> int:
        return self.max_concurrency - self.in_flight


@dataclass(frozen=True, slots=True)
class NodeEntry:
    node_id: str
    url: str | None
    draining: bool
    machines: tuple[RemoteMachine, ...]


class Directory:
    """This node's entry, written; the other nodes', read (``view``)."""

    def __init__(
        self,
        redis: Redis,
        node_id: str,
        advertise_url: str | None,
        registry: Registry[AgentSession],
    ) -> None:
        self._redis = redis
        self.node_id = node_id
        self.url = advertise_url
        self._registry = registry
        self.view: dict[str, NodeEntry] = {}  # the other nodes, as last read
        self.draining = False
        self._suspects: dict[str, float] = {}  # node id → until when (loop time)
        self._announced: Nodes | None = None
        self._refused: set[tuple[str, str]] = set()  # entries NODES could not carry, logged

    # ------------------------------------------------------------------ reading the view

    def machines(self, tenant_id: str) -> list[RemoteMachine]:
        """The tenant's tunnels on other nodes that may take requests now (not draining, not
        suspected of being down)."""
        now = asyncio.get_running_loop().time()
        return [
            machine
            for entry in self.view.values()
            if not entry.draining and entry.url and self._suspects.get(entry.node_id, 0) <= now
            for machine in entry.machines
            if machine.tenant_id == tenant_id
        ]

    def tunnels_of(self, tenant_id: str, machine_id: str) -> list[RemoteMachine]:
        """This machine's tunnels on other nodes, by node id."""
        found = [
            m
            for entry in self.view.values()
            for m in entry.machines
            if m.tenant_id == tenant_id and m.machine_id == machine_id
        ]
        return sorted(found, key=lambda m: m.node_id)

    def suspect(self, node_id: str) -> bool:
        """A forward to ``node_id`` failed: route elsewhere for a while. Whether it was not
        suspected already (requests sent there at once fail together: one log line)."""
        now = asyncio.get_running_loop().time()
        new = self._suspects.get(node_id, 0) <= now
        self._suspects[node_id] = now + SUSPECT_FOR
        return new

    def nodes_frame(self) -> Nodes | None:
        """NODES for this node's agents, or ``None`` when this node is not advertised."""
        if self.url is None:
            return None
        nodes = [] if self.draining else [[self.node_id, self.url]]
        for entry in sorted(self.view.values(), key=lambda e: e.node_id):
            listed = entry.url and not entry.draining and len(nodes) < MAX_NODES
            if listed and entry.url and self._sendable(entry.node_id, entry.url):
                nodes.append([entry.node_id, entry.url])
        return Nodes(self.node_id, nodes)

    def _sendable(self, node_id: str, url: str) -> bool:
        """Whether NODES may list this entry (PROTOCOL.md §11). Each node checks its own flags
        at start, but Redis may hold anything: one bad entry must not make every NODES refused
        (and the agents' session setup with it)."""
        try:
            check_node(node_id, url)
        except ProtocolError as exc:
            if (node_id, url) not in self._refused and len(self._refused) < 100:
                self._refused.add((node_id, url))
                log.warning("node %r is left out of NODES: %s", node_id[:80], exc)
            return False
        return True

    # ------------------------------------------------------------------ keeping it current

    async def run(self) -> None:
        """Write this node's entry and read the others' every ``INTERVAL``, until cancelled."""
        while True:
            try:
                await self.refresh()
            except REDIS_ERRORS as exc:
                log.warning("Redis cannot answer (%s): the node directory is not refreshed", exc)
            except Exception:
                # A bug must not take this node out of the cluster for good: log, go on.
                log.exception("refreshing the node directory failed")
            try:
                self._announce()
            except Exception:
                log.exception("announcing the nodes to this node's agents failed")
            await asyncio.sleep(INTERVAL)

    async def refresh(self) -> None:
        await self._write()
        await self._read()

    async def leave(self) -> None:
        """Draining: tell the other nodes at once, so that they stop routing here."""
        self.draining = True
        self._announce()
        with contextlib.suppress(*REDIS_ERRORS):
            await self._write()

    async def remove(self) -> None:
        """Gone: take this node's entry out."""
        with contextlib.suppress(*REDIS_ERRORS):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(key("node", self.node_id))
                pipe.srem(NODES_SET, self.node_id)
                await pipe.execute()

    async def _write(self) -> None:
        entry = {
            "id": self.node_id,
            "url": self.url,
            "draining": self.draining,
            "machines": [
                _summary(s) for t in self._registry.tenants() for s in self._registry.sessions(t)
            ],
        }
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(key("node", self.node_id), json.dumps(entry), px=int(TTL * 1000))
            pipe.sadd(NODES_SET, self.node_id)
            await pipe.execute()

    async def _read(self) -> None:
        members = await self._redis.smembers(NODES_SET)
        ids = sorted(i.decode() if isinstance(i, bytes) else i for i in members)
        others = [i for i in ids if i != self.node_id]
        values = await self._redis.mget([key("node", i) for i in others]) if others else []
        view: dict[str, NodeEntry] = {}
        gone = []
        for node_id, raw in zip(others, values, strict=True):
            if raw is None:
                gone.append(node_id)  # its entry expired: it stopped writing
                continue
            with contextlib.suppress(ValueError, KeyError, TypeError):
                view[node_id] = _entry(json.loads(raw))
        if gone:
            await self._redis.srem(NODES_SET, *gone)
        self.view = view

    def _announce(self) -> None:
        frame = self.nodes_frame()
        if frame is None or frame == self._announced:
            return
        self._announced = frame
        for tenant in self._registry.tenants():
            for session in self._registry.sessions(tenant):
                session.announce(frame)


def _summary(session: AgentSession) -> dict[str, Any]:
    return {
        "tenant": session.tenant_id,
        "machine": session.machine_id,
        "name": session.machine_name,
        "models": session.models,
        "down": session.backend_down,
        "accepting": session.accepting,
        "in_flight": session.in_flight,
        "max": session.max_concurrency,
    }


def _entry(fields: dict[str, Any]) -> NodeEntry:
    node_id, url = str(fields["id"]), fields.get("url")
    machines = tuple(
        RemoteMachine(
            node_id,
            url or "",
            str(m["tenant"]),
            str(m["machine"]),
            str(m["name"]),
            dict(m["models"]),
            m.get("down"),
            bool(m["accepting"]),
            int(m["in_flight"]),
            int(m["max"]),
        )
        for m in fields["machines"]
    )
    return NodeEntry(node_id, url, bool(fields["draining"]), machines)
