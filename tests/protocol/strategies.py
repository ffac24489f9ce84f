"""Hypothesis strategies shared by the protocol tests: JSON values and typed requests (§7).

Everything drawn from ``requests`` is valid: ``from_wire(to_wire(r)) == r`` and an OPEN carrying
it passes ``check()``. ``request_maps`` draws what a hostile or buggy peer might put in OPEN's
request instead: valid wire maps with keys deleted, added or overwritten by arbitrary msgpack
values at any depth, and maps of arbitrary contents.
"""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

from protocol.requests import (
    MAX_MODEL_NAME,
    ROLES,
    THINK_LEVELS,
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    Message,
    Options,
    Request,
    Tool,
    ToolCall,
    UnsupportedRequest,
    to_wire,
)

KNOWN_OPS = ("chat", "generate", "embed")

# JSON's integers, as the frames allow them (PROTOCOL.md §2): int64.
json_ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
text = st.text(max_size=30)
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | json_ints | finite_floats | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
json_maps = st.dictionaries(text, json_values, max_size=4)
# msgpack's integer range: what encode can put on the wire.
wire_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
# msgpack values the codec under test never produced: bin, NaN, uint64 beyond int64, …
msgpack_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | wire_ints | st.floats() | text | st.binary(max_size=70),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=4),
    max_leaves=15,
)

# ---------------------------------------------------------------------- valid typed requests


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def _tuples(strategy: st.SearchStrategy[Any], max_size: int = 3) -> st.SearchStrategy[Any]:
    return st.lists(strategy, max_size=max_size).map(tuple)


models = st.text(min_size=1, max_size=20) | st.just("m" * MAX_MODEL_NAME)
tool_calls = st.builds(ToolCall, text, json_maps, text)
messages = st.builds(
    Message,
    st.sampled_from(sorted(ROLES)),
    text,
    _tuples(text, 2),
    _tuples(tool_calls, 2),
    text,
    text,
    text,
)
tools = st.builds(Tool, text, _maybe(text), _maybe(json_maps))
options = st.builds(
    Options,
    _maybe(json_ints),
    _maybe(finite_floats),
    _maybe(finite_floats),
    _maybe(json_ints),
    _maybe(json_ints),
    _maybe(finite_floats),
    _maybe(finite_floats),
    _tuples(text),
)
formats = st.none() | st.just("json") | json_maps
thinks = st.none() | st.booleans() | st.sampled_from(sorted(THINK_LEVELS))
chat_requests = st.builds(
    ChatRequest,
    models,
    _tuples(messages),
    _tuples(tools, 2),
    options,
    formats,
    thinks,
)
generate_requests = st.builds(
    GenerateRequest, models, text, _maybe(text), _maybe(text), options, formats, thinks
)
embed_requests = st.builds(
    EmbedRequest,
    models,
    _tuples(text, 4),
    _maybe(st.integers(min_value=1, max_value=2**63 - 1)),
    st.booleans(),
)
unsupported_requests = st.builds(
    UnsupportedRequest, text.filter(lambda op: op not in KNOWN_OPS), models
)
requests: st.SearchStrategy[Request] = chat_requests | generate_requests | embed_requests
requests_or_unsupported: st.SearchStrategy[Request | UnsupportedRequest] = (
    requests | unsupported_requests
)

# ---------------------------------------------------------------------- hostile request maps

