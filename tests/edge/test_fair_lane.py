from __future__ import annotations

import asyncio

import pytest

from edge.errors import ApiError
from edge.fair_lane import FairLane


async def _hold(lane: FairLane, owner: str, log: list[str], release: asyncio.Event) -> None:
    async with lane.turn(owner):
        log.append(owner)
        await release.wait()


async def test_one_holder_at_a_time_and_owners_take_turns() -> None:
    lane = FairLane()
    order: list[str] = []
    gates = {name: asyncio.Event() for name in ("a1", "a2", "a3", "b1", "c1")}

    async def hold(name: str) -> None:
        async with lane.turn(name[0]):
            order.append(name)
            await gates[name].wait()

    tasks = [asyncio.create_task(hold(n)) for n in ("a1", "a2", "a3", "b1", "c1")]
    for name in ("a1", "a2", "b1", "c1", "a3"):
        await asyncio.sleep(0.01)
        assert order[-1] == name  # only the holder got in
        gates[name].set()
    await asyncio.gather(*tasks)
    # a1 held the lane while a2, a3, b1 and c1 queued: owners then go in rotation (a, b, c,
    # a), so b and c wait behind one of a's queued requests, not behind all of a's burst.
    assert order == ["a1", "a2", "b1", "c1", "a3"]


async def test_an_owner_with_too_many_waiting_is_refused() -> None:
    lane = FairLane(max_waiting_per_owner=2)
    release = asyncio.Event()
    log: list[str] = []
    tasks = [asyncio.create_task(_hold(lane, "a", log, release)) for _ in range(3)]
    await asyncio.sleep(0.01)
    with pytest.raises(ApiError) as refused:
        async with lane.turn("a"):
            pass
    assert (refused.value.status, refused.value.code) == (429, "too_many_large_requests")
    async with asyncio.timeout(1):  # another owner still queues
        other = asyncio.create_task(_hold(lane, "b", log, release))
        release.set()
        await asyncio.gather(*tasks, other)
    assert sorted(log) == ["a", "a", "a", "b"]


async def test_a_waiter_that_goes_away_does_not_keep_the_lane() -> None:
    lane = FairLane()
    release = asyncio.Event()
    log: list[str] = []
    holder = asyncio.create_task(_hold(lane, "a", log, release))
    await asyncio.sleep(0.01)
    gone = asyncio.create_task(_hold(lane, "b", log, release))
    await asyncio.sleep(0.01)
    gone.cancel()
    release.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await gone
    async with asyncio.timeout(1), lane.turn("c"):  # the lane is free again
        pass
    assert log == ["a"]
