"""Typed requests (protocol/requests.py, PROTOCOL.md §7): every field survives the wire, the wire
shapes are pinned by hand, every malformed field is refused by name, and an op this side does not
know ends only its own stream.

Golden wire maps and bytes are written by hand from §7 and the msgpack specification, never taken
from the code under test (test_codec.py's docstring lists the msgpack reminders).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import msgpack
import pytest

from protocol import (
    Auth,
    Challenge,
    Connection,
    Error,
    ErrorCode,
    Hello,
    Open,
    Ready,
    RemoteProtocolError,
    Role,
    State,
    decode,
    encode,
)
from protocol.frames import Frame, FrameType
from protocol.requests import (
    MAX_MODEL_NAME,
    NO_OPTIONS,
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    Message,
    Options,
    Request,
    Tool,
    ToolCall,
    UnsupportedRequest,
    from_wire,
    to_wire,
)

FULL_OPTIONS = Options(
    num_predict=128,
    temperature=0.7,
    top_p=0.9,
    top_k=40,
    seed=-1,
    presence_penalty=0.5,
    frequency_penalty=-0.25,
    stop=("\n\n", "END"),
)
WEATHER_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city"],
}
FULL_CHAT = ChatRequest(
    "llama3.1:8b",
    (
        Message("system", "Be brief."),
        Message("user", "What is in these?", images=("iVBORw0KGgo=", "R0lGODlhAQABAA==")),
        Message(
            "assistant",
            "",
            tool_calls=(
                ToolCall("get_weather", {"city": "Paris", "days": [1, 2], "when": None}, "call_1"),
                ToolCall("now", {}),  # a call without an id, as Ollama's own history has it
            ),
            thinking="The user wants the weather.",
        ),
        Message("tool", '{"temp": 21}', tool_name="get_weather", tool_call_id="call_1"),
        Message("user", "héllo 😀"),
    ),
    tools=(Tool("get_weather", "Weather for a city", WEATHER_SCHEMA), Tool("now")),
    options=FULL_OPTIONS,
    format={"type": "object", "properties": {"answer": {"type": "string"}}},
    think="high",
)
FULL_GENERATE = GenerateRequest(
    "qwen2.5-coder",
    "def add(a, b):",
    suffix="\n\nprint(add(1, 2))",
    system="You complete Python.",
    options=FULL_OPTIONS,
    format="json",
    think=True,
)
FULL_EMBED = EmbedRequest(
    "nomic-embed-text", ("first", "", "third ☃"), dimensions=256, truncate=False
)

ROUND_TRIP: list[Request] = [
    FULL_CHAT,
    FULL_GENERATE,
    FULL_EMBED,
    ChatRequest("m", ()),
    ChatRequest("m", (Message("user"),), format="json", think=False),
    ChatRequest("m" * MAX_MODEL_NAME, (Message("user", "hi"),), think="low"),
    ChatRequest(
        "m", (), tools=(Tool("f", "", {}),), options=Options(temperature=1), think="medium"
    ),
    GenerateRequest("m", ""),
    GenerateRequest("m", "p", suffix="", system="", format={"type": "string"}, think=False),
    GenerateRequest("m", "p", options=Options(stop=("a",)), think="high"),
    EmbedRequest("m", ()),
    EmbedRequest("m", ("x",), dimensions=2**63 - 1, truncate=True),
]


@pytest.mark.parametrize("request_", ROUND_TRIP, ids=repr)
def test_every_field_survives_the_wire(request_: Request) -> None:
    wire = to_wire(request_)
    assert from_wire(wire) == request_
    # Through msgpack as OPEN carries it, and through the codec as a whole frame.
    assert from_wire(msgpack.unpackb(msgpack.packb(wire, use_bin_type=True))) == request_
    frame = Open(1, request_, 30)
    assert decode(encode(frame)) == frame


def _instances(value: object) -> list[object]:
    """``value`` and every request dataclass inside it (messages, calls, tools, options)."""
    found = [value]
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            inner = getattr(value, field.name)
            for item in inner if isinstance(inner, tuple) else (inner,):
                if dataclasses.is_dataclass(item):
                    found.extend(_instances(item))
    return found


@pytest.mark.parametrize(
    "cls", [ChatRequest, GenerateRequest, EmbedRequest, Message, ToolCall, Tool, Options]
)
def test_the_round_trip_cases_set_every_field_of_every_class(cls: type) -> None:
    # A field added to a request class must be added to ROUND_TRIP too, with a value other than
    # its default, or the test above would not notice to_wire/from_wire forgetting it.
    instances = [i for r in ROUND_TRIP for i in _instances(r) if type(i) is cls]
    for field in dataclasses.fields(cls):
        default = field.default
        assert any(getattr(i, field.name) != default for i in instances), field.name


def test_format_and_think_take_every_documented_form() -> None:
    texts = [r for r in ROUND_TRIP if not isinstance(r, EmbedRequest)]
    formats = {"json" if r.format == "json" else type(r.format).__name__ for r in texts}
    assert formats == {"json", "dict", "NoneType"}  # "json", a JSON schema, or none
    assert {r.think for r in texts} == {None, True, False, "low", "medium", "high"}


# ------------------------------------------------------------------------------ golden maps

CHAT_HI = ChatRequest("m", (Message("user", "hi"),))

GOLDEN_WIRE: list[tuple[Request | UnsupportedRequest, dict[str, Any]]] = [
    # Unset optional fields are left out, not sent as nil or empty.
    (
        CHAT_HI,
        {"op": "chat", "model": "m", "messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        ChatRequest(
            "m",
            (
                Message("assistant", tool_calls=(ToolCall("f", {"a": 1}, "c1"),), thinking="t"),
                Message("tool", "2", tool_name="f", tool_call_id="c1"),
            ),
            tools=(Tool("f", "adds", {"type": "object"}), Tool("g")),
            options=Options(temperature=0.5, stop=("x",)),
            format="json",
            think=False,
        ),
        {
            "op": "chat",
            "model": "m",
            "messages": [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"id": "c1", "function": {"name": "f", "arguments": {"a": 1}}}],
                    "thinking": "t",
                },
                {"role": "tool", "content": "2", "tool_name": "f", "tool_call_id": "c1"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "description": "adds",
                        "parameters": {"type": "object"},
                    },
                },
                {"type": "function", "function": {"name": "g"}},
            ],
            "options": {"temperature": 0.5, "stop": ["x"]},
            "format": "json",
            "think": False,
        },
    ),
    (
        # A call without an id has no "id" key at all.
        ChatRequest("m", (Message("assistant", tool_calls=(ToolCall("f", {}),)),)),
        {
            "op": "chat",
            "model": "m",
            "messages": [
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"function": {"name": "f", "arguments": {}}}],
                }
            ],
        },
    ),
    (
        GenerateRequest("m", "Once", suffix="end", system="s", options=Options(num_predict=5)),
        {
            "op": "generate",
            "model": "m",
            "prompt": "Once",
            "suffix": "end",
            "system": "s",
            "options": {"num_predict": 5},
        },
    ),
    (
        GenerateRequest("m", "", format={"type": "string"}, think="low"),
        {
            "op": "generate",
            "model": "m",
            "prompt": "",
            "format": {"type": "string"},
            "think": "low",
        },
    ),
    (
        # truncate is always written; dimensions only when set.
        EmbedRequest("m", ("a", "b")),
        {"op": "embed", "model": "m", "input": ["a", "b"], "truncate": True},
    ),
    (
        EmbedRequest("m", ("a",), dimensions=8, truncate=False),
        {"op": "embed", "model": "m", "input": ["a"], "truncate": False, "dimensions": 8},
    ),
    (UnsupportedRequest("rerank", "m"), {"op": "rerank", "model": "m"}),
]


@pytest.mark.parametrize(("request_", "wire"), GOLDEN_WIRE, ids=repr)
def test_the_wire_map_is_the_documented_one(
    request_: Request | UnsupportedRequest, wire: dict[str, Any]
) -> None:
    assert to_wire(request_) == wire
    assert from_wire(wire) == request_


def test_options_with_every_field_use_ollamas_names() -> None:
    assert to_wire(GenerateRequest("m", "", options=FULL_OPTIONS))["options"] == {
        "num_predict": 128,
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 40,
        "seed": -1,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.25,
        "stop": ["\n\n", "END"],
    }
    assert "options" not in to_wire(GenerateRequest("m", "", options=NO_OPTIONS))


# [6, 3, {op: chat, model: m, messages: [{role: tool, content: "4", tool_name: f,
#  tool_call_id: c}], options: {seed: 7}, think: true}, 60, ""], key by key in to_wire's order.
GOLDEN_OPEN = Open(
    3,
    ChatRequest(
        "m",
        (Message("tool", "4", tool_name="f", tool_call_id="c"),),
        options=Options(seed=7),
        think=True,
    ),
    60,
)
GOLDEN_OPEN_WIRE = (
    "95 06 03 85"  # fixarray(5), OPEN, stream 3, fixmap(5)
    " a2 6f 70 a4 63 68 61 74"  # "op": "chat"
    " a5 6d 6f 64 65 6c a1 6d"  # "model": "m"
    " a8 6d 65 73 73 61 67 65 73 91 84"  # "messages": [ fixmap(4)
    " a4 72 6f 6c 65 a4 74 6f 6f 6c"  # "role": "tool"
    " a7 63 6f 6e 74 65 6e 74 a1 34"  # "content": "4"
    " a9 74 6f 6f 6c 5f 6e 61 6d 65 a1 66"  # "tool_name": "f"
    " ac 74 6f 6f 6c 5f 63 61 6c 6c 5f 69 64 a1 63"  # "tool_call_id": "c" ]
    " a7 6f 70 74 69 6f 6e 73 81 a4 73 65 65 64 07"  # "options": {"seed": 7}
    " a5 74 68 69 6e 6b c3"  # "think": true
    " 3c"  # timeout 60
    " a0"  # no request id
)


def test_golden_open_bytes_both_ways() -> None:
    assert encode(GOLDEN_OPEN) == bytes.fromhex(GOLDEN_OPEN_WIRE)
    decoded = decode(bytes.fromhex(GOLDEN_OPEN_WIRE))
    assert decoded == GOLDEN_OPEN
    assert isinstance(decoded, Open) and type(decoded.request) is ChatRequest
    assert type(decoded.request.messages) is tuple


# ------------------------------------------------------------------------------ refusals

MESSAGE = {"role": "user", "content": "hi"}
CHAT_WIRE: dict[str, Any] = {"op": "chat", "model": "m", "messages": [MESSAGE]}
CALL_WIRE: dict[str, Any] = {"id": "c", "function": {"name": "f", "arguments": {}}}
TOOL_WIRE: dict[str, Any] = {"type": "function", "function": {"name": "f"}}
GENERATE_WIRE: dict[str, Any] = {"op": "generate", "model": "m", "prompt": "p"}
EMBED_WIRE: dict[str, Any] = {"op": "embed", "model": "m", "input": ["a"], "truncate": True}


def chat(**fields: Any) -> dict[str, Any]:
    return {**CHAT_WIRE, **fields}


def with_message(**fields: Any) -> dict[str, Any]:
    return chat(messages=[{**MESSAGE, **fields}])


REFUSED: list[tuple[object, str]] = [
    # Unknown keys, at every level: nothing passes unchecked.
    (chat(keep_alive="5m"), r"request has unknown fields \['keep_alive'\]"),
    (with_message(name="bob"), r"messages\.0 has unknown fields \['name'\]"),
    (chat(options={"mirostat": 1}), r"options has unknown fields \['mirostat'\]"),
    (
        with_message(tool_calls=[{**CALL_WIRE, "index": 0}]),
        r"messages\.0\.tool_calls\.0 has unknown fields \['index'\]",
    ),
    (
        with_message(tool_calls=[{"function": {"name": "f", "arguments": {}, "x": 1}}]),
        r"messages\.0\.tool_calls\.0\.function has unknown fields \['x'\]",
    ),
    (chat(tools=[{**TOOL_WIRE, "strict": True}]), r"tools\.0 has unknown fields \['strict'\]"),
    (
        chat(tools=[{"type": "function", "function": {"name": "f", "strict": True}}]),
        r"tools\.0\.function has unknown fields \['strict'\]",
    ),
    ({**GENERATE_WIRE, "messages": []}, r"request has unknown fields \['messages'\]"),
    ({**EMBED_WIRE, "options": {}}, r"request has unknown fields \['options'\]"),
    # Not a map, or a required field missing.
    ([], "request must be a map"),
    ({"model": "m", "messages": []}, "request has no op"),
    ({**CHAT_WIRE, "op": None}, "request has no op"),  # nil is absent
    ({"op": "chat", "messages": []}, "request has no model"),
    ({"op": "chat", "model": "m"}, "request has no messages"),
    ({"op": "generate", "model": "m"}, "request has no prompt"),
    ({"op": "embed", "model": "m", "truncate": True}, "request has no input"),
    (with_message(role=None), r"messages\.0 has no role"),
    (with_message(tool_calls=[{"id": "c"}]), r"messages\.0\.tool_calls\.0 has no function"),
    (
        with_message(tool_calls=[{"function": {"name": "f"}}]),
        r"messages\.0\.tool_calls\.0\.function has no arguments",
    ),
    (chat(tools=[{"type": "function", "function": {}}]), r"tools\.0\.function has no name"),
    # Wrong types or values, each named.
    ({**CHAT_WIRE, "op": 1}, "request.op must be a string"),
    ({**CHAT_WIRE, "model": ""}, "request.model must be a name of 1 to 256 characters"),
    ({**CHAT_WIRE, "model": "m" * 257}, "request.model must be a name of 1 to 256 characters"),
    ({**CHAT_WIRE, "model": "m" * 300}, "request.model must be a name of 1 to 256 characters"),
    ({**CHAT_WIRE, "model": 7}, "request.model must be a name"),
    (chat(messages={"role": "user"}), "request.messages must be a list"),
    (chat(messages=["hi"]), r"messages\.0 must be a map"),
    (with_message(role="bot"), r"messages\.0\.role must be system, user, assistant or tool"),
    (with_message(role="User"), r"messages\.0\.role must be"),
    (with_message(content=["hi"]), r"messages\.0\.content must be a string"),
    (with_message(content=0), r"messages\.0\.content must be a string"),
    (with_message(images="aGk="), r"messages\.0\.images must be a list of strings"),
    (with_message(images=[1]), r"messages\.0\.images must be a list of strings"),
    (with_message(tool_name=1), r"messages\.0\.tool_name must be a string"),
    (with_message(tool_call_id=1), r"messages\.0\.tool_call_id must be a string"),
    (with_message(thinking=True), r"messages\.0\.thinking must be a string"),
    (with_message(tool_calls=[{**CALL_WIRE, "id": 1}]), r"tool_calls\.0\.id must be a string"),
    (
        # OpenAI's shape (arguments as JSON text) is not the wire's (an object).
        with_message(tool_calls=[{"function": {"name": "f", "arguments": "{}"}}]),
        r"messages\.0\.tool_calls\.0\.function\.arguments must be a map",
    ),
    (chat(tools=[{**TOOL_WIRE, "type": "retrieval"}]), r'tools\.0\.type must be "function"'),
    (
        chat(tools=[{"function": {"name": "f", "parameters": []}}]),
        r"tools\.0\.function\.parameters must be a map",
    ),
    (chat(options={"num_predict": "5"}), "options.num_predict must be an integer"),
    (chat(options={"num_predict": 5.0}), "options.num_predict must be an integer"),
    (chat(options={"seed": True}), "options.seed must be an integer"),
    (chat(options={"top_k": 1.5}), "options.top_k must be an integer"),
    (chat(options={"temperature": "0.5"}), "options.temperature must be a number"),
    (chat(options={"temperature": False}), "options.temperature must be a number"),
    (chat(options={"stop": "\n"}), "options.stop must be a list of strings"),
    (chat(options=[]), "request.options must be a map"),
    (chat(format="xml"), 'request.format must be "json" or a JSON schema'),
    (chat(format=["json"]), 'request.format must be "json" or a JSON schema'),
    (chat(think="extreme"), "request.think must be true, false or a level"),
    (chat(think=1), "request.think must be true, false or a level"),
    ({**GENERATE_WIRE, "prompt": ["p"]}, "request.prompt must be a string"),
    ({**GENERATE_WIRE, "suffix": 1}, "request.suffix must be a string"),
    ({**GENERATE_WIRE, "think": "minimal"}, "request.think must be"),
    ({**EMBED_WIRE, "input": "a"}, "request.input must be a list of strings"),
    ({**EMBED_WIRE, "dimensions": 0}, "request.dimensions must be a positive integer"),
    ({**EMBED_WIRE, "dimensions": True}, "request.dimensions must be a positive integer"),
    ({**EMBED_WIRE, "truncate": 1}, "request.truncate must be true or false"),
    # What JSON cannot hold is refused first, for the whole map (§2): these name the value, not
    # the field.
    (with_message(images=[b"\x89PNG"]), "OPEN request: a bytes value is not JSON"),
    (chat(format={b"type": "object"}), "OPEN request: a map key of type bytes"),
    (chat(options={"temperature": math.nan}), "OPEN request: nan is not a finite number"),
    (chat(options={"temperature": math.inf}), "OPEN request: inf is not a finite number"),
    (chat(options={"top_p": -math.inf}), "OPEN request: -inf is not a finite number"),
    (chat(options={"seed": 2**63}), "OPEN request: integer 9223372036854775808 is outside int64"),
    # An unknown op is read no further than op and model, but the map must still be JSON.
    ({"op": "rerank", "model": "m", "query": b"q"}, "OPEN request: a bytes value is not JSON"),
    ({"op": "rerank"}, "request has no model"),
    ({"op": "rerank", "model": ""}, "request.model must be a name"),
]


@pytest.mark.parametrize(("wire", "reason"), REFUSED, ids=repr)
def test_a_malformed_request_is_refused_with_the_field_named(wire: object, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason):
        from_wire(wire)
    # The same through the codec: a protocol error of the connection, not any other exception.
    data = msgpack.packb([int(FrameType.OPEN), 1, wire, 0, ""], use_bin_type=True)
    if not isinstance(wire, dict):
        reason = "Open.request has type list"  # the frame's own schema speaks first
    with pytest.raises(RemoteProtocolError, match=reason) as caught:
        decode(data)
    assert type(caught.value) is RemoteProtocolError
    assert caught.value.code is ErrorCode.PROTOCOL_ERROR


def test_the_refusals_start_from_valid_maps() -> None:
    # Each refusal above changes one thing in one of these; they must be valid themselves.
    assert from_wire(CHAT_WIRE) == CHAT_HI
    assert from_wire(with_message(tool_calls=[CALL_WIRE])) == ChatRequest(
        "m", (Message("user", "hi", tool_calls=(ToolCall("f", {}, "c"),)),)
    )
    assert from_wire(chat(tools=[TOOL_WIRE])) == ChatRequest("m", CHAT_HI.messages, (Tool("f"),))
    assert from_wire(GENERATE_WIRE) == GenerateRequest("m", "p")
    assert from_wire(EMBED_WIRE) == EmbedRequest("m", ("a",))
    assert from_wire({**CHAT_WIRE, "model": "m" * MAX_MODEL_NAME}).model == "m" * 256


@pytest.mark.parametrize("truncate", [{}, {"truncate": None}])
def test_an_embed_without_truncate_truncates(truncate: dict[str, Any]) -> None:
    # to_wire always writes it; a peer may leave it out, and Ollama's default (true) stands.
    wire = {"op": "embed", "model": "m", "input": ["a"], **truncate}
    assert from_wire(wire) == EmbedRequest("m", ("a",), truncate=True)


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (with_message(role=[]), r"messages\.0\.role must be"),
        (with_message(role={}), r"messages\.0\.role must be"),
        (chat(think=[]), "request.think must be"),
        (chat(think={"level": "high"}), "request.think must be"),
    ],
    ids=repr,
)
def test_a_list_or_map_where_a_name_is_expected_is_refused_not_crashed(
    wire: dict[str, Any], reason: str
) -> None:
    data = msgpack.packb([int(FrameType.OPEN), 1, wire, 0, ""], use_bin_type=True)
    with pytest.raises(RemoteProtocolError, match=reason):
        decode(data)  # codec.py promises only FrameTooLarge or RemoteProtocolError


# ------------------------------------------------------------------------------ unknown ops


def pump(source: Connection, target: Connection) -> list[Frame]:
    return [frame for data in source.data_to_send() for frame in target.receive_message(data)]


def handshake() -> tuple[Connection, Connection]:
    edge, agent = Connection(Role.EDGE), Connection(Role.AGENT)
    for sender, receiver, frame in [
        (edge, agent, Challenge(b"n" * 32, "edge.test", [2])),
        (agent, edge, Auth("m", 1, b"s" * 64)),
        (edge, agent, Ready("s", 1 << 20, 1000, 4000, 5.0)),
        (agent, edge, Hello("1", 4, [])),
    ]:
        sender.send(frame)
        pump(sender, receiver)
    assert edge.state is agent.state is State.OPEN
    return edge, agent


def test_an_unknown_op_decodes_to_unsupported_with_its_op_and_model() -> None:
    wire = {"op": "rerank", "model": "bge", "query": "q", "documents": ["a", {"b": [1]}]}
    request = from_wire(wire)
    assert request == UnsupportedRequest("rerank", "bge")
    assert isinstance(request, UnsupportedRequest)
    assert (request.OP, request.op, request.model) == ("rerank", "rerank", "bge")
    assert to_wire(request) == {"op": "rerank", "model": "bge"}  # the rest was never read
    data = msgpack.packb([int(FrameType.OPEN), 1, wire, 0, ""], use_bin_type=True)
    assert decode(data) == Open(1, UnsupportedRequest("rerank", "bge"), 0)


@pytest.mark.parametrize("op", ["", "Chat", "chat ", "embeddings", "completion"])
def test_names_near_the_known_ops_are_unknown_ops(op: str) -> None:
    assert from_wire({"op": op, "model": "m"}) == UnsupportedRequest(op, "m")


def test_an_unknown_op_ends_only_its_stream() -> None:
    edge, agent = handshake()
    edge.send(Open(1, CHAT_HI, 0))
    pump(edge, agent)
    # A newer edge asks for something this agent does not know; its extra fields ride along.
    wire = {"op": "rerank", "model": "bge", "query": "q", "top_n": 3}
    (frame,) = [agent.receive(msgpack.packb([6, 2, wire, 0, ""], use_bin_type=True))]
    assert frame == Open(2, UnsupportedRequest("rerank", "bge"), 0)
    assert agent.state is State.OPEN and agent.is_active(2)
    edge.send(Open(2, UnsupportedRequest("rerank", "bge"), 0))  # keep the edge's ids in step
    edge.data_to_send()
    agent.send(Error(2, ErrorCode.UNSUPPORTED.value, "this agent cannot run 'rerank'", False))
    assert pump(agent, edge) == [Error(2, "unsupported", "this agent cannot run 'rerank'", False)]
    assert not edge.is_active(2) and not agent.is_active(2)
    assert edge.is_active(1) and agent.is_active(1)  # the other stream runs on
    assert edge.state is agent.state is State.OPEN
    edge.send(Open(3, CHAT_HI, 0))
    assert pump(edge, agent) == [Open(3, CHAT_HI, 0)]


def test_the_edge_can_send_an_unknown_op() -> None:
    edge, agent = handshake()
    edge.send(Open(1, UnsupportedRequest("rerank", "bge"), 5))
    assert pump(edge, agent) == [Open(1, UnsupportedRequest("rerank", "bge"), 5)]


# ------------------------------------------------------------------- Open.check_outgoing()


def deep_request(depth: int) -> ChatRequest:
    """A chat whose wire map nests ``depth`` maps and lists deep, counting the request itself:
    request, tools, the tool, its function, then ``depth - 4`` maps of ``parameters``."""
    parameters: dict[str, Any] = {}
    for _ in range(depth - 5):
        parameters = {"x": parameters}
    return ChatRequest("m", (), tools=(Tool("f", parameters=parameters),))


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def test_deep_request_nests_as_deep_as_it_says() -> None:
    assert [_depth(to_wire(deep_request(d))) for d in (5, 64, 65)] == [5, 64, 65]


def test_a_request_nested_deeper_than_64_levels_is_refused_before_sending() -> None:
    Open(1, deep_request(64), 0).check_outgoing()  # the limit itself is fine
    with pytest.raises(RemoteProtocolError, match="OPEN request: nested deeper than 64 levels"):
        Open(1, deep_request(65), 0).check_outgoing()
    with pytest.raises(RemoteProtocolError, match="nested deeper than 64 levels"):
        decode(encode(Open(1, deep_request(65), 0)))  # and the agent refuses it too


def test_check_outgoing_refuses_what_json_cannot_hold_in_a_typed_request() -> None:
    cases: list[tuple[Request, str]] = [
        (ChatRequest("m", (), options=Options(temperature=math.nan)), "not a finite number"),
        (ChatRequest("m", (), options=Options(seed=2**63)), "outside int64"),
        (ChatRequest("m", (Message("user", images=(b"\x89PNG",)),)), "bytes value"),  # type: ignore[arg-type]
        (ChatRequest("m", (), format={"k": {1, 2}}), "a set value is not JSON"),
    ]
    for request, reason in cases:
        with pytest.raises(RemoteProtocolError, match=reason):
            Open(1, request, 0).check_outgoing()


# Typed requests whose wire map is JSON but which from_wire refuses: an OPEN the agent answers
# with ERROR on stream 0, closing the tunnel and every stream on it.
AGENT_REFUSES: list[tuple[Request, str]] = [
    (ChatRequest("", ()), "request.model must be a name"),
    (ChatRequest("m" * 257, ()), "request.model must be a name"),
    (ChatRequest("m", (), think="extreme"), "request.think must be"),
    (ChatRequest("m", (), format="xml"), "request.format must be"),
    (ChatRequest("m", (Message("bot", "hi"),)), r"messages\.0\.role must be"),  # type: ignore[arg-type]
    (GenerateRequest("m", "p", options=Options(num_predict="5")), "num_predict must be"),  # type: ignore[arg-type]
    (EmbedRequest("m", ("a",), dimensions=0), "dimensions must be a positive integer"),
]


AGENT_REFUSES_IDS = [
    "empty model",
    "257-char model",
    "think extreme",
    "format xml",
    "role bot",
    "num_predict str",
    "dimensions 0",
]


@pytest.mark.parametrize(("request_", "reason"), AGENT_REFUSES, ids=AGENT_REFUSES_IDS)
def test_the_agent_refuses_these_requests(request_: Request, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason):
        decode(encode(Open(1, request_, 0)))


@pytest.mark.parametrize(("request_", "reason"), AGENT_REFUSES, ids=AGENT_REFUSES_IDS)
def test_check_outgoing_refuses_what_the_agent_refuses(request_: Request, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason):
        Open(1, request_, 0).check_outgoing()
    Open(1, request_, 0).check()  # the frame's own fields are fine: the request is the trouble
