"""The codec: golden bytes both ways, lossless round trips, and every malformed input named.

Golden bytes are written by hand from the msgpack specification (github.com/msgpack/msgpack
spec.md), never produced by the codec under test. Reminders used below:

    fixarray 0x90|n   fixmap 0x80|n   fixstr 0xa0|n   positive fixint 0x00-0x7f
    negative fixint 0xe0-0xff   nil c0   false c2   true c3   bin8 c4 n   float32 ca
    float64 cb   uint8 cc   uint16 cd   uint32 ce   uint64 cf   int8 d0   int64 d3
    str8 d9 n   str16 da nn   array16 dc nnnn   array32 dd nnnnnnnn   map32 df   ext d4-d8/c7-c9
"""

from __future__ import annotations

import time
import tracemalloc

import pytest

from protocol import (
    DEFAULT_MAX_FRAME,
    Auth,
    Cancel,
    Challenge,
    Delta,
    Embeddings,
    End,
    Error,
    ErrorCode,
    FrameTooLarge,
    GoAway,
    Health,
    Hello,
    Models,
    Nodes,
    Open,
    Ping,
    Pong,
    Ready,
    RemoteProtocolError,
    Window,
    decode,
    encode,
)
from protocol.codec import AGENT_MAX_RECEIVE_FRAME, decode_many
from protocol.frames import FRAME_CLASSES, Frame
from protocol.requests import (
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    Message,
    Options,
    Tool,
    UnsupportedRequest,
)


def h(wire: str) -> bytes:
    return bytes.fromhex(wire)


# OPEN's request is a typed request on the wire as a map (PROTOCOL.md §7). The smallest chat:
# {"op": "chat", "model": "m", "messages": [{"role": "user", "content": "hi"}]}.
CHAT_HI = ChatRequest("m", (Message("user", "hi"),))
CHAT_HI_WIRE = (
    "83 a2 6f 70 a4 63 68 61 74"  # fixmap(3), "op": "chat"
    " a5 6d 6f 64 65 6c a1 6d"  # "model": "m"
    " a8 6d 65 73 73 61 67 65 73 91"  # "messages": [
    " 82 a4 72 6f 6c 65 a4 75 73 65 72"  # {"role": "user",
    " a7 63 6f 6e 74 65 6e 74 a2 68 69"  # "content": "hi"}]
)
# The three pairs of {"op": "chat", "model": "m", "messages": []}, without their map header: the
# OPENs below add a pair or two (fixmap 83 or 84) to aim at one field.
CHAT_EMPTY_PAIRS = "a2 6f 70 a4 63 68 61 74 a5 6d 6f 64 65 6c a1 6d a8 6d 65 73 73 61 67 65 73 90"


