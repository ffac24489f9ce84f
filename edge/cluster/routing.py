"""Routing over every node's tunnels: this node's first, another node's through the hop.

A request goes to a machine connected here when one that serves it has a free slot. Otherwise,
when a machine that this node holds no tunnel to (per the directory) serves it, the request is
forwarded to a node that holds one, the least loaded first; a node that does not answer is
suspected for a while and the next is tried. Otherwise it waits here, in this node's fair queue,
as on one node (and the registry raises the same 404 and 503 it always did). A machine with
tunnels here and elsewhere is served here: its agent runs its requests through one gate
whichever node sent them (PROTOCOL.md §11), so sending them elsewhere would gain nothing.

Failover excludes what failed: a machine here by its id, a machine reached through another
node as ``node/machine``, so that the same machine is tried again through its other tunnel
when a node dies under a request.
"""

from __future__ import annotations

import logging

from edge.agents.registry import Registry
from edge.agents.routing import ModelInfo, Router, Slot
from edge.agents.session import AgentSession
from edge.cluster.directory import Directory, RemoteMachine
from edge.cluster.hop import Hop, HopRefusedByPeer, NodeUnreachable, forward
from edge.config import EdgeConfig
from edge.errors import ApiError
from protocol.requests import Request

log = logging.getLogger(__name__)

# What another node answers when the directory showed a tunnel it no longer holds.
STALE = frozenset({"no_machine_online", "model_not_found", "machine_degraded"})


class ClusterRouter(Router):
    def __init__(
        self,
        registry: Registry[AgentSession],
        directory: Directory,
        hop: Hop,
        config: EdgeConfig,
    ) -> None:
        super().__init__(registry)
        self.directory = directory
        self.hop = hop
        self.config = config

    async def acquire(
        self,
        tenant_id: str,
        request: Request,
        timeout: float,
        exclude: frozenset[str] = frozenset(),
        key_id: str = "",
        only: str | None = None,
        request_id: str = "",
    ) -> Slot:
        local = self.registry.candidates(tenant_id, request.model, exclude, only)
        free_here = any(s.in_flight + self.registry.reserved(s) < s.max_concurrency for s in local)
        if not free_here:
            remote = self._remote(tenant_id, request.model, exclude, only)
            if local:  # busy here: another machine elsewhere only if it has room now
                remote = [m for m in remote if m.free > 0]
            for machine in remote:
                try:
                    return await forward(
                        self.hop,
                        machine,
                        tenant_id,
                        request,
                        timeout,
                        self.config.request_timeout,
                        exclude,
                        key_id,
                        request_id,
                    )
                except HopRefusedByPeer as exc:
                    # Never the client's 403: the client did nothing wrong. Once per suspicion,
                    # so a misconfigured node is one line every SUSPECT_FOR, not one a request.
                    if self.directory.suspect(machine.node_id):
                        log.error(
                            "node %s refuses our hop signature (%s): check that every node has"
                            " the same server.secret and keeps NTP time; routing elsewhere",
                            machine.node_id,
                            exc,
                        )
                except NodeUnreachable as exc:
                    if self.directory.suspect(machine.node_id):
                        log.warning(
                            "node %s is unreachable (%s): routing elsewhere", machine.node_id, exc
                        )
                except ApiError as exc:
                    if exc.code not in STALE:
                        raise
                    # The directory was behind: that tunnel is gone. The next one, then.
        return await super().acquire(tenant_id, request, timeout, exclude, key_id, only, request_id)

    def _remote(
        self, tenant_id: str, model: str, exclude: frozenset[str], only: str | None
    ) -> list[RemoteMachine]:
        """Machines of the tenant that only other nodes hold and that could take ``model``,
        the most free first."""
        here = {s.machine_id for s in self.registry.sessions(tenant_id) if s.accepting}
        found = [
            m
            for m in self.directory.machines(tenant_id)
            if m.machine_id not in here
            and m.accepting
            and m.backend_down is None
            and model in m.models
            and only in (None, m.machine_id)
            and m.machine_id not in exclude
            and f"{m.node_id}/{m.machine_id}" not in exclude
        ]
        return sorted(found, key=lambda m: (-m.free, m.node_id))

    def can_retry(
        self, tenant_id: str, model: str, exclude: frozenset[str], only: str | None
    ) -> bool:
        return super().can_retry(tenant_id, model, exclude, only) or bool(
            self._remote(tenant_id, model, exclude, only)
        )

    def models(self, tenant_id: str) -> dict[str, ModelInfo]:
        merged = super().models(tenant_id)
        for machine in self.directory.machines(tenant_id):
            if machine.backend_down is None and machine.accepting:
                for name, info in machine.models.items():
                    merged.setdefault(name, info)
        return merged

    def machine_models(self, tenant_id: str, machine_id: str) -> dict[str, ModelInfo]:
        models = super().machine_models(tenant_id, machine_id)
        if models:
            return models
        for machine in self.directory.machines(tenant_id):
            usable = machine.accepting and machine.backend_down is None
            if machine.machine_id == machine_id and usable:
                return dict(machine.models)
        return {}
