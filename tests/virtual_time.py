"""Tests on a virtual clock: an event loop whose time moves only when it would otherwise sleep.

Whenever nothing is ready to run and no socket has anything to read or write, the loop's clock
jumps straight to its next timer, so a test of a 30 s timeout takes no time and sees exactly
30 s pass. Sockets still work (their readiness is polled without waiting); a loop with no timer
at all waits for them for real.

    @virtual_time
    async def test_something() -> None: ...
"""

from __future__ import annotations

import asyncio
import functools
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec

P = ParamSpec("P")


class _Selector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:  # nothing scheduled: only a socket can wake the loop
            return super().select(None)
        self._loop.now += timeout  # nothing to do until the next timer: be there now
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_Selector(self))

    def time(self) -> float:
        return self.now


def virtual_time(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """Run the coroutine test ``test`` on a fresh ``VirtualClockLoop``, starting at 0."""

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        loop = VirtualClockLoop()
        try:
            loop.run_until_complete(test(*args, **kwargs))
        finally:
            _finish(loop)

    return run


def _finish(loop: asyncio.AbstractEventLoop) -> None:
    """What ``asyncio.run`` does on the way out: cancel what the test left running, let it
    finish, close async generators, then the loop."""
    try:
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        if left:
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