GOLDEN: list[tuple[Frame, str]] = [
    # PING / PONG: [12 | 13, payload] in the smallest integer encoding.
    (Ping(5), "92 0c 05"),
    (Ping(0), "92 0c 00"),
    (Ping(-1), "92 0c ff"),  # negative fixint
    (Ping(-33), "92 0c d0 df"),  # int8
    (Ping(128), "92 0c cc 80"),  # uint8
    (Ping(2**32), "92 0c cf 00 00 00 01 00 00 00 00"),  # uint64
    (Ping(-(2**63)), "92 0c d3 80 00 00 00 00 00 00 00"),  # int64
    (Pong(300), "92 0d cd 01 2c"),  # uint16
    # HEALTH: [16, healthy, reason]; bool is msgpack's c2/c3, never an integer.
    (Health(False, "down"), "93 10 c2 a4 64 6f 77 6e"),
    (Health(True, ""), "93 10 c3 a0"),
    # NODES: [17, node_id, [[id, url], …]]; an empty list is a fixarray of 0.
    (
        Nodes("n1", [["n1", "https://a"], ["n2", "https://b"]]),
        "93 11 a2 6e 31 92"
        " 92 a2 6e 31 a9 68 74 74 70 73 3a 2f 2f 61"
        " 92 a2 6e 32 a9 68 74 74 70 73 3a 2f 2f 62",
    ),
    (Nodes("edge-2", []), "93 11 a6 65 64 67 65 2d 32 90"),
    # WINDOW: [11, stream_id, increment].
    (Window(1, 65536), "93 0b 01 ce 00 01 00 00"),
    (Window(0, 2**31 - 1), "93 0b 00 ce 7f ff ff ff"),
    (Window(200, 127), "93 0b cc c8 7f"),
    # CANCEL: [10, stream_id, reason].
    (Cancel(3, "gone"), "93 0a 03 a4 67 6f 6e 65"),
    (Cancel(70000, ""), "93 0a ce 00 01 11 70 a0"),
    # DELTA: [7, stream_id, content, thinking, tool_calls].
    (Delta(1, "hi", "", []), "95 07 01 a2 68 69 a0 90"),
    (Delta(2, "é", "ok", []), "95 07 02 a2 c3 a9 a2 6f 6b 90"),  # é is c3 a9 in UTF-8
    (Delta(1, "x" * 32, "", []), "95 07 01 d9 20" + " 78" * 32 + " a0 90"),  # str8 from 32 bytes
    # A tool call is {id, name, arguments}, all str; arguments is JSON text ("{}" is 7b 7d).
    (
        Delta(9, "", "", [{"id": "c", "name": "f", "arguments": "{}"}]),
        "95 07 09 a0 a0 91 83 a2 69 64 a1 63 a4 6e 61 6d 65 a1 66"
        " a9 61 72 67 75 6d 65 6e 74 73 a2 7b 7d",
    ),
    # EMBEDDINGS: [15, stream_id, index, vectors]; a vector is bin (float32 LE), 1.0 = 00 00 80 3f.
    (Embeddings(1, 0, [b"\x00\x00\x80\x3f"]), "94 0f 01 00 91 c4 04 00 00 80 3f"),
    # END: [8, stream_id, finish_reason, prompt_tokens, completion_tokens, timings], and
    # usage_reported only when false (§2: written only then, read as true when left out).
    (End(1, "stop", 3, 200, {}), "96 08 01 a4 73 74 6f 70 03 cc c8 80"),
    (
        End(2, "length", 0, 1, {"total_ns": 5}),
        "96 08 02 a6 6c 65 6e 67 74 68 00 01 81 a8 74 6f 74 61 6c 5f 6e 73 05",
    ),
    (End(3, "stop", 0, 0, {}, usage_reported=False), "97 08 03 a4 73 74 6f 70 00 00 80 c2"),
    # ERROR: [9, stream_id, code, message, retryable].
    (Error(0, "x", "y", False), "95 09 00 a1 78 a1 79 c2"),
    (Error(4, "busy", "", True), "95 09 04 a4 62 75 73 79 a0 c3"),
    # GOAWAY: [14, reason].
    (GoAway("bye"), "92 0e a3 62 79 65"),
    # CHALLENGE: [1, nonce (bin), edge_host, versions].
    (Challenge(b"\x00" * 16, "e", [2]), "94 01 c4 10" + " 00" * 16 + " a1 65 91 02"),
    # AUTH: [2, machine_id, version, signature (bin)].
    (Auth("m", 1, b"\x01" * 64), "94 02 a1 6d 01 c4 40" + " 01" * 64),
    # READY: [3, session_id, max_frame, stream_window, connection_window, heartbeat_interval].
    (
        Ready("s", 1 << 20, 1 << 16, 1 << 23, 5.0),
        "96 03 a1 73 ce 00 10 00 00 ce 00 01 00 00 ce 00 80 00 00 cb 40 14 00 00 00 00 00 00",
    ),
    (Ready("s", 1024, 1, 1, 2), "96 03 a1 73 cd 04 00 01 01 02"),  # an int interval is allowed
    # HELLO: [4, agent_version, max_concurrency, models]; MODELS: [5, models].
    (Hello("1", 4, []), "94 04 a1 31 04 90"),
    (
        Models([{"name": "m", "capabilities": []}]),
        "92 05 91 82 a4 6e 61 6d 65 a1 6d ac 63 61 70 61 62 69 6c 69 74 69 65 73 90",
    ),
    # OPEN: [6, stream_id, request, timeout, request_id]; the request's keys in to_wire's order.
    (Open(1, CHAT_HI, 0), "95 06 01 " + CHAT_HI_WIRE + " 00 a0"),  # no request id: ""
    (Open(2, CHAT_HI, 2.5), "95 06 02 " + CHAT_HI_WIRE + " cb 40 04 00 00 00 00 00 00 a0"),
    (Open(3, CHAT_HI, 0, "req_1"), "95 06 03 " + CHAT_HI_WIRE + " 00 a5 72 65 71 5f 31"),
    (
        # bool, nil (inside a format schema) and float64 in a request.
        Open(
            1,
            GenerateRequest(
                "m", "", options=Options(temperature=0.5), format={"n": None}, think=True
            ),
            0,
        ),
        "95 06 01 86 a2 6f 70 a8 67 65 6e 65 72 61 74 65"  # fixmap(6), "op": "generate"
        " a5 6d 6f 64 65 6c a1 6d a6 70 72 6f 6d 70 74 a0"  # "model": "m", "prompt": ""
        " a7 6f 70 74 69 6f 6e 73 81 ab 74 65 6d 70 65 72 61 74 75 72 65"  # "options": {"temp…
        " cb 3f e0 00 00 00 00 00 00"  # …erature": 0.5}
        " a6 66 6f 72 6d 61 74 81 a1 6e c0"  # "format": {"n": nil}
        " a5 74 68 69 6e 6b c3 00 a0",  # "think": true; timeout 0; no request id
    ),
    (
        Open(1, EmbedRequest("m", ("a",), dimensions=300, truncate=False), 0),
        "95 06 01 85 a2 6f 70 a5 65 6d 62 65 64 a5 6d 6f 64 65 6c a1 6d"  # "op": "embed", …
        " a5 69 6e 70 75 74 91 a1 61"  # "input": ["a"]
        " a8 74 72 75 6e 63 61 74 65 c2"  # "truncate": false
        " aa 64 69 6d 65 6e 73 69 6f 6e 73 cd 01 2c 00 a0",  # "dimensions": 300 (uint16)
    ),
    # An op this side does not know: only op and model, both ways (§7).
    (
        Open(1, UnsupportedRequest("x", "m"), 0),
        "95 06 01 82 a2 6f 70 a1 78 a5 6d 6f 64 65 6c a1 6d 00 a0",
    ),
]


