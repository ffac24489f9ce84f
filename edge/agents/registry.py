"""Which machines are online, what they serve, and which one takes the next request.

The registry holds only live sessions (nothing persistent). Routing picks, among a tenant's
machines that serve the model, are not draining and whose backend answers, the one with the
fewest streams in flight that is under its advertised concurrency. When all are full a request
waits, bounded in time and in the number of waiters, in its API key's queue; freed slots go to
the keys in turn (round robin), so a burst from one key cannot starve the others on a shared GPU.

A slot is leased before its stream opens (the request may still wait, or go away, in between),
and only a ``Lease`` reserves or frees one, so a slot can be neither lost nor used twice. The
registry knows a session only as a ``Routable``: what routing reads and the stream it opens.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, defaultdict, deque
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from edge.agents.stream import TunnelStream
from edge.errors import ApiError
from protocol.requests import Request

DEFAULT_MAX_WAITERS = 256


class Routable(Protocol):
    """What the registry needs from a machine's session."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def machine_id(self) -> str: ...
    @property
    def machine_name(self) -> str: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def models(self) -> dict[str, dict[str, Any]]: ...
    @property
    def in_flight(self) -> int:
        """Streams running now (a leased slot not opened yet is not one)."""

    @property
    def accepting(self) -> bool:
        """Whether new streams may go to it (logged in, not draining)."""

    @property
    def backend_down(self) -> str | None:
        """Why its backend does not answer, or ``None`` while it does (PROTOCOL.md §5)."""

    def open_stream(self, request: Request, timeout: float, request_id: str) -> TunnelStream:
        """Start a stream; called by ``Lease.open`` only. ``request_id`` names the client's
        request in the machine's logs (PROTOCOL.md §2)."""


S = TypeVar("S", bound=Routable)


