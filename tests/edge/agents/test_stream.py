"""A tunnel stream's buffer, without sockets (PROTOCOL.md §8): DELTAs waiting for their reader are
held as bytes (``PendingDeltas``), and credit goes back as the reader takes them.

The stream is driven by hand: ``deliver`` is what the session's read loop calls for each frame,
``next`` what a request handler awaits; a stand-in session records the credit handed back."""

from __future__ import annotations

import asyncio
import sys
import time
import tracemalloc
from typing import Any

from edge.agents.stream import PendingDeltas, TunnelStream
from protocol import Delta, Embeddings, End

CALL = {"id": "call_é", "name": "get_wéather", "arguments": '{"city":"Zürich","days":[1,2]}'}


class FakeSession:
    def __init__(self) -> None:
        self.consumed_calls: list[tuple[int, int]] = []
        self.forgotten: list[str | None] = []

    def consumed(self, stream_id: int, size: int) -> None:
        self.consumed_calls.append((stream_id, size))

    def forget(self, stream: Any, cancel_reason: str | None) -> None:
        self.forgotten.append(cancel_reason)


def _stream() -> tuple[TunnelStream, FakeSession]:
    session = FakeSession()
    return TunnelStream(session, 5), session


async def test_deltas_the_reader_has_not_taken_are_merged_into_one() -> None:
    stream, session = _stream()
    call = {"id": "c1", "name": "f", "arguments": '{"a":1}'}
    for _ in range(1000):
        stream.deliver(Delta(5, "x", "", []))
    stream.deliver(Delta(5, "", "t", [call]))
    assert stream.buffered == 1000 + 1 + 10
    assert await stream.next() == Delta(5, "x" * 1000, "t", [call])
    assert session.consumed_calls == [(5, 1011)]  # exactly what the reader got, at once
    assert stream.buffered == 0


async def test_order_is_kept_across_other_events() -> None:
    stream, session = _stream()
    vectors = Embeddings(5, 0, [b"\0" * 8])
    end = End(5, "stop", 1, 2, {})
    for frame in (
        Delta(5, "a", "", []),
        Delta(5, "b", "", []),
        vectors,
        Delta(5, "c", "", []),
        end,
    ):
        stream.deliver(frame)
    seen = [await stream.next() for _ in range(4)]
    assert seen == [Delta(5, "ab", "", []), vectors, Delta(5, "c", "", []), end]
    assert session.consumed_calls == [(5, 2), (5, 8), (5, 1)]
    assert stream.finished


async def test_an_end_without_usage_gets_the_counts_the_pipeline_bounds_it_with() -> None:
    stream, _ = _stream()
    stream.unreported_usage = lambda: (70, 9)
    stream.deliver(End(5, "length", 0, 0, {"total_duration": 1}, usage_reported=False))
    assert await stream.next() == End(5, "length", 70, 9, {"total_duration": 1}, False)
    # A reported END is left as it came, whatever the bound.
    reported, _ = _stream()
    reported.unreported_usage = lambda: (70, 9)
    reported.deliver(End(5, "stop", 3, 4, {}))
    assert await reported.next() == End(5, "stop", 3, 4, {})


async def test_a_reader_waiting_gets_each_delta_as_it_comes() -> None:
    stream, _ = _stream()
    waiting = asyncio.create_task(stream.next())
    await asyncio.sleep(0)
    stream.deliver(Delta(5, "first", "", []))
    assert await waiting == Delta(5, "first", "", [])
    stream.deliver(Delta(5, "second", "", []))
    assert await stream.next() == Delta(5, "second", "", [])


async def test_closing_hands_back_the_credit_of_everything_unread() -> None:
    stream, session = _stream()
    stream.deliver(Delta(5, "abc", "", []))
    stream.deliver(Embeddings(5, 0, [b"\0" * 4]))
    stream.deliver(Delta(5, "de", "", []))
    stream.close("client_closed")
    assert session.forgotten == ["client_closed"]  # still running: the machine gets a CANCEL
    assert session.consumed_calls == [(5, 3), (5, 4), (5, 2)]
    assert stream.buffered == 0 and stream.finished


async def test_memory_follows_the_bytes_not_the_number_of_frames() -> None:
    # A machine sending one-byte DELTAs to a reader that does not read: 200,000 frames, 200 KB
    # of credit. Held as frame objects that was tens of megabytes.
    stream, _ = _stream()
    frame = Delta(5, "x", "", [])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        for _ in range(200_000):
            stream.deliver(frame)
        elapsed = time.perf_counter() - started
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert stream.buffered == 200_000
    assert held < 3 * 200_000
    assert elapsed < 2.0  # appending is not quadratic
    assert await stream.next() == Delta(5, "x" * 200_000, "", [])


# ------------------------------------------------------------------ PendingDeltas


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
