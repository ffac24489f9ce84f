"""Frame types: pinned wire codes, the class table, and the range checks beyond field types."""

from __future__ import annotations

import dataclasses
import math

import pytest

from protocol import ErrorCode, RemoteProtocolError, frames
from protocol.frames import (
    FRAME_CLASSES,
    MAX_WINDOW,
    NO_STREAM,
    Auth,
    Cancel,
    Challenge,
    Delta,
    Embeddings,
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
    StreamFrame,
    Window,
)
from protocol.requests import ChatRequest, Message, Options, Tool, ToolCall, UnsupportedRequest

# Written out by hand on purpose: changing a code breaks every deployed agent (PROTOCOL.md §2).
PINNED: dict[str, int] = {
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
    "EMBEDDINGS": 15,
    "HEALTH": 16,
    "NODES": 17,
}

# The class of each code and its wire fields in order, also by hand (PROTOCOL.md §2's table).
WIRE_FIELDS: dict[int, tuple[type[Frame], tuple[str, ...]]] = {
    1: (Challenge, ("nonce", "edge_host", "versions")),
    2: (Auth, ("machine_id", "version", "signature")),
    3: (
        Ready,
        ("session_id", "max_frame", "stream_window", "connection_window", "heartbeat_interval"),
    ),
    4: (Hello, ("agent_version", "max_concurrency", "models")),
    5: (Models, ("models",)),
    6: (Open, ("stream_id", "request", "timeout", "request_id")),
    7: (Delta, ("stream_id", "content", "thinking", "tool_calls")),
    8: (
        End,
        (
            "stream_id",
            "finish_reason",
            "prompt_tokens",
            "completion_tokens",
            "timings",
            "usage_reported",
        ),
    ),
    9: (Error, ("stream_id", "code", "message", "retryable")),
    10: (Cancel, ("stream_id", "reason")),
    11: (Window, ("stream_id", "increment")),
    12: (Ping, ("payload",)),
    13: (Pong, ("payload",)),
    14: (GoAway, ("reason",)),
    15: (Embeddings, ("stream_id", "index", "vectors")),
    16: (Health, ("healthy", "reason")),
    17: (Nodes, ("node_id", "nodes")),
}

NONCE = b"n" * 32
SIG = b"s" * 64
MODEL = {"name": "llama3", "capabilities": ["completion", "tools"]}
CALL = {"id": "call_1", "name": "f", "arguments": '{"x":1}'}
FULL_MODEL = {
    "name": "m" * 256,
    "capabilities": ["c" * 32] * 32,
    "context_length": 2**31 - 1,
    "family": "f" * 64,
    "parameter_size": "8B",
    "quantization": "Q4_K_M",
}


CHAT = ChatRequest("m", (Message("user", "hi"),))


def with_schema(schema: dict[str, object]) -> ChatRequest:
    """A chat with one tool whose parameters are ``schema``: a map that may hold any JSON."""
    return ChatRequest("m", (), (Tool("f", parameters=schema),))


def nested(depth: int) -> ChatRequest:
    """A chat whose wire map nests ``depth`` deep, counting the request itself: the request,
    its tools, the tool, its function, then ``depth - 4`` maps of ``parameters``."""
    schema: dict[str, object] = {}
    for _ in range(depth - 5):
        schema = {"x": schema}
    return with_schema(schema)


def test_every_frame_type_code_is_pinned() -> None:
    assert {t.name: int(t) for t in FrameType} == PINNED
    assert len(FrameType) == 17


@pytest.mark.parametrize(("name", "code"), list(PINNED.items()))
def test_each_code_individually(name: str, code: int) -> None:
    assert FrameType[name] == code
    assert FrameType(code).name == name


def test_frame_classes_cover_every_code_exactly_once() -> None:
    assert sorted(FRAME_CLASSES) == list(range(1, 18))
    classes = list(FRAME_CLASSES.values())
    assert len(set(classes)) == len(classes) == 17
    for code, cls in FRAME_CLASSES.items():
        assert code == cls.TYPE
        assert type(cls.TYPE) is FrameType


def test_frame_classes_match_the_hand_written_table() -> None:
    assert set(FRAME_CLASSES) == set(WIRE_FIELDS)
    for code, (cls, fields) in WIRE_FIELDS.items():
        assert FRAME_CLASSES[code] is cls
        assert tuple(f.name for f in dataclasses.fields(cls)) == fields  # type: ignore[arg-type]
        assert len(cls.SCHEMA) == len(fields)