@pytest.mark.parametrize(("frame", "wire"), GOLDEN, ids=repr)
def test_encode_produces_the_golden_bytes(frame: Frame, wire: str) -> None:
    assert encode(frame) == h(wire)


@pytest.mark.parametrize(("frame", "wire"), GOLDEN, ids=repr)
def test_decode_reads_the_golden_bytes(frame: Frame, wire: str) -> None:
    decoded = decode(h(wire))
    assert type(decoded) is type(frame)
    assert decoded == frame


def test_golden_table_covers_every_frame_type() -> None:
    assert {type(frame) for frame, _ in GOLDEN} == set(FRAME_CLASSES.values())


# Other valid msgpack encodings of the same values: a decoder must take them (msgpack does not
# require the smallest encoding), and they decode to the same frames.
NON_CANONICAL: list[tuple[str, Frame]] = [
    ("92 0c d0 05", Ping(5)),  # int8 for a fixint
    ("92 0c ce 00 00 00 05", Ping(5)),  # uint32
    ("dc 00 02 0c 05", Ping(5)),  # array16
    ("dd 00 00 00 02 0c 05", Ping(5)),  # array32
    ("93 0a 03 d9 04 67 6f 6e 65", Cancel(3, "gone")),  # str8
    ("93 0a 03 da 00 04 67 6f 6e 65", Cancel(3, "gone")),  # str16
    ("96 03 a1 73 cd 04 00 01 01 ca 40 a0 00 00", Ready("s", 1024, 1, 1, 5.0)),  # float32
    ("95 06 01 de 00 03 " + CHAT_HI_WIRE[3:] + " 00 a0", Open(1, CHAT_HI, 0)),  # map16
    (
        # The same request with its keys in another order: a map's order means nothing.
        "95 06 01 83 a8 6d 65 73 73 61 67 65 73 91 82 a7 63 6f 6e 74 65 6e 74 a2 68 69"
        " a4 72 6f 6c 65 a4 75 73 65 72 a5 6d 6f 64 65 6c a1 6d a2 6f 70 a4 63 68 61 74 00 a0",
        Open(1, CHAT_HI, 0),
    ),
]


