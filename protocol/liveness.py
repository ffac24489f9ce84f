"""When to call a link dead (PROTOCOL.md §9), as a clock-driven state machine with no I/O.

A link is dead after three heartbeat intervals with nothing received. Time the local event loop
spent unable to check (it was overloaded, or the process was paused) is not blamed on the peer:
frames that arrived meanwhile are still waiting in the socket, unread.
"""

from __future__ import annotations

SILENT_INTERVALS = 3


class Liveness:
    __slots__ = ("_last_check", "interval", "last_heard")

    def __init__(self, interval: float, now: float) -> None:
        self.interval = interval
        self.last_heard = now
        self._last_check = now

    def heard(self, now: float) -> None:
        """Something arrived from the peer."""
        self.last_heard = now

    def expired(self, now: float) -> bool:
        """Called about once per interval: is the peer silent for too long?"""
        lateness = max(0.0, now - self._last_check - self.interval)
        self._last_check = now
        self.last_heard += lateness  # our own stall, not the peer's silence
        return self.silence(now) > SILENT_INTERVALS * self.interval

    def silence(self, now: float) -> float:
        return now - self.last_heard