def test_every_concrete_frame_class_is_registered() -> None:
    concrete = {
        obj
        for obj in vars(frames).values()
        if isinstance(obj, type) and issubclass(obj, Frame) and dataclasses.is_dataclass(obj)
    }
    assert concrete == set(FRAME_CLASSES.values())


def test_stream_frames_are_exactly_those_with_a_stream_id() -> None:
    with_id = {cls for cls, fields in WIRE_FIELDS.values() if fields[0] == "stream_id"}
    assert with_id == {cls for cls in FRAME_CLASSES.values() if issubclass(cls, StreamFrame)}


def test_frames_are_frozen_and_slotted() -> None:
    frame = Ping(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.payload = 2  # type: ignore[misc]
    assert not hasattr(frame, "__dict__")
    assert frame == Ping(1)
    other: Frame = Pong(1)
    assert frame != other
    assert hash(Window(1, 5)) == hash(Window(1, 5))


VALID: list[Frame] = [
    Challenge(b"n" * 16, "", [2]),
    Challenge(b"n" * 64, "h" * 255, list(range(16))),
    Auth("m", 1, SIG),
    Auth("m" * 64, 0, SIG),
    Ready("s", 1024, 1, 1, 0.001),
    Ready("s", 64 * 1024 * 1024, MAX_WINDOW, MAX_WINDOW, 3600),
    Hello("1.0", 1, []),
    Hello("1.0", 100_000, [MODEL, {"name": "x", "capabilities": [], "family": "llama"}]),
    Hello("v" * 64, 1, [FULL_MODEL]),
    Models([]),
    Models([MODEL]),
    Models([{"name": str(i), "capabilities": []} for i in range(1024)]),
    Models([{**MODEL, "context_length": 0, "family": None}]),
    Open(1, CHAT, 0),
    Open(MAX_WINDOW, ChatRequest("m" * 256, ()), 30.5),
    Open(1, CHAT, 7 * 24 * 3600),
    Open(1, with_schema({"n": [None, True, -(2**63), 2**63 - 1, 1.5, "s", {}, []]}), 0),
    Open(1, ChatRequest("m", (), options=Options(seed=2**63 - 1, temperature=-1.5e308)), 0),
    Open(1, nested(64), 0),
    Open(1, UnsupportedRequest("rerank", "m"), 0),  # an op the agent does not know is valid
    Open(1, CHAT, 0, "req_0123456789abcdef0123456789abcdef"),
    Open(1, CHAT, 0, "!" + "~" * 63),  # any visible ASCII, up to 64 characters
    Delta(1, "x", "", []),
    Delta(1, "", "t", []),
    Delta(1, "", "", [{"id": "c", "name": "", "arguments": "{}"}]),
    Delta(7, "hi", "hm", [CALL]),
    End(1, "stop", 0, 0, {}),
    End(1, "stop", 2**32 - 1, 2**32 - 1, {f"t{i}": 2**63 - 1 for i in range(16)}),
    End(1, "stop", 0, 0, {"d" * 64: 0}),
    Error(NO_STREAM, "protocol_error", "", False),
    Error(MAX_WINDOW, "busy", "later", True),
    Cancel(1, ""),
    Window(NO_STREAM, 1),
    Window(MAX_WINDOW, MAX_WINDOW),
    Ping(0),
    Ping(-(2**63)),
    Pong(2**64 - 1),
    GoAway(""),
    Health(True, ""),
    Health(False, "r" * 500),
    Nodes("n", []),
    Nodes("n" * 64, [[str(i), "https://" + "h" * 2040] for i in range(64)]),
    Nodes("edge-1", [["edge-1", "http://127.0.0.1:8080"]]),
]


@pytest.mark.parametrize("frame", VALID, ids=repr)
def test_check_accepts_boundary_values(frame: Frame) -> None:
    frame.check_outgoing()  # raises if refused


INVALID: list[tuple[Frame, str]] = [
    # CHALLENGE: nonce 16..64 bytes, host ≤ 255 characters, 1..16 integer versions.
    (Challenge(b"n" * 15, "edge", [2]), "nonce of 15 bytes"),
    (Challenge(b"", "edge", [2]), "nonce of 0 bytes"),
    (Challenge(b"n" * 65, "edge", [2]), "nonce of 65 bytes"),
    (Challenge(NONCE, "h" * 256, [2]), "edge host"),
    (Challenge(NONCE, "edge", []), "versions"),
    (Challenge(NONCE, "edge", list(range(17))), "versions"),
    (Challenge(NONCE, "edge", [True]), "versions"),
    (Challenge(NONCE, "edge", ["1"]), "versions"),  # type: ignore[list-item]
    (Challenge(NONCE, "edge", [1.0]), "versions"),  # type: ignore[list-item]
    # AUTH: machine id 1..64 characters, signature exactly 64 bytes.
    (Auth("", 1, SIG), "machine id"),
    (Auth("m" * 65, 1, SIG), "machine id"),
    (Auth("m", 1, b"s" * 63), "signature of 63 bytes"),
    (Auth("m", 1, b"s" * 65), "signature of 65 bytes"),
    (Auth("m", 1, b""), "signature of 0 bytes"),
    # READY: limits in range.
    (Ready("s", 1023, 1, 1, 5.0), "max_frame 1023"),
    (Ready("s", 64 * 1024 * 1024 + 1, 1, 1, 5.0), "max_frame"),
    (Ready("s", 1 << 20, 0, 1, 5.0), "stream_window 0"),
    (Ready("s", 1 << 20, -1, 1, 5.0), "stream_window -1"),
    (Ready("s", 1 << 20, MAX_WINDOW + 1, 1, 5.0), "stream_window"),
    (Ready("s", 1 << 20, 1, 0, 5.0), "connection_window 0"),
    (Ready("s", 1 << 20, 1, MAX_WINDOW + 1, 5.0), "connection_window"),
    (Ready("s", 1 << 20, 1, 1, 0), "heartbeat"),
    (Ready("s", 1 << 20, 1, 1, -1.0), "heartbeat"),
    (Ready("s", 1 << 20, 1, 1, 3600.5), "heartbeat"),
    (Ready("s", 1 << 20, 1, 1, math.nan), "heartbeat"),
    (Ready("s", 1 << 20, 1, 1, math.inf), "heartbeat"),
    # HELLO / MODELS: concurrency in range, well-formed model entries.
    (Hello("1", 0, []), "max_concurrency"),
    (Hello("1", 100_001, []), "max_concurrency"),
    (Hello("1", 1, ["llama3"]), "each model"),  # type: ignore[list-item]
    (Hello("1", 1, [{"capabilities": []}]), "each model"),
    (Hello("1", 1, [{"name": 3, "capabilities": []}]), "each model"),
    (Hello("1", 1, [{"name": "m"}]), "each model"),
    (Hello("1", 1, [{"name": "m", "capabilities": "tools"}]), "each model"),
    (Hello("1", 1, [{"name": "m", "capabilities": [1]}]), "each model"),
    (Hello("1", 1, [MODEL, {"name": "m", "capabilities": None}]), "each model"),
    (Hello("v" * 65, 1, []), "agent version"),
    (Models([{"name": "m"}]), "each model"),
    (Models([None]), "each model"),  # type: ignore[list-item]
    # Model lists are bounded (§5), and hold nothing of unchecked type.
    (Models([{"name": str(i), "capabilities": []} for i in range(1025)]), "1025 models"),
    (Models([{"name": "", "capabilities": []}]), "model name"),
    (Models([{"name": "m" * 257, "capabilities": []}]), "model name"),
    (Models([{"name": "m", "capabilities": ["c"] * 33}]), "capabilities"),
    (Models([{"name": "m", "capabilities": ["c" * 33]}]), "capabilities"),
    (Models([{**MODEL, "context_length": -1}]), "context_length"),
    (Models([{**MODEL, "context_length": 2**31}]), "context_length"),
    (Models([{**MODEL, "context_length": "8192"}]), "context_length"),
    (Models([{**MODEL, "context_length": True}]), "context_length"),
    (Models([{**MODEL, "context_length": 8192.0}]), "context_length"),
    (Models([{**MODEL, "family": "f" * 65}]), "family"),
    # HEALTH: a bounded reason, and only when unhealthy.
    (Health(False, "r" * 501), "health reason"),
    (Health(True, "fine"), "no reason"),
    # NODES: bounded ids, URLs and count; each node exactly [id, url].
    (Nodes("", []), "node id"),
    (Nodes("n" * 65, []), "node id"),
    (Nodes("n\n", []), "node id"),
    (Nodes("n", [["a", "https://a"]] * 65), "more than 64 nodes"),
    (Nodes("n", [["a"]]), "2 strings"),
    (Nodes("n", [["a", "https://a", "x"]]), "2 strings"),
    (Nodes("n", [["a", 1]]), "2 strings"),  # type: ignore[list-item]
    (Nodes("n", ["a"]), "2 strings"),  # type: ignore[list-item]
    (Nodes("n", [["a", "ftp://a"]]), "node URL"),
    (Nodes("n", [["a", "https://" + "h" * 2041]]), "node URL"),
    (Models([{**MODEL, "parameter_size": b"8B"}]), "parameter_size"),
    (Models([{**MODEL, "quantization": 4}]), "quantization"),
    (Models([{**MODEL, "digest": "sha256:…"}]), "unknown fields"),
    (Models([{**MODEL, b"family": "llama"}]), "unknown fields"),  # type: ignore[dict-item]
    # OPEN: stream id 1..2³¹-1, a finite timeout up to a week, a request whose wire map is JSON
    # (§2). The request's own fields are checked where it is decoded (test_requests.py).
    (Open(0, CHAT, 0), "stream id 0"),
    (Open(-1, CHAT, 0), "stream id -1"),
    (Open(MAX_WINDOW + 1, CHAT, 0), "stream id 2147483648"),
    (Open(1, CHAT, -0.5), "timeout"),
    (Open(1, CHAT, math.nan), "timeout nan"),
    (Open(1, CHAT, math.inf), "timeout inf"),
    (Open(1, CHAT, 7 * 24 * 3600 + 0.5), "timeout"),
    (
        Open(1, ChatRequest("m", (Message("user", images=(b"\x89PNG",)),)), 0),  # type: ignore[arg-type]
        "bytes value is not JSON",
    ),
    (Open(1, ChatRequest("m", (), format={b"k": 1}), 0), "map key of type bytes"),  # type: ignore[dict-item]
    (
        Open(
            1,
            ChatRequest(
                "m", (Message("assistant", tool_calls=(ToolCall("f", {"n": [{"x": b""}]}),)),)
            ),
            0,
        ),
        "bytes value",
    ),
    (Open(1, ChatRequest("m", (), options=Options(seed=2**63)), 0), "outside int64"),
    (Open(1, ChatRequest("m", (), options=Options(seed=-(2**63) - 1)), 0), "outside int64"),
    (
        Open(1, ChatRequest("m", (), options=Options(temperature=math.nan)), 0),
        "not a finite number",
    ),
    (Open(1, with_schema({"t": [-math.inf]}), 0), "not a finite number"),
    (Open(1, nested(65), 0), "nested deeper than 64"),
    # The request id goes into the agent's log lines as it is: short, no space, no line break.
    (Open(1, CHAT, 0, "r" * 65), "request id"),
    (Open(1, CHAT, 0, "req 1"), "request id"),
    (Open(1, CHAT, 0, "req\n1"), "request id"),
    (Open(1, CHAT, 0, "req\u00e91"), "request id"),
    # DELTA: stream id, tool calls of exactly {id, name, arguments} strings, never empty.
    (Delta(0, "x", "", []), "stream id 0"),
    (Delta(-5, "x", "", []), "stream id -5"),
    (Delta(2**31, "x", "", []), "stream id"),
    (Delta(1, "", "", []), "empty DELTA"),
    (Delta(1, "", "", ["call"]), "tool call"),  # type: ignore[list-item]
    (Delta(1, "", "", [{"name": "f", "arguments": "{}"}]), "tool call"),
    (Delta(1, "", "", [{"id": 1, "name": "f", "arguments": "{}"}]), "tool call"),  # type: ignore[dict-item]
    (Delta(1, "", "", [{"id": "c", "arguments": "{}"}]), "tool call"),
    (Delta(1, "", "", [{"id": "c", "name": None, "arguments": "{}"}]), "tool call"),  # type: ignore[dict-item]
    (Delta(1, "", "", [{"id": "c", "name": "f"}]), "tool call"),
    (Delta(1, "", "", [{"id": "c", "name": "f", "arguments": {}}]), "tool call"),  # type: ignore[dict-item]
    (Delta(1, "", "", [{"id": "c", "name": "f", "arguments": b"{}"}]), "tool call"),  # type: ignore[dict-item]
    (Delta(1, "", "", [{**CALL, "index": "0"}]), "exactly id, name and arguments"),
    (Delta(1, "", "", [{"id": "", "name": "f", "arguments": "{}"}]), "needs an id"),
    (Delta(1, "", "", [{"id": "c", "name": "f", "arguments": ""}]), "JSON text"),
    (Delta(1, "x", "", [CALL, {"id": "c"}]), "tool call"),
    (Embeddings(0, 0, [b"1234"]), "stream id 0"),
    (Embeddings(1, -1, [b"1234"]), "index -1"),
    (Embeddings(1, 0, []), "without vectors"),
    (Embeddings(1, 0, [b""]), "multiple of 4"),
    (Embeddings(1, 0, [b"12345"]), "multiple of 4"),
    (Embeddings(1, 0, [b"1234", "1234"]), "multiple of 4"),  # type: ignore[list-item]
    # END: stream id, usage 0..2³²-1, at most 16 named integer timings.
    (End(0, "stop", 0, 0, {}), "stream id 0"),
    (End(1, "stop", -1, 0, {}), "token counts"),
    (End(1, "stop", 0, -1, {}), "token counts"),
    (End(1, "stop", 2**32, 0, {}), "token counts"),
    (End(1, "stop", 0, 2**64 - 1, {}), "token counts"),
    (End(1, "stop", 0, 0, {f"t{i}": 0 for i in range(17)}), "more than 16 timings"),
    (End(1, "stop", 0, 0, {"d" * 65: 0}), "a timing"),
    (End(1, "stop", 0, 0, {"d": -1}), "a timing"),
    (End(1, "stop", 0, 0, {"d": 2**63}), "a timing"),
    (End(1, "stop", 0, 0, {"d": 1.5}), "a timing"),  # type: ignore[dict-item]
    (End(1, "stop", 0, 0, {"d": True}), "a timing"),
    (End(1, "stop", 0, 0, {"d": "5"}), "a timing"),  # type: ignore[dict-item]
    (End(1, "stop", 0, 0, {b"d": 5}), "a timing"),  # type: ignore[dict-item]
    # ERROR: stream 0 allowed, but not negative or too large.
    (Error(-1, "x", "y", False), "stream id -1"),
    (Error(MAX_WINDOW + 1, "x", "y", False), "stream id"),
    # CANCEL: a real stream.
    (Cancel(0, "x"), "stream id 0"),
    (Cancel(-1, "x"), "stream id -1"),
    (Cancel(2**31, "x"), "stream id"),
    # WINDOW: stream 0 allowed; increment 1..2³¹-1.
    (Window(1, 0), "window increment 0"),
    (Window(0, 0), "window increment 0"),
    (Window(1, -1), "window increment -1"),
    (Window(1, -(2**31)), "window increment"),
    (Window(1, MAX_WINDOW + 1), "window increment 2147483648"),
    (Window(-1, 1), "stream id -1"),
    (Window(MAX_WINDOW + 1, 1), "stream id"),
]


@pytest.mark.parametrize(("frame", "reason"), INVALID, ids=repr)
def test_check_rejects_out_of_range_fields(frame: Frame, reason: str) -> None:
    # check_outgoing: what a sender runs (an OPEN's request is checked there; a receiver's
    # from_wire checks it field by field while decoding).
    with pytest.raises(RemoteProtocolError, match=reason) as caught:
        frame.check_outgoing()
    assert caught.value.code is ErrorCode.PROTOCOL_ERROR


def test_invalid_cases_cover_every_checked_frame_type() -> None:
    checked = {type(frame) for frame, _ in INVALID}
    # PING, PONG and GOAWAY have nothing to check beyond their field types.
    assert checked == set(FRAME_CLASSES.values()) - {Ping, Pong, GoAway}


def test_embeddings_flow_size_counts_vector_bytes() -> None:
    assert Embeddings(1, 0, [b"\0" * 8, b"\0" * 3072]).flow_size == 3080


def test_delta_flow_size_counts_utf8_text_and_tool_calls() -> None:
    # §8: content + thinking + each call's id, name and arguments, all in UTF-8 bytes.
    call = {"id": "c", "name": "f", "arguments": '{"x":"' + "y" * 100 + '"}'}
    assert Delta(1, "héllo", "ok", [call]).flow_size == 6 + 2 + 1 + 1 + 108
    assert Delta(1, "", "", [call]).flow_size == 110
    assert Delta(1, "😀", "€", []).flow_size == 4 + 3
    assert (
        Delta(1, "", "", [{"id": "é", "name": "ü", "arguments": '{"€":1}'}]).flow_size == 2 + 2 + 9
    )
    assert Delta(1, "", "", [call, call]).flow_size == 220
