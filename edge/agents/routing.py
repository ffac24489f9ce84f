"""Where a request goes: the pipeline's one door to the machines.

``Router`` routes through this node's registry alone (one edge node). With several nodes the
cluster's router (``edge.cluster.routing``) adds the machines other nodes hold tunnels to, and
forwards a request there when no tunnel here can take it; the pipeline sees the same ``Slot``
either way (docs/ARCHITECTURE.md "Several edge nodes").
"""

from __future__ import annotations

from typing import Any, Protocol

from edge.agents.registry import Registry
from edge.agents.session import AgentSession
from edge.agents.stream import TunnelStream
from protocol.requests import Request

ModelInfo = dict[str, Any]


class Slot(Protocol):
    """A place for one request on one machine (``registry.Lease`` here, a forwarded stream on
    another node): ``open`` starts the request's stream in it, ``release`` gives it back."""

    @property
    def machine_id(self) -> str:
        """What failover excludes once this slot failed (a machine, or a machine on a node)."""

    @property
    def machine_name(self) -> str: ...

    def open(self, request: Request, timeout: float, request_id: str = "") -> TunnelStream: ...

    def release(self) -> None: ...


class Router:
    """Routing over this node's tunnels (``Registry``)."""

    def __init__(self, registry: Registry[AgentSession]) -> None:
        self.registry = registry

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
        """A slot for ``request`` (``Registry.acquire``'s contract and errors); ``request_id``
        names the client's request where it runs (PROTOCOL.md §2)."""
        return await self.registry.acquire(tenant_id, request.model, timeout, exclude, key_id, only)

    def can_retry(
        self, tenant_id: str, model: str, exclude: frozenset[str], only: str | None
    ) -> bool:
        """Whether a machine not in ``exclude`` could still take the request (failover)."""
        return bool(self.registry.candidates(tenant_id, model, exclude, only))

    def models(self, tenant_id: str) -> dict[str, ModelInfo]:
        """Every model a healthy machine of the tenant serves now."""
        return self.registry.models(tenant_id)

    def machine_models(self, tenant_id: str, machine_id: str) -> dict[str, ModelInfo]:
        """The models of one machine (a key bound to it), empty while it cannot serve."""
        session = self.registry.session(tenant_id, machine_id)
        if session is None or not session.accepting or session.backend_down is not None:
            return {}
        return dict(session.models)
