"""Hypothesis over the decoder and the receive path: nothing but documented exceptions escapes,
and every valid frame survives a round trip unchanged."""

from __future__ import annotations

import json
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol import (
    Connection,
    Embeddings,
    FrameTooLarge,
    ProtocolError,
    RemoteProtocolError,
    Role,
    decode,
    encode,
)
from protocol.codec import AGENT_MAX_RECEIVE_FRAME
from protocol.frames import (
    MAX_WINDOW,
    Auth,
    Cancel,
    Challenge,
    Delta,
    End,
    Error,
    Frame,
    FrameType,
    GoAway,
    Health,
    Hello,
    Models,
    Nodes,
    Open,
    Ping,
    Pong,
    Ready,
    Window,
)
from protocol.requests import (
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    Message,
    UnsupportedRequest,
    from_wire,
    to_wire,
)
from tests.protocol.strategies import (
    KNOWN_OPS,
    json_maps,
    msgpack_values,
    request_maps,
    requests_or_unsupported,
    text,
    wire_ints,
)

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.integers(min_value=1, max_value=MAX_WINDOW)
ids_or_zero = st.integers(min_value=0, max_value=MAX_WINDOW)
short = st.text(max_size=8)
models = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.text(min_size=1, max_size=30),
            "capabilities": st.lists(st.text(max_size=32), max_size=4),
        },
        optional={
            "context_length": st.integers(0, 2**31 - 1),
            "family": short,
            "parameter_size": short,
            "quantization": short,
        },
    ),
    max_size=3,
)
# Arguments are the JSON text of an object, as the agent writes it (§2).
arguments = json_maps.map(lambda m: json.dumps(m, separators=(",", ":")))
tool_calls = st.lists(
    st.fixed_dictionaries(
        {"id": st.text(min_size=1, max_size=30), "name": text, "arguments": arguments}
    ),
    max_size=3,
)
seconds = st.floats(min_value=0, max_value=7 * 24 * 3600) | st.integers(0, 10**5)
request_ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=64)

STRATEGIES: dict[FrameType, st.SearchStrategy[Frame]] = {
    FrameType.CHALLENGE: st.builds(
        Challenge,
        st.binary(min_size=16, max_size=64),
        st.text(max_size=255),
        st.lists(wire_ints, min_size=1, max_size=16),
    ),
    FrameType.AUTH: st.builds(
        Auth, st.text(min_size=1, max_size=64), wire_ints, st.binary(min_size=64, max_size=64)
    ),
    FrameType.READY: st.builds(
        Ready,
        text,
        st.integers(1024, 64 * 1024 * 1024),
        ids,
        ids,
        st.floats(min_value=0, max_value=3600, exclude_min=True) | st.integers(1, 3600),
    ),
    FrameType.HELLO: st.builds(Hello, st.text(max_size=64), st.integers(1, 100_000), models),
    FrameType.MODELS: st.builds(Models, models),
    # A typed request (§7), an op the agent does not know included: that one is valid too.
    FrameType.OPEN: st.builds(Open, ids, requests_or_unsupported, seconds, request_ids),
    FrameType.DELTA: st.builds(Delta, ids, text, text, tool_calls).filter(
        lambda d: bool(d.content or d.thinking or d.tool_calls)  # an empty DELTA is refused
    ),
    FrameType.END: st.builds(
        End,
        ids,
        text,
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        st.dictionaries(st.text(max_size=64), st.integers(0, 2**63 - 1), max_size=16),
        st.booleans(),
    ),
    FrameType.ERROR: st.builds(Error, ids_or_zero, text, text, st.booleans()),
    FrameType.CANCEL: st.builds(Cancel, ids, text),
    FrameType.WINDOW: st.builds(Window, ids_or_zero, ids),
    FrameType.PING: st.builds(Ping, wire_ints),
    FrameType.PONG: st.builds(Pong, wire_ints),
    FrameType.GOAWAY: st.builds(GoAway, text),
    FrameType.HEALTH: st.one_of(
        st.just(Health(True, "")), st.builds(Health, st.just(False), st.text(max_size=500))
    ),
    FrameType.NODES: st.builds(
        Nodes,
        st.just("n1"),
        st.lists(
            st.tuples(st.sampled_from(["n1", "n2"]), st.just("https://n.test")).map(list),
            max_size=3,
        ),
    ),
    FrameType.EMBEDDINGS: st.builds(
        Embeddings,
        ids,
        st.integers(0, MAX_WINDOW),
        st.lists(st.binary(min_size=1, max_size=64).map(lambda b: b * 4), min_size=1, max_size=4),
    ),
}
frames: st.SearchStrategy[Frame] = st.sampled_from(sorted(STRATEGIES)).flatmap(
    lambda t: STRATEGIES[t]
)


def test_there_is_a_strategy_for_every_frame_type() -> None:
    assert set(STRATEGIES) == set(FrameType)


def decode_or_reject(data: bytes, max_frame: int = AGENT_MAX_RECEIVE_FRAME) -> Frame | None:
    """decode() must return a valid Frame or raise RemoteProtocolError; anything else fails."""
    rejected: RemoteProtocolError | None
    try:
        frame = decode(data, max_frame)
    except RemoteProtocolError as error:
        rejected = error
    else:
        rejected = None
    if rejected is not None:
        assert str(rejected)  # every rejection names its reason
        assert isinstance(rejected, FrameTooLarge) == (len(data) > max_frame)
        return None
    assert isinstance(frame, Frame)
    frame.check()
    # Whatever decodes is a frame the codec can write again, to the same frame.
    assert decode(encode(frame), AGENT_MAX_RECEIVE_FRAME) == frame
    return frame