# Every key the request shapes use, at any level: a mutation that reuses one gets past the
# unknown-key check and into the field's own check.
FIELD_NAMES = (
    "op",
    "model",
    "messages",
    "tools",
    "options",
    "format",
    "think",
    "prompt",
    "suffix",
    "system",
    "input",
    "dimensions",
    "truncate",
    "role",
    "content",
    "images",
    "tool_calls",
    "tool_name",
    "tool_call_id",
    "thinking",
    "id",
    "function",
    "name",
    "arguments",
    "type",
    "description",
    "parameters",
    "num_predict",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "stop",
)
# Values that are almost right: the wrong kind for any field, and the names fields take. Copied,
# because sampled_from hands out the same list or map each time and the mutations below change
# what they find in the map.
WRONG_KINDS: list[Any] = [[], {}, "", "x", 0, -1, 1.5, True, False, None, b"", [""], [{}], {"": 0}]
wrong_kinds = st.sampled_from(WRONG_KINDS)
near_values: st.SearchStrategy[Any] = st.one_of(
    wrong_kinds,
    wrong_kinds,
    st.sampled_from([*KNOWN_OPS, *sorted(ROLES), *sorted(THINK_LEVELS), "json", "function"]),
    msgpack_values,
).map(copy.deepcopy)
# Chats with messages to spoil, mostly: most of the fields are in a message.
chats_with_messages = st.builds(
    ChatRequest,
    models,
    st.lists(messages, min_size=1, max_size=3).map(tuple),
    _tuples(tools, 2),
    options,
    formats,
    thinks,
)
# one_of flattens requests_or_unsupported into its four kinds: as many chats with messages.
spoilable = st.one_of(*[chats_with_messages] * 4, requests_or_unsupported)


# Fields that hold any JSON: a change inside them is mostly accepted, so most changes go
# elsewhere, where each field has a kind of its own.
ANY_JSON = frozenset({"arguments", "parameters", "format"})


def _containers(value: Any, *, into_any_json: bool = True) -> list[Any]:
    """Every map and list in ``value``, ``value`` first."""
    found: list[Any] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            found.append(item)
            pending.extend(v for k, v in item.items() if into_any_json or k not in ANY_JSON)
        elif isinstance(item, list):
            found.append(item)
            pending.extend(item)
    return found


def _slots(value: Any, *, into_any_json: bool) -> list[tuple[Any, Any]]:
    """Every (map, key) and (list, index) in ``value``: each place a value sits."""
    return [
        (container, key)
        for container in _containers(value, into_any_json=into_any_json)
        for key in (sorted(container) if isinstance(container, dict) else range(len(container)))
    ]


@st.composite
def mutated_request_maps(draw: st.DrawFn) -> dict[str, Any]:
    """The wire map of a valid request with one to three changes anywhere in it: a value of
    the wrong kind (mostly), a key or item deleted, or one added."""
    # A copy: to_wire shares the request's own maps (arguments, parameters, format).
    wire = copy.deepcopy(to_wire(draw(spoilable)))
    for _ in range(draw(st.integers(1, 3))):
        slots = _slots(wire, into_any_json=draw(st.integers(0, 3)) == 0)
        action = draw(st.sampled_from(["retype", "retype", "retype", "delete", "add"]))
        if action != "add" and slots:
            # A field name first, then one place it sits: each field gets its turn, however
            # many places hold, say, a content or a list item.
            by_name: dict[str, list[tuple[Any, Any]]] = {}
            for slot in slots:
                by_name.setdefault(slot[1] if isinstance(slot[1], str) else "[]", []).append(slot)
            name = draw(st.sampled_from(sorted(by_name)))
            container, key = draw(st.sampled_from(by_name[name]))
            if action == "retype":
                container[key] = draw(near_values)
            else:
                del container[key]
            continue
        target = draw(st.sampled_from(_containers(wire)))
        if isinstance(target, list):
            target.append(draw(near_values))
        else:
            target[draw(st.sampled_from(FIELD_NAMES) | text)] = draw(near_values)
    return wire


request_maps: st.SearchStrategy[Any] = st.one_of(
    mutated_request_maps(),
    mutated_request_maps(),
    mutated_request_maps(),
    st.dictionaries(st.sampled_from(FIELD_NAMES) | text, near_values, max_size=8),
    st.builds(lambda op, extra: {"op": op, "model": "m", **extra}, near_values, json_maps),
)
