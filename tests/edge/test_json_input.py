from __future__ import annotations

import json

import pytest

from edge.json_input import INT64_MAX, INT64_MIN, JsonInputError, loads


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        ('{"a": NaN}', "a"),
        ('{"a": [1, Infinity]}', "a.1"),
        ('{"a": {"b": -Infinity}}', "a.b"),
        ('{"x": 1, "n": 9223372036854775808}', "n"),
        ('{"n": [-9223372036854775809]}', "n.0"),
        ('{"f": 1e400}', "f"),
        ('{"m": [{"content": "ok"}, {"content": "bad \\udc00"}]}', "m.1.content"),
        ('{"k\\ud800": 1}', None),  # a key: the object holding it is the top level
    ],
)
def test_values_no_other_layer_can_carry_are_refused_with_their_place(
    raw: str, param: str | None
) -> None:
    with pytest.raises(JsonInputError) as refused:
        loads(raw)
    assert refused.value.param == param


def test_what_every_layer_can_carry_is_accepted() -> None:
    raw = json.dumps({"min": INT64_MIN, "max": INT64_MAX, "f": 1.5e308, "pair": "😀"})
    assert loads(raw) == {"min": INT64_MIN, "max": INT64_MAX, "f": 1.5e308, "pair": "😀"}
    assert loads('{"s": "\\ud83d\\ude00"}') == {"s": "😀"}  # an escaped pair is one character
    assert loads('{"s": "\\\\ud800"}') == {"s": "\\ud800"}  # an escaped backslash, not an escape


def test_a_body_of_too_many_values_is_refused() -> None:
    many = json.dumps([[0] for _ in range(60_000)])  # 120,001 values, well past 128 KiB
    with pytest.raises(JsonInputError, match="more than 100,000 values"):
        loads(many)
    assert len(loads(many, max_values=200_000)) == 60_000
    assert loads(json.dumps(["x" * 10_000_000])) == ["x" * 10_000_000]  # large but few


def test_malformed_and_too_deep_json_is_refused() -> None:
    for raw in ("{", "[" * 100_000, b"\xff"):
        with pytest.raises(JsonInputError):
            loads(raw)
