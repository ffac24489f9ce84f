"""Which machines are online, what they serve, and which one takes the next request.

The registry holds only live sessions (nothing persistent). Routing picks, among a tenant's
machines that serve the model and are not draining, the one with the fewest streams in flight that
is under its advertised concurrency. When all are full a request waits, bounded in time and in the
number of waiters, for a slot to free up.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from edge.errors import ApiError

if TYPE_CHECKING:
    from edge.tunnel import AgentSession

DEFAULT_MAX_WAITERS = 256


class Registry:
    def __init__(self, max_waiters: int = DEFAULT_MAX_WAITERS) -> None:
        self._by_tenant: dict[str, dict[str, AgentSession]] = defaultdict(dict)
        self._changed = asyncio.Event()
        self._waiters = 0
        self._max_waiters = max_waiters

    def add(self, session: AgentSession) -> AgentSession | None:
        """Register a session; returns the session it replaces for the same machine, if any."""
        old = self._by_tenant[session.tenant_id].get(session.machine_id)
        self._by_tenant[session.tenant_id][session.machine_id] = session
        self.notify()
        return old

    def remove(self, session: AgentSession) -> None:
        machines = self._by_tenant.get(session.tenant_id, {})
        if machines.get(session.machine_id) is session:
            del machines[session.machine_id]
        self.notify()

    def session(self, tenant_id: str, machine_id: str) -> AgentSession | None:
        return self._by_tenant.get(tenant_id, {}).get(machine_id)

    def tenants(self) -> list[str]:
        return [tenant for tenant, machines in self._by_tenant.items() if machines]

    def sessions(self, tenant_id: str) -> list[AgentSession]:
        return list(self._by_tenant.get(tenant_id, {}).values())

    def models(self, tenant_id: str) -> dict[str, dict[str, Any]]:
        """Every model any online machine of the tenant serves (first machine's details win)."""
        merged: dict[str, dict[str, Any]] = {}
        for session in self.sessions(tenant_id):
            for name, info in session.models.items():
                merged.setdefault(name, info)
        return merged

    def notify(self) -> None:
        """Wake waiters: a slot freed, a machine joined or its models changed."""
        # Set the current event for everyone waiting on it and start a fresh one: a cheap
        # broadcast with no lock and no task per notification (this runs at every stream end).
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_idle(self) -> None:
        """Return once no stream runs on any machine."""
        while True:
            changed = self._changed
            if not any(s.in_flight for t in self.tenants() for s in self.sessions(t)):
                return
            await changed.wait()

    def candidates(
        self, tenant_id: str, model: str, exclude: frozenset[str] = frozenset()
    ) -> list[AgentSession]:
        """Sessions that could take ``model`` now or later: accepting, serving it, not excluded."""
        return [
            s
            for s in self.sessions(tenant_id)
            if s.accepting and model in s.models and s.machine_id not in exclude
        ]

    def _pick(self, tenant_id: str, model: str, exclude: frozenset[str]) -> AgentSession | None:
        best: AgentSession | None = None
        for session in self.candidates(tenant_id, model, exclude):
            if session.in_flight >= session.max_concurrency:
                continue
            if best is None or session.in_flight < best.in_flight:
                best = session
        return best

    def _check_servable(self, tenant_id: str, model: str) -> None:
        sessions = [s for s in self.sessions(tenant_id) if s.accepting]
        if not sessions:
            raise ApiError(
                503,
                "no_machine_online",
                "no machine of this tenant is online; start `llmtunnel agent run` on a GPU box",
            )
        if not any(model in s.models for s in sessions):
            raise ApiError(
                404,
                "model_not_found",
                f"The model `{model}` does not exist or is not served by any online machine",
                param="model",
            )

    async def acquire(
        self, tenant_id: str, model: str, timeout: float, exclude: frozenset[str] = frozenset()
    ) -> AgentSession:
        """A session to run ``model`` on, waiting up to ``timeout`` seconds for a free slot.

        ``exclude`` names machines already tried for this request (failover).

        Raises ``ApiError``: 503 when no machine is online, 404 when none serves the model, 503
        when all stay busy past ``timeout`` or too many requests are already waiting.
        """
        self._check_servable(tenant_id, model)
        session = self._pick(tenant_id, model, exclude)
        if session is not None:
            return session
        if self._waiters >= self._max_waiters:
            raise ApiError(503, "machines_busy", "all machines are busy and the queue is full")
        with self._waiting():
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        changed = self._changed
                        self._check_servable(tenant_id, model)
                        session = self._pick(tenant_id, model, exclude)
                        if session is not None:
                            return session
                        await changed.wait()
            except TimeoutError:
                raise ApiError(
                    503,
                    "machines_busy",
                    f"all machines serving `{model}` stayed busy for {timeout:g} s",
                ) from None

    @contextmanager
    def _waiting(self) -> Iterator[None]:
        self._waiters += 1
        try:
            yield
        finally:
            self._waiters -= 1