@pytest.mark.parametrize(("wire", "frame"), NON_CANONICAL)
def test_other_valid_encodings_decode_to_the_same_frame(wire: str, frame: Frame) -> None:
    assert decode(h(wire)) == frame


ONE_OF_EACH: list[Frame] = [
    Challenge(b"\x00\xff" * 16, "edge.example.com", [1, 2]),
    Auth("m_01HXYZ", 1, bytes(range(64))),
    Ready("sess", 1 << 20, 256 * 1024, 8 * 1024 * 1024, 5.0),
    Hello("0.1.0", 4, [{"name": "llama3", "capabilities": ["completion"], "context_length": 8192}]),
    Models([{"name": "qwen", "capabilities": ["completion", "tools", "thinking"]}]),
    Open(
        1,
        ChatRequest(
            "llama3",
            (Message("user", "héllo 😀", images=("aGk=",)),),
            options=Options(temperature=0.2, seed=-1),
        ),
        30.0,
    ),
    Delta(1, "Hello", "hmm", [{"id": "call_1", "name": "f", "arguments": '{"a":[1,null]}'}]),
    End(1, "stop", 12, 34, {"total_duration": 123456789, "load_duration": 0}),
    Error(1, "backend_error", "ollama said no", False),
    Cancel(1, "client went away"),
    Window(0, 131072),
    Ping(2**64 - 1),
    Pong(-(2**63)),
    GoAway("restart"),
    Embeddings(3, 7, [bytes(range(16)), b"\xff" * 3072]),
    Health(False, "Ollama at http://127.0.0.1:11434 refused the connection"),
    Nodes("edge-1", [["edge-1", "https://edge-1.example.com"], ["edge-2", "https://e2:8443"]]),
]


def test_one_of_each_covers_every_frame_type() -> None:
    assert [type(frame).TYPE for frame in ONE_OF_EACH] == sorted(FRAME_CLASSES)


@pytest.mark.parametrize("frame", ONE_OF_EACH, ids=lambda f: type(f).__name__)
def test_every_frame_type_round_trips(frame: Frame) -> None:
    data = encode(frame)
    assert isinstance(data, bytes)
    assert data[1] == frame.TYPE  # fixarray header, then the type code as a positive fixint
    decoded = decode(data)
    assert type(decoded) is type(frame)
    assert decoded == frame
    assert encode(decoded) == data


def test_limits_are_the_documented_ones() -> None:
    assert DEFAULT_MAX_FRAME == 1024 * 1024  # PROTOCOL.md §4: the edge's default
    assert AGENT_MAX_RECEIVE_FRAME == 64 * 1024 * 1024  # §4: what an agent accepts


# ------------------------------------------------------------------------------------- size


def test_oversized_frame_names_both_sizes() -> None:
    data = encode(Delta(1, "x" * 2000, "", []))
    with pytest.raises(FrameTooLarge) as caught:
        decode(data, max_frame=1024)
    message = str(caught.value)
    assert f"{len(data)} bytes" in message
    assert "1024" in message
    assert isinstance(caught.value, RemoteProtocolError)
    assert caught.value.code is ErrorCode.FRAME_TOO_LARGE


def test_size_is_checked_before_parsing() -> None:
    # Garbage that would be malformed is reported as too large: it is never parsed.
    with pytest.raises(FrameTooLarge, match="2049 bytes exceeds limit 2048"):
        decode(b"\xc1" * 2049, max_frame=2048)


def test_a_frame_exactly_at_the_limit_is_accepted() -> None:
    frame = Delta(1, "x" * 1000, "", [])
    data = encode(frame)
    assert decode(data, max_frame=len(data)) == frame
    with pytest.raises(FrameTooLarge):
        decode(data, max_frame=len(data) - 1)