# (1) arbitrary bytes ---------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes) -> None:
    decode_or_reject(data)


@FUZZ
@given(st.integers(0x90, 0x9F), st.integers(-2, 16), st.binary(max_size=200))
def test_arbitrary_bytes_behind_a_frame_header(header: int, code: int, rest: bytes) -> None:
    # A plausible fixarray header and type code gets the garbage past the first checks.
    prefix = bytes([header]) + code.to_bytes(1, "big", signed=True)
    decode_or_reject(prefix + rest)


@FUZZ
@given(st.binary(min_size=1, max_size=64), st.integers(1, 64))
def test_oversized_input_is_always_frame_too_large(data: bytes, limit: int) -> None:
    if len(data) > limit:
        with pytest.raises(FrameTooLarge, match=f"frame of {len(data)} bytes exceeds limit"):
            decode(data, limit)
    else:
        decode_or_reject(data, limit)


# msgpack values the codec under test never produced (strategies.msgpack_values): right shape,
# wrong contents.
@settings(FUZZ, max_examples=120)
@given(st.integers(-1, 15), st.lists(msgpack_values, max_size=6))
def test_well_formed_msgpack_of_the_wrong_shape(code: int, fields: list[Any]) -> None:
    data: bytes = msgpack.packb([code, *fields], use_bin_type=True)
    decode_or_reject(data)


# (2) mutated valid frames ----------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    wire = bytearray(encode(draw(frames)))
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        position = draw(st.integers(0, max(len(wire) - 1, 0)))
        if action == "insert" or not wire:
            wire.insert(position, draw(st.integers(0, 255)))
        elif action == "flip":
            wire[position] ^= draw(st.integers(1, 255))
        elif action == "delete":
            del wire[position]
        elif action == "truncate":
            del wire[position:]
        else:
            wire[position:position] = wire[position : position + draw(st.integers(1, 8))]
    return bytes(wire)


@FUZZ
@given(mutated())
def test_mutated_frames_raise_only_protocol_errors(data: bytes) -> None:
    decode_or_reject(data)


# (3) round trips -------------------------------------------------------------------------


@FUZZ
@given(frames)
def test_valid_frames_round_trip(frame: Frame) -> None:
    frame.check()  # the strategies respect check(): otherwise this test proves nothing
    data = encode(frame)
    decoded = decode(data, max_frame=AGENT_MAX_RECEIVE_FRAME)
    assert type(decoded) is type(frame)
    assert decoded == frame
    assert encode(decoded) == data


# (4) OPEN's request: whatever map a peer puts there ----------------------------------------


@settings(FUZZ, max_examples=300)
@given(ids, request_maps, seconds, request_ids)
@example(1, {"op": "chat", "model": "m", "messages": [{"role": [], "content": ""}]}, 0, "")
def test_any_map_as_opens_request_raises_only_protocol_errors(
    sid: int, request: Any, timeout: float, request_id: str
) -> None:
    data: bytes = msgpack.packb(
        [int(FrameType.OPEN), sid, request, timeout, request_id], use_bin_type=True
    )
    frame = decode_or_reject(data)  # only RemoteProtocolError; what decodes round-trips
    if frame is None:
        return
    assert isinstance(frame, Open)
    typed = frame.request
    assert (typed.OP, typed.model) == (request["op"], request["model"])
    if isinstance(typed, UnsupportedRequest):
        assert typed.op not in KNOWN_OPS  # a known op is read in full, never waved through
    else:
        assert isinstance(typed, (ChatRequest, GenerateRequest, EmbedRequest))
    assert from_wire(to_wire(typed)) == typed


# (5) the receive path of a live connection -----------------------------------------------


def _open_pair() -> tuple[Connection, Connection]:
    edge, agent = Connection(Role.EDGE), Connection(Role.AGENT)
    steps: list[tuple[Connection, Connection, Frame]] = [
        (edge, agent, Challenge(b"n" * 32, "edge.test", [2])),
        (agent, edge, Auth("m", 1, b"s" * 64)),
        (edge, agent, Ready("s", 1 << 20, 100, 250, 5.0)),
        (agent, edge, Hello("1", 4, [])),
        (edge, agent, Open(1, ChatRequest("m", (Message("user", "hi"),)), 0)),
    ]
    for sender, receiver, frame in steps:
        sender.send(frame)
        for data in sender.data_to_send():
            receiver.receive(data)
    return edge, agent


@FUZZ
@given(st.booleans(), st.one_of(mutated(), st.binary(max_size=100), frames.map(encode)))
def test_receive_raises_only_remote_protocol_errors(at_edge: bool, data: bytes) -> None:
    edge, agent = _open_pair()
    conn = edge if at_edge else agent
    try:
        result = conn.receive(data)
    except RemoteProtocolError:
        return
    except ProtocolError as error:  # a LocalProtocolError out of receive() would be a bug
        raise AssertionError(f"receive() raised {error!r}") from error
    assert result is None or isinstance(result, Frame)
    for queued in conn.data_to_send():  # automatic replies are valid frames
        assert isinstance(decode(queued), (Pong, Window))
