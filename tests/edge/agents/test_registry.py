"""The registry on its own: routing, concurrency caps, the fair queue and slot leases, with fake
sessions on a virtual clock (a 30 s wait takes no time and lasts exactly 30 s)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import pytest

from edge.agents.registry import Lease, Registry
from edge.agents.stream import TunnelStream
from edge.errors import ApiError
from protocol.requests import GenerateRequest
from tests.virtual_time import virtual_time

MODEL = "llama3.2:3b"
REQUEST = GenerateRequest(MODEL, "hi")


@dataclass(eq=False)
class FakeSession:
    """What the registry reads of a session, and the streams it opened, held until finished."""

    machine_id: str
    registry: Registry[FakeSession]
    max_concurrency: int = 2
    tenant_id: str = "acme"
    models: dict[str, dict[str, Any]] = field(default_factory=lambda: {MODEL: {"name": MODEL}})
    accepting: bool = True
    backend_down: str | None = None
    streams: list[TunnelStream] = field(default_factory=list)

    @property
    def machine_name(self) -> str:
        return f"name-of-{self.machine_id}"

    @property
    def in_flight(self) -> int:
        return len(self.streams)

    def open_stream(self, request: Any, timeout: float, request_id: str) -> TunnelStream:
        stream = TunnelStream(self, len(self.streams) + 1)
        self.streams.append(stream)
        return stream

    def consumed(self, stream_id: int, size: int) -> None:
        pass

    def forget(self, stream: TunnelStream, cancel_reason: str | None) -> None:
        self.streams.remove(stream)
        self.registry.notify(self.tenant_id)


def online(registry: Registry[FakeSession], *names: str, **options: Any) -> list[FakeSession]:
    sessions = [FakeSession(name, registry, **options) for name in names]
    for session in sessions:
        assert registry.add(session) is None
    return sessions


async def acquire(
    registry: Registry[FakeSession], key: str = "k1", timeout: float = 30.0, **options: Any
) -> Lease[FakeSession]:
    return await registry.acquire("acme", MODEL, timeout, key_id=key, **options)


async def run(registry: Registry[FakeSession], key: str = "k1") -> FakeSession:
    """Acquire a slot and open a stream in it; the session it runs on."""
    lease = await acquire(registry, key)
    lease.open(REQUEST, 60.0)
    return lease.session


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# ------------------------------------------------------------------------- routing


@virtual_time
async def test_a_request_goes_to_the_least_loaded_machine() -> None:
    registry: Registry[FakeSession] = Registry()
    a, b = online(registry, "a", "b", max_concurrency=4)
    assert [await run(registry) for _ in range(4)] == [a, b, a, b]
    a.streams[0].close()  # a finishes one: it is the less loaded now
    assert await run(registry) is a


@virtual_time
async def test_a_leased_slot_counts_as_load_before_its_stream_opens() -> None:
    registry: Registry[FakeSession] = Registry()
    a, b = online(registry, "a", "b")
    first, second = await acquire(registry), await acquire(registry)
    assert (first.session, second.session) == (a, b)
    assert registry.reserved(a) == registry.reserved(b) == 1
    first.open(REQUEST, 60.0)
    assert registry.reserved(a) == 0 and a.in_flight == 1


@virtual_time
async def test_machines_that_do_not_accept_or_serve_the_model_are_not_routed_to() -> None:
    registry: Registry[FakeSession] = Registry()
    draining, other_model, serving = online(registry, "draining", "other", "serving")
    draining.accepting = False
    other_model.models = {"mistral:7b": {}}
    assert [await run(registry) for _ in range(2)] == [serving, serving]
    assert registry.candidates("acme", MODEL) == [serving]


@virtual_time
async def test_no_machine_online_is_503_and_no_machine_serving_the_model_is_404() -> None:
    registry: Registry[FakeSession] = Registry()
    with pytest.raises(ApiError) as caught:
        await acquire(registry)
    assert (caught.value.status, caught.value.code) == (503, "no_machine_online")
    online(registry, "a", models={"mistral:7b": {}})
    with pytest.raises(ApiError) as caught:
        await acquire(registry)
    assert (caught.value.status, caught.value.code) == (404, "model_not_found")


@virtual_time
async def test_a_degraded_machine_is_skipped_and_its_models_are_not_listed() -> None:
    registry: Registry[FakeSession] = Registry()
    down, up = online(registry, "down", "up")
    down.models = {MODEL: {}, "only-on-down:7b": {}}
    down.backend_down = "cannot reach Ollama: ConnectError"
    assert [await run(registry) for _ in range(2)] == [up, up]
    assert registry.candidates("acme", MODEL) == [up]
    assert set(registry.models("acme")) == {MODEL}


@virtual_time
async def test_a_model_only_a_degraded_machine_serves_is_503_naming_the_cause() -> None:
    registry: Registry[FakeSession] = Registry()
    (down,) = online(registry, "down", backend_down="cannot reach Ollama: ConnectError")
    with pytest.raises(ApiError) as caught:
        await acquire(registry)
    assert (caught.value.status, caught.value.code) == (503, "machine_degraded")
    assert "name-of-down" in caught.value.message
    assert "cannot reach Ollama: ConnectError" in caught.value.message
    down.models = {}  # its backend was down when it connected: it could list nothing
    with pytest.raises(ApiError) as caught:
        await acquire(registry)
    assert caught.value.code == "machine_degraded"
    down.models = {"mistral:7b": {}}  # it lists others: this model is simply not served
    with pytest.raises(ApiError) as caught:
        await acquire(registry)
    assert caught.value.code == "model_not_found"


@virtual_time
async def test_a_waiter_learns_at_once_when_its_machine_degrades_and_is_served_when_it_heals() -> (
    None
):
    registry: Registry[FakeSession] = Registry()
    (a,) = online(registry, "a", max_concurrency=1)
    await run(registry)
    waiting = asyncio.create_task(acquire(registry))
    await asyncio.sleep(1)
    a.backend_down = "Ollama stopped"
    registry.notify("acme")
    with pytest.raises(ApiError) as caught:
        await waiting
    assert (caught.value.code, asyncio.get_running_loop().time()) == ("machine_degraded", 1.0)
    a.backend_down = None
    a.streams.clear()
    registry.notify("acme")
    assert (await acquire(registry)).session is a


# ------------------------------------------------------------------------- caps and waiting


@virtual_time
async def test_past_every_machines_concurrency_a_request_waits_for_a_slot() -> None:
    registry: Registry[FakeSession] = Registry()
    (a,) = online(registry, "a", max_concurrency=2)
    await run(registry)
    await run(registry)
    waiting = asyncio.create_task(acquire(registry))
    await asyncio.sleep(5)
    assert not waiting.done()  # two in flight on a machine that takes two
    a.streams[0].close()
    lease = await waiting
    assert lease.session is a
    assert asyncio.get_running_loop().time() == 5.0  # served the moment the slot freed


@virtual_time
async def test_waiting_is_bounded_in_time() -> None:
    registry: Registry[FakeSession] = Registry()
    online(registry, "a", max_concurrency=1)
    await run(registry)
    with pytest.raises(ApiError) as caught:
        await acquire(registry, timeout=30.0)
    assert asyncio.get_running_loop().time() == 30.0
    assert (caught.value.status, caught.value.code) == (503, "machines_busy")
    assert "stayed busy for 30 s" in caught.value.message
    assert registry._waiters == 0 and not registry._queues.get("acme")


@virtual_time
async def test_waiting_is_bounded_in_count() -> None:
    registry: Registry[FakeSession] = Registry(max_waiters=2)
    online(registry, "a", max_concurrency=1)
    await run(registry)
    waiters = [asyncio.create_task(acquire(registry, key)) for key in ("k1", "k2")]
    await settle()
    with pytest.raises(ApiError) as caught:
        await acquire(registry, "k3")
    assert asyncio.get_running_loop().time() == 0.0  # refused at once, not after a wait
    assert (caught.value.status, caught.value.code) == (503, "machines_busy")
    assert "queue is full" in caught.value.message
    for waiter in waiters:
        waiter.cancel()
    await asyncio.gather(*waiters, return_exceptions=True)
    assert registry._waiters == 0


@virtual_time
async def test_freed_slots_go_to_the_keys_in_turn() -> None:
    registry: Registry[FakeSession] = Registry()
    (a,) = online(registry, "a", max_concurrency=1)
    await run(registry)
    order: list[str] = []

    async def ask(key: str, label: str) -> None:
        lease = await acquire(registry, key, timeout=300.0)
        order.append(label)
        lease.open(REQUEST, 60.0)

    flood = [asyncio.create_task(ask("flood", f"flood{n}")) for n in range(3)]
    await settle()
    other = asyncio.create_task(ask("other", "other"))  # queued behind the whole flood
    await settle()
    for _ in range(4):
        a.streams[0].close()  # the running stream ends: one slot frees
        await settle()
    await asyncio.gather(*flood, other)
    assert order == ["flood0", "other", "flood1", "flood2"]


@virtual_time
async def test_a_lease_released_unused_frees_its_slot_for_a_waiter() -> None:
    registry: Registry[FakeSession] = Registry()
    (a,) = online(registry, "a", max_concurrency=1)
    held = await acquire(registry)
    waiting = asyncio.create_task(acquire(registry, "k2"))
    await settle()
    assert not waiting.done()
    held.release()  # the request went away before its stream opened
    assert (await waiting).session is a
    assert registry.reserved(a) == 1
    held.release()  # a no-op the second time: the slot is not freed twice
    assert registry.reserved(a) == 1


@virtual_time
async def test_a_waiter_that_leaves_after_being_granted_gives_the_slot_back() -> None:
    registry: Registry[FakeSession] = Registry()
    (a,) = online(registry, "a", max_concurrency=1)
    await run(registry)
    waiting = asyncio.create_task(acquire(registry))
    await settle()
    a.streams[0].close()  # the slot is granted to the waiter …
    waiting.cancel()  # … which goes away before it runs
    await asyncio.gather(waiting, return_exceptions=True)
    assert registry.reserved(a) == 0 and a.in_flight == 0
    assert (await acquire(registry)).session is a


@virtual_time
async def test_a_waiter_cancelled_just_before_a_slot_frees_is_passed_over() -> None:
    registry: Registry[FakeSession] = Registry()
    (a,) = online(registry, "a", max_concurrency=1)
    await run(registry)
    waiting = asyncio.create_task(acquire(registry))
    later = asyncio.create_task(acquire(registry, "k2"))
    await settle()
    waiting.cancel()  # the client goes away: its wait is cancelled at once, but its task has
    a.streams[0].close()  # not run to leave the queue when a slot frees (and close() is fine)
    assert (await later).session is a  # the slot went to the next waiter, not to no one
    await asyncio.gather(waiting, return_exceptions=True)
    assert registry.reserved(a) == 1 and a.in_flight == 0


def test_a_lease_is_used_once() -> None:
    registry: Registry[FakeSession] = Registry()
    (a,) = online(registry, "a")
    lease = Lease(registry, a)
    lease.open(REQUEST, 60.0)
    with pytest.raises(RuntimeError, match="used once"):
        lease.open(REQUEST, 60.0)
    lease.release()  # a no-op once opened
    assert registry.reserved(a) == 0 and a.in_flight == 1


# ------------------------------------------------------------------------- failover and binding


@virtual_time
async def test_failover_excludes_the_machines_already_tried() -> None:
    registry: Registry[FakeSession] = Registry()
    a, b = online(registry, "a", "b")
    assert (await acquire(registry, exclude=frozenset({"a"}))).session is b
    assert registry.candidates("acme", MODEL, frozenset({"a"})) == [b]
    with pytest.raises(ApiError) as caught:
        await acquire(registry, exclude=frozenset({"a", "b"}))
    assert (caught.value.status, caught.value.code) == (503, "no_machine_online")
    assert a.in_flight == 0


@virtual_time
async def test_a_bound_key_is_served_only_by_its_machine() -> None:
    registry: Registry[FakeSession] = Registry()
    a, b = online(registry, "a", "b", max_concurrency=1)
    await run(registry)  # a is busy, b is free …
    waiting = asyncio.create_task(acquire(registry, only="a"))  # … but this key wants a
    await asyncio.sleep(1)
    assert not waiting.done() and b.in_flight == 0
    a.streams[0].close()
    assert (await waiting).session is a
    with pytest.raises(ApiError) as caught:
        await acquire(registry, only="c")
    assert caught.value.status == 503
    assert caught.value.message == "the machine this API key is bound to is not online"


@virtual_time
async def test_a_waiter_learns_at_once_when_its_machine_goes_away() -> None:
    registry: Registry[FakeSession] = Registry()
    (a,) = online(registry, "a", max_concurrency=1)
    await run(registry)
    waiting = asyncio.create_task(acquire(registry))
    await asyncio.sleep(1)
    registry.remove(a)
    with pytest.raises(ApiError) as caught:
        await waiting
    assert (caught.value.code, asyncio.get_running_loop().time()) == ("no_machine_online", 1.0)


# ------------------------------------------------------------------------- wake-ups


async def test_notify_with_a_tenant_dispatches_only_that_tenants_queues(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry: Registry[FakeSession] = Registry()
    for tenant in ("t1", "t2", "t3"):
        registry._queues[tenant] = OrderedDict()
    dispatched: list[str] = []
    monkeypatch.setattr(registry, "_dispatch", dispatched.append)
    changed = registry._changed
    registry.notify("t2")
    assert dispatched == ["t2"]
    assert changed.is_set()  # whoever waits for any change (wait_idle) still wakes
    registry.notify()
    assert dispatched == ["t2", "t1", "t2", "t3"]


def test_a_machine_reconnecting_replaces_its_old_session() -> None:
    registry: Registry[FakeSession] = Registry()
    (old,) = online(registry, "a")
    new = FakeSession("a", registry)
    assert registry.add(new) is old
    registry.remove(old)  # the old session ending does not remove the new one
    assert registry.sessions("acme") == [new]
