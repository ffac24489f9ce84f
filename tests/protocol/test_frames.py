"""Frame types: pinned wire codes and the range checks beyond field types."""

from __future__ import annotations

import pytest

from protocol import RemoteProtocolError
from protocol.frames import (
    FRAME_CLASSES,
    Auth,
    Cancel,
    Challenge,
    Delta,
    Frame,
    FrameType,
    Hello,
    Open,
    Ready,
    Window,
)

# Written out by hand on purpose: changing a code breaks every deployed agent (PROTOCOL.md §2).
PINNED = {
    "CHALLENGE": 1,
    "AUTH": 2,
    "READY": 3,
    "HELLO": 4,
    "MODELS": 5,
    "OPEN": 6,
    "DELTA": 7,
    "END": 8,
    "ERROR": 9,
    "CANCEL": 10,
    "WINDOW": 11,
    "PING": 12,
    "PONG": 13,
    "GOAWAY": 14,
}


def test_every_frame_type_code_is_pinned() -> None:
    assert {t.name: t.value for t in FrameType} == PINNED


def test_every_code_has_exactly_one_frame_class() -> None:
    assert sorted(FRAME_CLASSES) == sorted(PINNED.values())
    assert all(code == cls.TYPE for code, cls in FRAME_CLASSES.items())


@pytest.mark.parametrize(
    "frame",
    [
        Challenge(b"short", "edge", [1]),
        Challenge(b"n" * 32, "edge", []),
        Challenge(b"n" * 32, "h" * 256, [1]),
        Auth("", 1, b"s" * 64),
        Auth("m", 1, b"s" * 63),
        Ready("s", 100, 1, 1, 5.0),
        Ready("s", 1 << 20, 0, 1, 5.0),
        Ready("s", 1 << 20, 1, 1, 0),
        Hello("1", 0, []),
        Hello("1", 1, [{"name": "m"}]),
        Hello("1", 1, [{"name": "m", "capabilities": [1]}]),
        Open(0, {"op": "chat"}, 0),
        Open(1, {}, 0),
        Open(1, {"op": "chat"}, -1),
        Delta(1, "", "", [{"id": "c", "name": "f", "arguments": "{}"}]),
        Delta(-1, "", "", []),
        Window(1, 0),
        Window(1, 2**31),
        Cancel(2**31, "x"),
    ],
)
def test_check_rejects_out_of_range_fields(frame: Frame) -> None:
    with pytest.raises(RemoteProtocolError):
        frame.check()


def test_delta_flow_size_counts_utf8_text_only() -> None:
    call = {"id": "c", "name": "f", "arguments": {"x": "y" * 100}}
    assert Delta(1, "héllo", "ok", [call]).flow_size == 6 + 2
