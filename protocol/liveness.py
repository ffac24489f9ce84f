"""When to call a link dead (PROTOCOL.md §9), as a clock-driven state machine with no I/O.

A link is dead three heartbeat intervals after the last frame heard from the peer. The watchdog
of each end sleeps until ``next_wake()``, the earlier of the next heartbeat tick (when the edge
sends its PING) and that ``deadline()``, so a dead link is found at the deadline, not at the first
tick after it.

Time the local event loop spent unable to run (it was overloaded, or the process was paused) is
not blamed on the peer: frames that arrived meanwhile are still waiting in the socket, unread. A
wake-up later than planned by more than ``slack`` is such a stall: the stall is not counted as
silence, and the peer gets ``slack`` more so that the reader can take what is waiting before the
watchdog judges. The part of a stall before the planned wake-up cannot be told from silence, but
ticks keep wake-ups at most one interval apart, so that part is under one of the three intervals.
"""

from __future__ import annotations

from enum import Enum

SILENT_INTERVALS = 3
SLACK_FRACTION = 0.1  # of the interval: scheduling delays below this are not a stall


class Verdict(Enum):
    DEAD = "dead"  # nothing heard for three intervals: drop the link
    TICK = "tick"  # a heartbeat is due (the edge sends PING)
    WAIT = "wait"  # nothing to do until next_wake()


class Liveness:
    __slots__ = ("_next_tick", "_planned", "interval", "last_heard", "slack")

    def __init__(self, interval: float, now: float) -> None:
        self.interval = interval
        self.slack = interval * SLACK_FRACTION
        self.last_heard = now
        self._next_tick = now + interval
        self._planned = self._next_tick

    def heard(self, now: float) -> None:
        """Something arrived from the peer."""
        self.last_heard = max(self.last_heard, now)

    def deadline(self) -> float:
        """When the link is dead if nothing more arrives (§9)."""
        return self.last_heard + SILENT_INTERVALS * self.interval

    def next_wake(self) -> float:
        """When the watchdog should call ``check`` next: the next tick or the deadline."""
        self._planned = min(self._next_tick, self.deadline())
        return self._planned

    def check(self, now: float) -> Verdict:
        """The watchdog woke (at ``next_wake()``, or later if its loop stalled): judge."""
        lateness = now - self._planned
        if lateness > self.slack:  # our own stall, not the peer's silence
            self.last_heard = min(now, self.last_heard + lateness + self.slack)
        if now >= self.deadline():
            return Verdict.DEAD
        self.next_wake()  # a second check without sleeping in between sees no lateness
        if now < self._next_tick:
            return Verdict.WAIT
        self._next_tick = now + self.interval
        self._planned = min(self._next_tick, self.deadline())
        return Verdict.TICK

    def silence(self, now: float) -> float:
        return now - self.last_heard
