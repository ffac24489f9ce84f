"""Credit windows on their own (PROTOCOL.md §8)."""

from __future__ import annotations

import pytest

from protocol import FlowControlError, LocalProtocolError
from protocol.frames import MAX_WINDOW
from protocol.windows import ReceiveWindow, SendWindow


def test_send_window_spends_and_refuses_beyond_credit() -> None:
    window = SendWindow(10)
    window.consume(4)
    window.consume(6)
    assert window.available == 0
    window.consume(0)
    with pytest.raises(LocalProtocolError, match="sending 1 bytes with only 0 of credit"):
        window.consume(1)
    assert window.available == 0


def test_send_window_grows_up_to_the_maximum() -> None:
    window = SendWindow(10)
    window.grow(MAX_WINDOW - 10)
    assert window.available == MAX_WINDOW
    with pytest.raises(FlowControlError, match="exceed the maximum window"):
        window.grow(1)
    assert window.available == MAX_WINDOW


def test_receive_window_charges_and_refuses_beyond_credit() -> None:
    window = ReceiveWindow(100)
    window.receive(100)
    assert window.available == 0
    with pytest.raises(FlowControlError, match="peer sent 1 bytes with only 0 of credit left"):
        window.receive(1)


def test_receive_window_hands_back_credit_at_half_the_window() -> None:
    window = ReceiveWindow(100)
    window.receive(80)
    assert window.consumed(30) == 0
    assert window.consumed(19) == 0
    assert window.available == 20
    assert window.consumed(1) == 50  # 50 of 100: exactly half
    assert window.available == 20  # reopened only when the WINDOW goes out
    window.grant(50)
    assert window.available == 70
    window.receive(20)
    assert window.available == 50
    assert window.consumed(30) == 0
    assert window.consumed(20) == 50
    window.grant(50)
    assert window.available == window.size  # everything received was read and handed back


def test_an_odd_window_rounds_the_half_up() -> None:
    window = ReceiveWindow(5)
    window.receive(5)
    assert window.consumed(2) == 0  # 2 · 2 < 5
    assert window.consumed(1) == 3  # 3 · 2 ≥ 5
