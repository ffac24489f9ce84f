"""JSON from clients, parsed strictly: what is accepted here can always be stored, encoded into a
tunnel frame and written back out as JSON.

Python's ``json`` module accepts three things no other layer can carry: ``NaN``/``Infinity``
(not JSON at all, and a duration of ``Infinity`` never ends), integers of any size (msgpack and
SQLite stop at 64 bits), and lone UTF-16 surrogates from ``\\ud800`` escapes (no UTF-8 encoder
takes them). Refusing them once, at parse time, keeps every handler behind from meeting them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# A surrogate can only come from a \\uD800-\\uDFFF escape: raw UTF-8 cannot encode one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class JsonInputError(ValueError):
    """The text is not JSON this edge accepts; ``param`` names where, when known."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _refuse_constant(name: str) -> Any:
    raise JsonInputError(f"{name} is not a JSON number; send a finite number")


def _bounded_int(text: str) -> int:
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise JsonInputError(f"integer {text[:40]} is out of range (at most 64 bits)")
    return value


# The work a request makes (validation, the neutral request, token estimates, the tunnel frame)
# grows with the number of JSON values more than with bytes: 16 MB of one string is cheap, 16 MB
# of tiny objects is not. Bounding the count bounds that work for every body (README "Limits").
MAX_VALUES = 100_000
# Below this size a body cannot hold enough values to matter: counting is skipped.
COUNT_FROM_BYTES = 128 * 1024


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as infinity
        raise JsonInputError(f"{text[:40]} is out of range for a number")
    return value


def loads(raw: bytes | str, max_values: int = MAX_VALUES) -> Any:
    """Parse ``raw`` strictly; ``JsonInputError`` says what is wrong and, if it can, where."""
    try:
        value = json.loads(
            raw,
            parse_constant=_refuse_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except JsonInputError as exc:
        exc.param = _where_unrepresentable(raw)
        raise
    except RecursionError:
        raise JsonInputError("the JSON nests too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonInputError(f"not valid JSON: {exc}") from None
    data = raw.encode() if isinstance(raw, str) else raw
    if len(data) > COUNT_FROM_BYTES and _more_values_than(value, max_values):
        raise JsonInputError(
            f"the JSON holds more than {max_values:,} values (objects, arrays, strings, "
            "numbers); send fewer, larger ones"
        )
    if _SURROGATE_ESCAPE.search(data):
        where = _lone_surrogate(value)
        if where is not None:
            raise JsonInputError(
                "a string holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff), "
                "which is not text",
                param=where or None,
            )
    return value


def _where_unrepresentable(raw: bytes | str) -> str | None:
    """The path of the first number the strict parse refused, found by parsing leniently (only
    after a refusal, so the cost falls on the bad request alone)."""
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    for path, item in _walk(value):
        if isinstance(item, int) and not isinstance(item, bool):
            if not INT64_MIN <= item <= INT64_MAX:
                return path or None
        elif isinstance(item, float) and not math.isfinite(item):
            return path or None
    return None


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every value in ``value`` with its dotted path, in document order."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        yield path, item
        if isinstance(item, dict):
            children = [(f"{path}.{k}" if path else str(k), v) for k, v in item.items()]
            stack.extend(reversed(children))
        elif isinstance(item, list):
            children = [(f"{path}.{i}" if path else str(i), v) for i, v in enumerate(item)]
            stack.extend(reversed(children))


def _lone_surrogate(value: Any) -> str | None:
    """The path (``messages.0.content``) of the first string, or key, that cannot be UTF-8
    encoded."""
    for path, item in _walk(value):
        texts = [item] if isinstance(item, str) else list(item) if isinstance(item, dict) else []
        for text in texts:
            try:
                text.encode()
            except UnicodeEncodeError:
                return path
    return None


def _more_values_than(value: Any, limit: int) -> bool:
    """Whether ``value`` holds more than ``limit`` values; stops counting at the limit, so the
    check itself costs at most ``limit`` steps."""
    pending: list[Any] = [value]
    seen = 0
    while pending:
        item = pending.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(item, dict):
            pending.extend(item.values())
            seen += len(item)  # the keys
        elif isinstance(item, list):
            pending.extend(item)
    return False
