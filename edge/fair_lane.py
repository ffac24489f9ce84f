"""One lane for heavy work, taken by its owners in turn.

Preparing a large request body (parsing many megabytes of JSON, validating it, building the tunnel
request) runs on the event loop every tenant shares. Run back to back, a burst of such bodies from
one key would hold the loop for as long as the burst lasts; through this lane they go one at a
time, and between two of them the loop serves everything else that is ready. Waiting owners are
served in rotation, so one key's burst cannot make another key's large request wait behind all of
it either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator

from edge.errors import ApiError

MAX_WAITING_PER_OWNER = 8


class FairLane:
    def __init__(self, max_waiting_per_owner: int = MAX_WAITING_PER_OWNER) -> None:
        self._max_waiting = max_waiting_per_owner
        self._busy = False
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @contextlib.asynccontextmanager
    async def turn(self, owner: str) -> AsyncIterator[None]:
        """Hold the lane for the body of the ``async with``; 429 when ``owner`` already has
        ``max_waiting_per_owner`` requests waiting for it."""
        if self._busy or self._waiting:
            await self._wait(owner)
        else:
            self._busy = True
        try:
            yield
        finally:
            self._pass_on()

    async def _wait(self, owner: str) -> None:
        queue = self._waiting.setdefault(owner, deque())
        if len(queue) >= self._max_waiting:
            raise ApiError(
                429,
                "too_many_large_requests",
                f"this key already has {self._max_waiting} large requests waiting to be read; "
                "send them one after another",
                headers={"Retry-After": "1"},
            )
        future = asyncio.get_running_loop().create_future()
        queue.append(future)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self._pass_on()  # given the lane just as we went away: hand it on
            else:
                self._forget(owner, future)
            raise

    def _forget(self, owner: str, future: asyncio.Future[None]) -> None:
        queue = self._waiting.get(owner)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self._waiting[owner]

    def _pass_on(self) -> None:
        """The holder is done: the next owner in rotation gets the lane, or it goes idle."""
        while self._waiting:
            owner, queue = next(iter(self._waiting.items()))
            future = queue.popleft()
            if queue:
                self._waiting.move_to_end(owner)  # served: to the back of the rotation
            else:
                del self._waiting[owner]
            if not future.done():
                future.set_result(None)
                return
        self._busy = False