def test_the_default_limit_is_one_mebibyte() -> None:
    overhead = len(encode(Delta(1, "", "", []))) + 4  # "" becomes a str32 header (+4 bytes)
    at_limit = encode(Delta(1, "x" * (DEFAULT_MAX_FRAME - overhead), "", []))
    assert len(at_limit) == DEFAULT_MAX_FRAME
    assert isinstance(decode(at_limit), Delta)
    over = encode(Delta(1, "x" * (DEFAULT_MAX_FRAME - overhead + 1), "", []))
    with pytest.raises(FrameTooLarge):
        decode(over)


# ------------------------------------------------------------------------------- rejections

MALFORMED: list[tuple[str, str]] = [
    # Not an array starting with an integer type code.
    ("05", "array starting with its type code"),
    ("a1 78", "array starting with its type code"),
    ("80", "array starting with its type code"),
    ("c0", "array starting with its type code"),
    ("c3", "array starting with its type code"),
    ("c4 01 00", "array starting with its type code"),
    ("90", "array starting with its type code"),  # empty array
    ("91 a1 78", "array starting with its type code"),  # type is a str
    ("92 c3 05", "array starting with its type code"),  # type is a bool (true == 1 in Python)
    ("92 cb 40 28 00 00 00 00 00 00 05", "array starting with its type code"),  # type 12.0
    ("92 c0 05", "array starting with its type code"),  # type is nil
    # Unknown type codes.
    ("91 00", "unknown frame type 0"),
    ("91 12", "unknown frame type 18"),
    ("91 ff", "unknown frame type -1"),
    ("92 63 05", "unknown frame type 99"),
    ("91 cf 00 00 01 00 00 00 00 00", "unknown frame type 1099511627776"),
    # Wrong field counts.
    ("91 0c", "Ping frame has 0 fields, expected 1"),
    ("93 0c 05 06", "Ping frame has 2 fields, expected 1"),
    ("92 0b 01", "Window frame has 1 fields, expected 2"),
    ("94 0b 01 02 03", "Window frame has 3 fields, expected 2"),
    ("94 07 01 a0 a0", "Delta frame has 3 fields, expected 4"),
    ("96 06 01 " + CHAT_HI_WIRE + " 00 a0 a0", "Open frame has 5 fields, expected 4"),
    # An OPEN without a request id, as edges sent before it was added: not this protocol.
    ("94 06 01 " + CHAT_HI_WIRE + " 00", "Open frame has 3 fields, expected 4"),
    # END may leave out its last field, usage_reported, and no other (§2).
    ("95 08 01 a4 73 74 6f 70 03 cc c8", "End frame has 4 fields, expected 5 to 6"),
    ("98 08 01 a4 73 74 6f 70 03 cc c8 80 c3 c3", "End frame has 7 fields, expected 5 to 6"),
    # Wrong field types; bool and int are distinct on the wire.
    ("92 0c c3", "Ping.payload has type bool"),
    ("92 0c c2", "Ping.payload has type bool"),
    ("92 0d c3", "Pong.payload has type bool"),
    ("93 0b c3 05", "Window.stream_id has type bool"),
    ("93 0b 01 c3", "Window.increment has type bool"),
    ("96 03 a1 73 cd 04 00 01 01 c3", "Ready.heartbeat_interval has type bool"),
    ("95 06 01 " + CHAT_HI_WIRE + " c2 a0", "Open.timeout has type bool"),
    ("95 06 01 " + CHAT_HI_WIRE + " 00 c0", "Open.request_id has type NoneType"),
    ("95 06 01 " + CHAT_HI_WIRE + " 00 c4 01 78", "Open.request_id has type bytes"),
    ("95 09 00 a1 78 a1 79 01", "Error.retryable has type int"),  # int where bool expected
    ("95 09 00 a1 78 a1 79 00", "Error.retryable has type int"),
    ("97 08 01 a4 73 74 6f 70 03 03 80 01", "End.usage_reported has type int"),
    ("92 0c a1 35", "Ping.payload has type str"),
    ("92 0c cb 40 14 00 00 00 00 00 00", "Ping.payload has type float"),
    ("92 0c c0", "Ping.payload has type NoneType"),
    ("93 0a 03 c4 04 67 6f 6e 65", "Cancel.reason has type bytes"),  # bin where str expected
    ("94 01 a1 78 a1 65 91 02", "Challenge.nonce has type str"),  # str where bin expected
    ("95 06 01 90 00 a0", "Open.request has type list"),
    ("92 05 80", "Models.models has type dict"),
    ("92 0e c0", "GoAway.reason has type NoneType"),
    ("95 07 01 a0 a0 80", "Delta.tool_calls has type dict"),
    ("95 07 01 a0 a0 90", "empty DELTA"),
    # A tool call's arguments are JSON text now, not a map (PROTOCOL.md §2).
    (
        "95 07 01 a0 a0 91 83 a2 69 64 a1 63 a4 6e 61 6d 65 a1 66 a9 61 72 67 75 6d 65 6e 74 73 80",
        "a tool call must be a map of exactly id, name and arguments",
    ),
    # bin where JSON is expected: a value and a key in an OPEN's format schema, a model field.
    (
        "95 06 01 84 " + CHAT_EMPTY_PAIRS + " a6 66 6f 72 6d 61 74 81 a1 78 c4 01 00 00 a0",
        "bytes value is not JSON",
    ),
    (
        "95 06 01 84 " + CHAT_EMPTY_PAIRS + " a6 66 6f 72 6d 61 74 81 c4 01 78 01 00 a0",
        "map key of type bytes",
    ),
    (
        "92 05 91 83 a4 6e 61 6d 65 a1 6d ac 63 61 70 61 62 69 6c 69 74 69 65 73 90"
        " a6 66 61 6d 69 6c 79 c4 01 00",
        "family must be a string",
    ),
    # Numbers JSON cannot hold: uint64 beyond int64 (a seed), NaN (float64 7f f8 …, a
    # temperature), and an infinite timeout.
    (
        "95 06 01 84 " + CHAT_EMPTY_PAIRS + " a7 6f 70 74 69 6f 6e 73 81 a4 73 65 65 64"
        " cf 80 00 00 00 00 00 00 00 00 a0",
        "int64",
    ),
    (
        "95 06 01 84 " + CHAT_EMPTY_PAIRS + " a7 6f 70 74 69 6f 6e 73 81"
        " ab 74 65 6d 70 65 72 61 74 75 72 65 cb 7f f8 00 00 00 00 00 00 00 a0",
        "finite",
    ),
    ("95 06 01 83 " + CHAT_EMPTY_PAIRS + " cb 7f f0 00 00 00 00 00 00 a0", "timeout inf"),
    # A request map that is not a request (§7); each refusal names the field.
    ("95 06 01 80 00 a0", "request has no op"),
    ("95 06 01 81 a2 6f 70 a4 63 68 61 74 00 a0", "request has no model"),
    ("95 06 01 84 " + CHAT_EMPTY_PAIRS + " a1 78 01 00 a0", r"request has unknown fields \['x'\]"),
    (
        "95 06 01 83 a2 6f 70 a4 63 68 61 74 a5 6d 6f 64 65 6c a0"  # "model": ""
        " a8 6d 65 73 73 61 67 65 73 90 00 a0",
        "request.model must be a name of 1 to 256 characters",
    ),
    # END usage beyond 2³²-1 (the red team's 2⁶⁴-1 broke the edge's database writes).
    ("96 08 01 a4 73 74 6f 70 00 cf ff ff ff ff ff ff ff ff 80", "token counts"),
    # Well typed but out of range: check() runs on every decoded frame.
    ("93 0b 01 00", "window increment 0"),
    ("93 0a 00 a0", "stream id 0"),
    ("94 02 a1 6d 01 c4 01 00", "signature of 1 bytes"),
    # Not msgpack, or msgpack the protocol refuses.
    ("c1", "malformed"),  # the never-used byte
    ("92 0c c1", "malformed"),
    ("92 0c d4 01 02", "malformed"),  # fixext1
    ("92 0c d6 ff 00 00 00 00", "malformed"),  # the timestamp extension
    ("92 0e a3 ff fe fd", "malformed"),  # invalid UTF-8 in a str
    ("92 0e a2 c3 28", "malformed"),  # truncated UTF-8 sequence
    ("93 0b 81 90 01 05", "malformed"),  # map with an array key
    ("92 05 91 81 01 02", "malformed"),  # map with an integer key
    # Trailing data after one complete frame, where one frame is expected (decode; §2).
    ("92 0c 05 05", "more than one frame"),
    ("92 0c 05 00", "more than one frame"),
    ("92 0c 05 92 0c 05", "more than one frame"),  # two frames in one message
    # Empty input.
    ("", "malformed"),
]


