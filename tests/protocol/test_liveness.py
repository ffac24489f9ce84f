from __future__ import annotations

from protocol.liveness import Liveness


def test_three_silent_intervals_make_a_link_dead() -> None:
    live = Liveness(interval=5.0, now=0.0)
    assert not live.expired(5.0)
    assert not live.expired(10.0)
    assert not live.expired(15.0)
    assert live.expired(20.0)


def test_hearing_anything_keeps_it_alive() -> None:
    live = Liveness(interval=5.0, now=0.0)
    for tick in range(1, 20):
        live.heard(tick * 5.0 - 1)
        assert not live.expired(tick * 5.0)


def test_our_own_stall_is_not_blamed_on_the_peer() -> None:
    live = Liveness(interval=5.0, now=0.0)
    # The loop could not check for 60 s (overloaded or paused): frames may be waiting unread.
    assert not live.expired(65.0)
    assert live.silence(65.0) == 5.0  # 60 s of lateness forgiven: one interval of silence
    assert not live.expired(70.0)
    assert not live.expired(75.0)
    assert live.expired(80.0)