class Registry(Generic[S]):
    def __init__(self, max_waiters: int = DEFAULT_MAX_WAITERS) -> None:
        self._by_tenant: dict[str, dict[str, S]] = defaultdict(dict)
        self._changed = asyncio.Event()
        # Per tenant, per API key, the requests waiting for a slot; key order is the rotation.
        self._queues: dict[str, OrderedDict[str, deque[_Waiter[S]]]] = {}
        self._waiters = 0
        self._max_waiters = max_waiters
        # Slots handed out by acquire() whose stream is not open yet. Only a Lease changes these
        # counts: made, it takes a slot (_take_slot); opened or released, it frees it.
        self._reserved: dict[S, int] = defaultdict(int)

    def reserved(self, session: S) -> int:
        """Slots of ``session`` leased and not yet turned into streams."""
        return self._reserved.get(session, 0)

    def _load(self, session: S) -> int:
        return session.in_flight + self._reserved.get(session, 0)

    def _take_slot(self, session: S) -> None:
        self._reserved[session] += 1

    def _free_slot(self, session: S) -> None:
        left = self._reserved[session] - 1
        if left:
            self._reserved[session] = left
        else:
            del self._reserved[session]

    def add(self, session: S) -> S | None:
        """Register a session; returns the session it replaces for the same machine, if any."""
        old = self._by_tenant[session.tenant_id].get(session.machine_id)
        self._by_tenant[session.tenant_id][session.machine_id] = session
        self.notify(session.tenant_id)
        return old

    def remove(self, session: S) -> None:
        machines = self._by_tenant.get(session.tenant_id, {})
        if machines.get(session.machine_id) is session:
            del machines[session.machine_id]
        self.notify(session.tenant_id)

    def session(self, tenant_id: str, machine_id: str) -> S | None:
        return self._by_tenant.get(tenant_id, {}).get(machine_id)

    def tenants(self) -> list[str]:
        return [tenant for tenant, machines in self._by_tenant.items() if machines]

    def sessions(self, tenant_id: str) -> list[S]:
        return list(self._by_tenant.get(tenant_id, {}).values())

    def queued(self) -> dict[str, int]:
        """Requests waiting for a slot, per tenant that has any (for the metrics)."""
        return {
            tenant: sum(len(queue) for queue in queues.values())
            for tenant, queues in self._queues.items()
            if queues
        }

    def models(self, tenant_id: str) -> dict[str, dict[str, Any]]:
        """Every model a healthy online machine of the tenant serves (first machine's details
        win): a degraded machine's models are not served now."""
        merged: dict[str, dict[str, Any]] = {}
        for session in self.sessions(tenant_id):
            if session.backend_down is not None:
                continue
            for name, info in session.models.items():
                merged.setdefault(name, info)
        return merged

    def notify(self, tenant_id: str | None = None) -> None:
        """Wake waiters: a slot freed, a machine joined or its models changed. With
        ``tenant_id``, only that tenant's queues are served: a machine's events concern only
        its own tenant, and one machine's flood of them must not cost every tenant a pass."""
        # Set the current event for everyone waiting on it and start a fresh one: a cheap
        # broadcast with no lock and no task per notification (this runs at every stream end).
        self._changed.set()
        self._changed = asyncio.Event()
        if tenant_id is not None:
            self._dispatch(tenant_id)
            return
        for tenant in list(self._queues):
            self._dispatch(tenant)

    async def wait_idle(self) -> None:
        """Return once no stream runs on any machine."""
        while True:
            changed = self._changed
            if not any(s.in_flight for t in self.tenants() for s in self.sessions(t)):
                return
            await changed.wait()

    def candidates(
        self,
        tenant_id: str,
        model: str,
        exclude: frozenset[str] = frozenset(),
        only: str | None = None,
    ) -> list[S]:
        """Sessions that could take ``model`` now or later: accepting, healthy, serving it, not
        excluded, and the ``only`` machine when the key is bound to one."""
        return [
            s
            for s in self._online(tenant_id, exclude, only)
            if s.backend_down is None and model in s.models
        ]

    def _online(self, tenant_id: str, exclude: frozenset[str], only: str | None) -> list[S]:
        return [
            s
            for s in self.sessions(tenant_id)
            if s.accepting and s.machine_id not in exclude and only in (None, s.machine_id)
        ]

    def _pick(
        self, tenant_id: str, model: str, exclude: frozenset[str], only: str | None
    ) -> S | None:
        best: S | None = None
        best_load = 0
        for session in self.candidates(tenant_id, model, exclude, only):
            load = self._load(session)
            if load < session.max_concurrency and (best is None or load < best_load):
                best, best_load = session, load
        return best

    def _check_servable(
        self, tenant_id: str, model: str, exclude: frozenset[str], only: str | None
    ) -> None:
        sessions = self._online(tenant_id, exclude, only)
        if not sessions and only is not None:
            raise ApiError(
                503,
                "no_machine_online",
                "the machine this API key is bound to is not online",
            )
        if not sessions:
            raise ApiError(
                503,
                "no_machine_online",
                "no machine of this tenant is online; start `llmtunnel agent run` on a GPU box",
            )
        if any(s.backend_down is None and model in s.models for s in sessions):
            return
        # A degraded machine that lists the model, or that could not list any (its backend was
        # down when it connected), may well be the one that serves it: say why it cannot.
        for s in sessions:
            if s.backend_down is not None and (model in s.models or not s.models):
                raise ApiError(
                    503,
                    "machine_degraded",
                    f"machine `{s.machine_name}` cannot serve `{model}` now: its backend is not"
                    f" answering ({s.backend_down})",
                )
        raise ApiError(
            404,
            "model_not_found",
            f"The model `{model}` does not exist or is not served by any online machine",
            param="model",
        )

    async def acquire(
        self,
        tenant_id: str,
        model: str,
        timeout: float,
        exclude: frozenset[str] = frozenset(),
        key_id: str = "",
        only: str | None = None,
    ) -> Lease[S]:
        """A lease on a slot of a session that serves ``model``: ``Lease.open`` starts the
        caller's stream in it, ``Lease.release`` gives it back unused.

        When every machine is full the request waits, up to ``timeout`` seconds, in its key's
        queue; freed slots go to the keys in turn, so one key's burst cannot starve the others.
        ``exclude`` names machines already tried for this request (failover); ``only`` names the
        machine the key is bound to, if any. Raises
        ``ApiError``: 503 when no machine is online, 404 when none serves the model, 503 when
        all stay busy past ``timeout`` or too many requests are already waiting.
        """
        self._check_servable(tenant_id, model, exclude, only)
        queues = self._queues.get(tenant_id)
        if not queues:  # nobody is waiting: a free slot is ours
            session = self._pick(tenant_id, model, exclude, only)
            if session is not None:
                return Lease(self, session)
        if self._waiters >= self._max_waiters:
            raise ApiError(503, "machines_busy", "all machines are busy and the queue is full")
        waiter = _Waiter(model, exclude, only, asyncio.get_running_loop().create_future())
        self._queues.setdefault(tenant_id, OrderedDict()).setdefault(key_id, deque()).append(waiter)
        self._waiters += 1
        served = False
        try:
            self._dispatch(tenant_id)
            async with asyncio.timeout(timeout):
                lease = await waiter.future
            served = True
            return lease
        except TimeoutError:
            raise ApiError(
                503,
                "machines_busy",
                f"all machines serving `{model}` stayed busy for {timeout:g} s",
            ) from None
        finally:
            self._waiters -= 1
            self._leave(tenant_id, key_id, waiter, served)

    def _leave(self, tenant_id: str, key_id: str, waiter: _Waiter[S], served: bool) -> None:
        """A waiter leaves (served, timed out, cancelled): unqueue it, return an unused grant."""
        queues = self._queues.get(tenant_id)
        queue = queues.get(key_id) if queues else None
        if queues is not None and queue is not None and waiter in queue:
            queue.remove(waiter)
            if not queue:
                del queues[key_id]
        future = waiter.future
        if not future.done():
            future.cancel()
        elif not served and not future.cancelled() and future.exception() is None:
            future.result().release()  # granted, but the request went away first

    def _dispatch(self, tenant_id: str) -> None:
        """Hand free slots to waiting requests, one key at a time, in rotation."""
        queues = self._queues.get(tenant_id)
        progress = True
        while queues and progress:
            progress = False
            for key_id in list(queues):
                waiter = queues[key_id][0]
                if waiter.future.done():
                    # Cancelled (its client went away) but its task has not run to leave the
                    # queue yet: a slot granted to it would be lost, and set_result would raise.
                    _pop(queues, key_id)
                    progress = True
                    break
                try:
                    self._check_servable(tenant_id, waiter.model, waiter.exclude, waiter.only)
                except ApiError as exc:
                    _pop(queues, key_id).future.set_exception(exc)
                    progress = True
                    break
                session = self._pick(tenant_id, waiter.model, waiter.exclude, waiter.only)
                if session is None:
                    continue  # this key waits for another model's machine; others may go
                _pop(queues, key_id).future.set_result(Lease(self, session))
                if key_id in queues:
                    queues.move_to_end(key_id)  # served: to the back of the rotation
                progress = True
                break