@pytest.mark.parametrize(("wire", "reason"), MALFORMED)
def test_malformed_frames_are_rejected_with_a_reason(wire: str, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason) as caught:
        decode(h(wire))
    assert type(caught.value) is RemoteProtocolError
    assert caught.value.code is ErrorCode.PROTOCOL_ERROR


@pytest.mark.parametrize(("frame", "wire"), GOLDEN, ids=repr)
def test_every_truncation_of_a_golden_frame_is_rejected(frame: Frame, wire: str) -> None:
    data = h(wire)
    for cut in range(len(data)):
        with pytest.raises(RemoteProtocolError):
            decode(data[:cut])


@pytest.mark.parametrize(("frame", "wire"), GOLDEN, ids=repr)
def test_trailing_bytes_after_a_golden_frame_are_rejected(frame: Frame, wire: str) -> None:
    for extra in (b"\x00", b"\xc0", b"\x90", h(wire)):
        with pytest.raises(RemoteProtocolError, match="more than one frame"):
            decode(h(wire) + extra)
    for extra in (b"\x00", b"\xc0", b"\x90"):  # where several frames may come, none is one
        with pytest.raises(RemoteProtocolError, match="array starting with its type code"):
            decode_many(h(wire) + extra, 10**6)
    assert decode_many(h(wire) * 2, 10**6) == [frame, frame]


