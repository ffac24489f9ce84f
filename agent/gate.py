"""How many requests the machine runs at once, over all its tunnels (PROTOCOL.md §11).

An agent with tunnels to several edge nodes advertises its whole ``max_concurrency`` on each, so
that each node may send it that many; the gate is what keeps the GPU to that many at once. A
request that finds every slot taken waits in its tunnel's line, and freed slots go to the tunnels
in turn: one node's queue cannot starve another's (each node orders its own keys fairly).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Hashable


class Gate:
    """At most ``limit`` holders at once; waiters served one lane (tunnel) at a time, in turn."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.running = 0
        self._lanes: OrderedDict[Hashable, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return sum(len(lane) for lane in self._lanes.values())

    @contextlib.asynccontextmanager
    async def slot(self, lane: Hashable) -> AsyncIterator[None]:
        """Hold a slot for the body of the ``async with``; wait in ``lane``'s line for one."""
        if self.running < self.limit and not self._lanes:
            self.running += 1
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._lanes.setdefault(lane, deque()).append(future)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._release()  # granted as the waiter was cancelled: pass it on
                else:
                    self._unqueue(lane, future)
                raise
        try:
            yield
        finally:
            self._release()

    def _unqueue(self, lane: Hashable, future: asyncio.Future[None]) -> None:
        queue = self._lanes.get(lane)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self._lanes[lane]

    def _release(self) -> None:
        self.running -= 1
        while self._lanes and self.running < self.limit:
            lane, queue = next(iter(self._lanes.items()))
            future = queue.popleft()
            if queue:
                self._lanes.move_to_end(lane)  # served: to the back of the rotation
            else:
                del self._lanes[lane]
            if not future.done():
                self.running += 1
                future.set_result(None)
