"""Dead-link detection (PROTOCOL.md §9) on a fake clock: the watchdog sleeps until
``next_wake()`` and then calls ``check()``, as both ends' loops do."""

from __future__ import annotations

import pytest

from protocol.liveness import Liveness, Verdict

INTERVAL = 5.0


def run_watchdog(
    live: Liveness, heard: list[float], until: float, late: float = 0.0
) -> tuple[float | None, list[float]]:
    """The watchdog on a clock that jumps to each wake-up, ``late`` seconds after it was due;
    frames arrive at the times in ``heard``. When it found the link dead (or None), and the
    heartbeat ticks it saw."""
    ticks: list[float] = []
    arrivals = sorted(heard)
    while True:
        wake = live.next_wake() + late
        while arrivals and arrivals[0] <= wake:  # the reader runs while the watchdog sleeps
            live.heard(arrivals.pop(0))
            wake = live.next_wake() + late
        if wake > until:
            return None, ticks
        verdict = live.check(wake)
        if verdict is Verdict.DEAD:
            return wake, ticks
        if verdict is Verdict.TICK:
            ticks.append(wake)


def test_a_link_is_dead_three_intervals_after_the_last_frame_not_at_the_next_tick() -> None:
    # The last frame arrived at 4.0 s: dead at 19.0 s, between the ticks at 15 and 20 s (the
    # loops used to look once per interval, and found it at 20 s).
    dead_at, ticks = run_watchdog(Liveness(INTERVAL, now=0.0), heard=[4.0], until=100.0)
    assert dead_at == 19.0
    assert ticks == [5.0, 10.0, 15.0]  # the edge pinged on every tick meanwhile


def test_never_hearing_anything_is_dead_at_three_intervals() -> None:
    dead_at, _ = run_watchdog(Liveness(INTERVAL, now=0.0), heard=[], until=100.0)
    assert dead_at == 15.0


def test_detection_is_at_three_intervals_whatever_the_phase_of_the_last_frame() -> None:
    for offset in (0.0, 0.01, 1.0, 2.5, 4.99):
        last = 10.0 + offset
        dead_at, _ = run_watchdog(Liveness(INTERVAL, now=0.0), [1.0, 6.0, last], until=100.0)
        assert dead_at == last + 3 * INTERVAL


def test_scheduling_delays_within_the_slack_delay_detection_by_no_more() -> None:
    live = Liveness(INTERVAL, now=0.0)
    assert live.slack == 0.5
    dead_at, ticks = run_watchdog(live, heard=[4.0], until=100.0, late=0.3)
    assert dead_at == 19.3
    assert ticks == pytest.approx([5.3, 10.6, 15.9])  # each tick an interval after the last


def test_the_deadline_follows_the_last_frame() -> None:
    live = Liveness(INTERVAL, now=0.0)
    assert live.deadline() == 15.0
    live.heard(7.5)
    assert live.deadline() == 22.5
    live.heard(3.0)  # an older timestamp never moves the deadline back
    assert live.deadline() == 22.5


def test_hearing_anything_keeps_it_alive() -> None:
    live = Liveness(INTERVAL, now=0.0)
    dead_at, ticks = run_watchdog(live, heard=[t * 4.0 for t in range(1, 25)], until=96.0)
    assert dead_at is None
    assert ticks == [t * INTERVAL for t in range(1, 20)]  # one heartbeat per interval


def test_a_second_check_without_sleeping_sees_no_stall() -> None:
    live = Liveness(INTERVAL, now=0.0)
    assert live.check(live.next_wake()) is Verdict.TICK
    assert live.check(5.2) is Verdict.WAIT
    assert live.silence(5.2) == 5.2  # nothing forgiven


def test_our_own_stall_is_not_blamed_on_the_peer() -> None:
    live = Liveness(INTERVAL, now=0.0)
    assert live.next_wake() == 5.0
    # The loop could not run for 60 s (overloaded or paused): frames may be waiting unread.
    assert live.check(65.0) is Verdict.TICK
    assert live.silence(65.0) == INTERVAL - live.slack  # 60 s forgiven, and the slack
    assert live.next_wake() == 70.0
    assert live.check(70.0) is Verdict.TICK
    assert live.next_wake() == 75.0
    assert live.check(75.0) is Verdict.TICK
    assert live.next_wake() == 75.5  # 15 s of silence, not counting the stall
    assert live.check(75.5) is Verdict.DEAD


def test_a_stall_through_the_deadline_gives_the_reader_a_turn_first() -> None:
    def stalled_at_the_deadline() -> Liveness:
        live = Liveness(INTERVAL, now=0.0)
        live.heard(4.0)
        for wake in (5.0, 10.0, 15.0):
            assert live.next_wake() == wake
            assert live.check(wake) is Verdict.TICK
        assert live.next_wake() == 19.0
        # Stalled until 30 s: frames that came meanwhile are unread, so not dead yet.
        assert live.check(30.0) is Verdict.TICK
        assert live.deadline() == 30.0 + live.slack
        return live

    found = stalled_at_the_deadline()
    found.heard(30.01)  # the reader ran and found a frame: the link lives on
    assert found.check(found.next_wake()) is not Verdict.DEAD
    quiet = stalled_at_the_deadline()  # the reader found nothing: dead just after the stall
    assert quiet.next_wake() == 30.5
    assert quiet.check(30.5) is Verdict.DEAD


def test_a_frame_heard_during_a_stall_is_not_pushed_into_the_future() -> None:
    live = Liveness(INTERVAL, now=0.0)
    live.next_wake()
    live.heard(64.9)  # after the stall the reader ran before the watchdog
    assert live.check(65.0) is Verdict.TICK
    assert live.last_heard == 65.0  # forgiven up to now, never beyond
    assert live.deadline() == 80.0