def test_a_message_of_golden_frames_decodes_to_each_in_order() -> None:
    frames = [frame for frame, _ in GOLDEN]
    message = b"".join(h(wire) for _, wire in GOLDEN)
    assert decode_many(message, len(message)) == frames
    assert decode_many(message[: len(h(GOLDEN[0][1]))]) == [frames[0]]  # one frame alone


def test_a_message_of_frames_is_bounded_as_a_whole() -> None:
    one = encode(Ping(1))
    with pytest.raises(FrameTooLarge):
        decode_many(one * 10, len(one) * 10 - 1)
    assert decode_many(one * 10, len(one) * 10) == [Ping(1)] * 10


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_a_message_whose_last_frame_is_cut_is_malformed(cut: int) -> None:
    message = encode(Ping(1)) + encode(Cancel(3, "gone"))
    with pytest.raises(RemoteProtocolError, match="malformed"):
        decode_many(message[:-cut])


FORGED = [
    "dd ff ff ff ff",  # array32 of 4 G elements
    "dc ff ff",  # array16
    "df ff ff ff ff",  # map32
    "de ff ff",  # map16
    "db ff ff ff ff",  # str32 of 4 GiB
    "da ff ff",  # str16
    "d9 ff",  # str8
    "c6 ff ff ff ff",  # bin32
    "c5 ff ff",  # bin16
    "c9 ff ff ff ff 01",  # ext32
    "92 0c dd ff ff ff ff",  # inside a PING
    "93 0a 03 db ff ff ff ff",  # CANCEL.reason
    "94 01 c6 ff ff ff ff",  # CHALLENGE.nonce
    "95 06 01 df ff ff ff ff",  # OPEN.request
    "95 07 01 a0 a0 dd ff ff ff ff",  # DELTA.tool_calls
    "95 07 01 a0 a0 91 df 7f ff ff ff",  # a tool call map
]


@pytest.mark.parametrize("prefix", FORGED)
def test_forged_length_prefixes_are_refused_without_allocating(prefix: str) -> None:
    data = h(prefix) + b"\x00" * 16
    tracemalloc.start()
    try:
        started = time.perf_counter()
        with pytest.raises(RemoteProtocolError):
            decode(data)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.1
    assert peak < 256 * 1024, f"decoding {len(data)} bytes peaked at {peak} bytes"


