"""The gate over all of a machine's tunnels: at most ``limit`` at once, tunnels served in turn."""

from __future__ import annotations

import asyncio

from agent.gate import Gate


async def _hold(gate: Gate, lane: str, order: list[str], release: asyncio.Event) -> None:
    async with gate.slot(lane):
        order.append(lane)
        await release.wait()


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_at_most_limit_at_once_and_waiting_tunnels_served_in_turn() -> None:
    gate, release = Gate(2), asyncio.Event()
    order: list[str] = []
    # Tunnel a queues four requests before tunnel b queues two: b is not served after all of a.
    tasks = [asyncio.create_task(_hold(gate, lane, order, release)) for lane in "aaaabb"]
    await _settle()
    assert order == ["a", "a"] and gate.running == 2 and gate.waiting == 4
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["a", "a", "a", "b", "a", "b"]
    assert gate.running == 0 and gate.waiting == 0


async def test_a_cancelled_waiter_leaves_no_trace_and_a_granted_one_passes_its_slot_on() -> None:
    gate, release = Gate(1), asyncio.Event()
    order: list[str] = []
    holder = asyncio.create_task(_hold(gate, "a", order, release))
    await _settle()
    waiter = asyncio.create_task(_hold(gate, "b", order, release))
    third = asyncio.create_task(_hold(gate, "c", order, release))
    await _settle()
    waiter.cancel()  # cancelled while waiting
    await asyncio.gather(waiter, return_exceptions=True)
    assert gate.waiting == 1
    release.set()
    await asyncio.gather(holder, third)
    assert order == ["a", "c"] and gate.running == 0
    # Granted, then cancelled before it ran: the slot is not lost.
    release.clear()
    first = asyncio.create_task(_hold(gate, "a", order, release))
    await _settle()
    second = asyncio.create_task(_hold(gate, "b", order, release))
    await _settle()
    release.set()
    await asyncio.sleep(0)  # first ends and grants second its slot …
    second.cancel()  # … which is cancelled before it resumes
    await asyncio.gather(first, second, return_exceptions=True)
    assert gate.running == 0
    async with asyncio.timeout(1), gate.slot("z"):
        pass
