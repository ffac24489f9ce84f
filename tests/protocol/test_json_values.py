"""The JSON-compatibility check the frame checks share (PROTOCOL.md §2)."""

from __future__ import annotations

import json
import math
import time

import pytest

from protocol import RemoteProtocolError
from protocol.json_values import INT64_MAX, INT64_MIN, MAX_DEPTH, check_json


def deep(depth: int, leaf: object = 1) -> object:
    """``depth`` lists and maps, alternating, around ``leaf``."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


ACCEPTED: list[object] = [
    None,
    True,
    False,
    0,
    INT64_MIN,
    INT64_MAX,
    -0.0,
    1.5e308,
    "",
    "héllo 😀",
    [],
    {},
    {"op": "chat", "messages": [{"role": "user", "content": "hi"}], "options": {"seed": -1}},
    deep(MAX_DEPTH),
]


@pytest.mark.parametrize("value", ACCEPTED, ids=repr)
def test_json_values_pass_and_really_are_json(value: object) -> None:
    check_json(value, "v")
    assert json.loads(json.dumps(value, allow_nan=False)) == value


REFUSED: list[tuple[object, str]] = [
    (b"", "v: a bytes value is not JSON"),
    ({"image": b"\x89PNG"}, "bytes value"),
    ([[["ok", b"x"]]], "bytes value"),
    ({b"key": 1}, "map key of type bytes"),
    ({1: "x"}, "map key of type int"),
    (INT64_MAX + 1, "outside int64"),
    (INT64_MIN - 1, "outside int64"),
    ({"n": [2**64 - 1]}, "outside int64"),
    (math.nan, "not a finite number"),
    ([math.inf], "not a finite number"),
    ({"t": -math.inf}, "not a finite number"),
    ((1, 2), "a tuple value"),
    ({1, 2}, "a set value"),
    (deep(MAX_DEPTH + 1), "nested deeper than 64 levels"),
    (deep(MAX_DEPTH, [b""]), "nested deeper"),  # the depth is found before the bin inside it
]


@pytest.mark.parametrize(("value", "reason"), REFUSED, ids=repr)
def test_what_json_cannot_hold_is_refused_by_name(value: object, reason: str) -> None:
    with pytest.raises(RemoteProtocolError, match=reason):
        check_json(value, "v")


def test_the_error_names_what_was_checked() -> None:
    with pytest.raises(RemoteProtocolError, match=r"^OPEN request: a bytes value is not JSON$"):
        check_json({"x": b""}, "OPEN request")


def test_depth_is_counted_in_lists_and_maps_only() -> None:
    check_json(deep(3, "scalar leaves add no depth"), "v", max_depth=3)
    with pytest.raises(RemoteProtocolError, match="deeper than 3"):
        check_json(deep(4), "v", max_depth=3)
    check_json(deep(3, []), "v", max_depth=4)


def test_a_very_deep_value_is_refused_without_recursion() -> None:
    value = deep(200_000)
    started = time.perf_counter()
    with pytest.raises(RemoteProtocolError, match="nested deeper"):
        check_json(value, "v")
    assert time.perf_counter() - started < 1.0
