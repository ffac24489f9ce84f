"""DELTAs waiting for their reader, held as bytes (PROTOCOL.md §8)."""

from __future__ import annotations

import sys

from edge.stream_buffer import PendingDeltas
from protocol import Delta

CALL = {"id": "call_é", "name": "get_wéather", "arguments": '{"city":"Zürich","days":[1,2]}'}


def test_deltas_come_back_as_one_with_everything_in_order() -> None:
    pending = PendingDeltas()
    frames = [
        Delta(3, "Hel", "hm", []),
        Delta(3, "lo 😀", "", [CALL]),
        Delta(3, "", " ok", [{**CALL, "id": "call_2"}]),
        Delta(3, "!", "", []),
    ]
    sizes = [pending.add(frame) for frame in frames]
    assert sizes == [frame.flow_size for frame in frames]
    assert pending.size == sum(sizes)
    merged = pending.take(3)
    assert merged == Delta(3, "Hello 😀!", "hm ok", [CALL, {**CALL, "id": "call_2"}])
    assert merged.flow_size == pending.size  # the credit handed back is what was charged


def test_a_single_delta_comes_back_unchanged() -> None:
    pending = PendingDeltas()
    frame = Delta(1, "", "", [CALL])
    pending.add(frame)
    assert pending.take(1) == frame


def test_what_waits_costs_about_its_bytes_not_a_frame_object_each() -> None:
    pending = PendingDeltas()
    for n in range(20_000):
        pending.add(
            Delta(1, "x", "", [] if n % 8 else [{"id": "c", "name": "", "arguments": "{}"}])
        )
    held = sum(sys.getsizeof(buffer) for buffer in (pending._content, pending._calls))
    # 20,000 frames charged a byte of text each, and 3 bytes for every eighth one's tool call:
    # 27,500 bytes, where the frame objects took about 5 MB.
    assert pending.size == 20_000 + 2_500 * 3
    assert held < 3 * pending.size