@dataclass(frozen=True, slots=True)
class _Waiter(Generic[S]):
    model: str
    exclude: frozenset[str]
    only: str | None
    future: asyncio.Future[Lease[S]]


def _pop(queues: OrderedDict[str, deque[_Waiter[S]]], key_id: str) -> _Waiter[S]:
    waiter = queues[key_id].popleft()
    if not queues[key_id]:
        del queues[key_id]
    return waiter


class Lease(Generic[S]):
    """One slot on one machine, held from ``Registry.acquire`` until it becomes a stream
    (``open``) or is given back (``release``). It is the only way a slot is reserved or freed,
    so a slot can be neither lost nor used twice."""

    __slots__ = ("_done", "_registry", "session")

    def __init__(self, registry: Registry[S], session: S) -> None:
        self._registry = registry
        self.session = session
        self._done = False
        registry._take_slot(session)

    @property
    def machine_id(self) -> str:
        return self.session.machine_id

    @property
    def machine_name(self) -> str:
        return self.session.machine_name

    def open(self, request: Request, timeout: float, request_id: str = "") -> TunnelStream:
        """Start the stream in this slot. If the machine cannot be sent the request
        (``ApiError``), the slot is free again."""
        self._give_back()
        try:
            return self.session.open_stream(request, timeout, request_id)
        except BaseException:
            self._registry.notify(self.session.tenant_id)
            raise

    def release(self) -> None:
        """Give the slot back unused (the request went away); a no-op once opened."""
        if not self._done:
            self._give_back()
            self._registry.notify(self.session.tenant_id)

    def _give_back(self) -> None:
        if self._done:
            raise RuntimeError("a lease is used once")
        self._done = True
        self._registry._free_slot(self.session)
