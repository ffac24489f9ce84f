"""What a tunnel carried, for the metrics (README "Operating it"): plain integers that the
connection (frames) and the asyncio adapter (WebSocket messages and their bytes) bump as they go,
read only when the metrics are scraped. Several links may share one, so that an edge counts all
its machines' tunnels together. Counted from the login's end on (``llmtunnel.tunnel.Link`` hands it
to its ``Connection``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Traffic:
    frames_received: int = 0
    frames_sent: int = 0
    # Once the session is open a message carries one frame or several (PROTOCOL.md §2).
    messages_received: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0

    def totals(self) -> tuple[tuple[str, int, int], ...]:
        """``(what, received, sent)`` for frames, messages and bytes."""
        return (
            ("frames", self.frames_received, self.frames_sent),
            ("messages", self.messages_received, self.messages_sent),
            ("bytes", self.bytes_received, self.bytes_sent),
        )
