"""Hypothesis over the decoder: nothing but documented exceptions, and lossless round trips."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import RemoteProtocolError, decode, encode
from protocol.frames import (
    Auth,
    Cancel,
    Challenge,
    Delta,
    End,
    Error,
    Frame,
    GoAway,
    Hello,
    Models,
    Open,
    Ping,
    Pong,
    Ready,
    Window,
)

ids = st.integers(min_value=1, max_value=2**31 - 1)
text = st.text(max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=10,
)
models = st.lists(
    st.fixed_dictionaries({"name": text, "capabilities": st.lists(text, max_size=3)}), max_size=3
)
tool_calls = st.lists(
    st.fixed_dictionaries(
        {"id": text, "name": text, "arguments": st.dictionaries(text, json_values, max_size=3)}
    ),
    max_size=3,
)

frames: st.SearchStrategy[Frame] = st.one_of(
    st.builds(
        Challenge,
        st.binary(min_size=16, max_size=64),
        st.text(max_size=255),
        st.lists(st.integers(0, 2**16), min_size=1, max_size=16),
    ),
    st.builds(
        Auth,
        st.text(min_size=1, max_size=64),
        st.integers(0, 2**16),
        st.binary(min_size=64, max_size=64),
    ),
    st.builds(
        Ready,
        text,
        st.integers(1024, 64 * 1024 * 1024),
        ids,
        ids,
        st.floats(min_value=0.001, max_value=3600),
    ),
    st.builds(Hello, text, st.integers(1, 100_000), models),
    st.builds(Models, models),
    st.builds(
        Open,
        ids,
        st.dictionaries(text, json_values, max_size=3).map(lambda d: {**d, "op": "chat"}),
        st.floats(min_value=0, max_value=1e6),
    ),
    st.builds(Delta, ids, text, text, tool_calls),
    st.builds(
        End,
        ids,
        text,
        st.integers(0, 2**32),
        st.integers(0, 2**32),
        st.dictionaries(text, st.integers(0, 2**62), max_size=3),
    ),
    st.builds(Error, st.integers(0, 2**31 - 1), text, text, st.booleans()),
    st.builds(Cancel, ids, text),
    st.builds(Window, st.integers(0, 2**31 - 1), ids),
    st.builds(Ping, st.integers(-(2**63), 2**64 - 1)),
    st.builds(Pong, st.integers(-(2**63), 2**64 - 1)),
    st.builds(GoAway, text),
)


def _decode_or_reject(data: bytes) -> None:
    try:
        frame = decode(data)
    except RemoteProtocolError:
        return
    assert isinstance(frame, Frame)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=256))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes) -> None:
    _decode_or_reject(data)


@settings(max_examples=300, deadline=None)
@given(frames, st.data())
def test_mutated_frames_raise_only_protocol_errors(frame: Frame, data: st.DataObject) -> None:
    wire = bytearray(encode(frame))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(wire)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "insert" or not wire:
            wire.insert(position, data.draw(st.integers(0, 255)))
        elif action == "flip":
            wire[min(position, len(wire) - 1)] ^= data.draw(st.integers(1, 255))
        else:
            del wire[min(position, len(wire) - 1)]
    _decode_or_reject(bytes(wire))


@settings(max_examples=300, deadline=None)
@given(frames)
def test_valid_frames_round_trip(frame: Frame) -> None:
    assert decode(encode(frame), max_frame=64 * 1024 * 1024) == frame