def test_lengths_up_to_the_frame_size_are_fine() -> None:
    # The bounds are the frame's own size: a string filling the frame still decodes.
    frame = GoAway("r" * 5000)
    assert decode(encode(frame)) == frame
    wide = Open(
        1, ChatRequest("m", (), (Tool("f", parameters={f"k{i}": i for i in range(3000)}),)), 0
    )
    assert decode(encode(wide)) == wide
    long_list = Models([{"name": str(i), "capabilities": []} for i in range(1024)])
    assert decode(encode(long_list)) == long_list


@pytest.mark.parametrize(
    "wire",
    [
        # ext8 with length 0 and type 5 ("c7 00 05") slips under max_ext_len=0: every placement
        # must still be refused (PROTOCOL.md §2: "extension types" are rejected).
        pytest.param("92 0c c7 00 05", id="as-a-frame-field"),
        pytest.param(
            "95 06 01 84 " + CHAT_EMPTY_PAIRS + " a6 66 6f 72 6d 61 74 c7 00 05 00 a0",
            id="in-open-request",
        ),
        pytest.param(
            "95 07 01 a0 a0 91 83 a2 69 64 a1 63 a4 6e 61 6d 65 a1 66"
            " a9 61 72 67 75 6d 65 6e 74 73 c7 00 05",
            id="in-tool-call-arguments",
        ),
        pytest.param("96 08 01 a4 73 74 6f 70 00 00 81 a1 74 c7 00 05", id="in-end-timings"),
        pytest.param(
            "92 05 91 83 a4 6e 61 6d 65 a1 6d ac 63 61 70 61 62 69 6c 69 74 69 65 73 90"
            " a6 66 61 6d 69 6c 79 c7 00 05",
            id="in-a-model-entry",
        ),
    ],
)
def test_zero_length_extension_types_are_refused_anywhere(wire: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode(h(wire))


def _nested_open(depth: int) -> bytes:
    # OPEN of a chat with one tool whose parameters are {"x": {"x": … {}}}, `depth` maps with an
    # "x" around the innermost {}: a JSON schema may hold any JSON, so only its depth bounds it.
    tool = (
        " a5 74 6f 6f 6c 73 91 82 a4 74 79 70 65 a8 66 75 6e 63 74 69 6f 6e"  # "tools": [{"type"…
        " a8 66 75 6e 63 74 69 6f 6e 82 a4 6e 61 6d 65 a1 66"  # "function": {"name": "f",
        " aa 70 61 72 61 6d 65 74 65 72 73"  # "parameters":
    )
    return h("95 06 01 84 " + CHAT_EMPTY_PAIRS + tool) + h("81 a1 78") * depth + h("80 00 a0")


def test_moderate_nesting_decodes() -> None:
    # request, tools, the tool, its function, then 51 maps: 55 levels, within the 64 allowed.
    frame = decode(_nested_open(50))
    assert isinstance(frame, Open) and isinstance(frame.request, ChatRequest)
    (tool,) = frame.request.tools
    depth, node = 0, tool.parameters
    while node:
        node, depth = node["x"], depth + 1
    assert depth == 50


def test_nesting_is_bounded_at_64_levels_counting_the_request() -> None:
    assert isinstance(decode(_nested_open(59)), Open)  # 4 + 60 maps = 64
    with pytest.raises(RemoteProtocolError, match="nested deeper than 64 levels"):
        decode(_nested_open(60))


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deep_nesting_is_refused(depth: int) -> None:
    data = _nested_open(depth)
    started = time.perf_counter()
    with pytest.raises(RemoteProtocolError) as caught:
        decode(data, max_frame=len(data))
    assert type(caught.value) is RemoteProtocolError  # not a RecursionError in disguise
    assert time.perf_counter() - started < 1.0


def test_deep_array_nesting_is_refused() -> None:
    data = h("92 05") + h("91") * 100_000 + h("00")
    with pytest.raises(RemoteProtocolError):
        decode(data, max_frame=len(data))
