"""Credit windows for flow control (PROTOCOL.md §8).

The sender holds a ``SendWindow`` and may send only what it has credit for. The receiver holds a
``ReceiveWindow``: it charges what arrives, and when the application has consumed half the window
it hands back an increment to announce, so WINDOW frames stay rare at full speed.
"""

from __future__ import annotations

from protocol.errors import FlowControlError, LocalProtocolError
from protocol.frames import MAX_WINDOW


class SendWindow:
    __slots__ = ("available",)

    def __init__(self, initial: int) -> None:
        self.available = initial

    def consume(self, size: int) -> None:
        if size > self.available:
            raise LocalProtocolError(f"sending {size} bytes with only {self.available} of credit")
        self.available -= size

    def grow(self, increment: int) -> None:
        if self.available + increment > MAX_WINDOW:
            raise FlowControlError(
                f"window increment {increment} would exceed the maximum window {MAX_WINDOW}"
            )
        self.available += increment


class ReceiveWindow:
    __slots__ = ("_consumed", "available", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.available = size
        self._consumed = 0

    def receive(self, size: int) -> None:
        """Charge bytes that arrived; ``FlowControlError`` when the peer had no credit for them."""
        if size > self.available:
            raise FlowControlError(
                f"peer sent {size} bytes with only {self.available} of credit left"
            )
        self.available -= size

    def consumed(self, size: int) -> int:
        """The application used ``size`` bytes; returns the increment to announce now, or 0.

        The window reopens only when that increment is sent (``grant``), so the two ends count
        the same credit."""
        self._consumed += size
        if self._consumed * 2 < self.size:
            return 0
        increment, self._consumed = self._consumed, 0
        return increment

    def check_grant(self, increment: int) -> None:
        """Refuse a grant the peer would refuse: its window would pass the maximum (§8)."""
        if self.available + increment > MAX_WINDOW:
            raise LocalProtocolError(
                f"window increment {increment} would exceed the maximum window {MAX_WINDOW}"
            )

    def grant(self, increment: int) -> None:
        """A WINDOW with ``increment`` went to the peer: it may send that much more."""
        self.available += increment
