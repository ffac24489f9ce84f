"""JSON-compatible values inside frames (PROTOCOL.md §2).

OPEN's request, the models of HELLO/MODELS and tool calls end up as JSON: the agent hands the
request to Ollama, the edge renders models and calls to API clients. msgpack can carry more than
JSON (``bin`` values and keys, integers up to 2**64-1, NaN), so the frame checks call
``check_json`` to refuse, at the frame boundary, whatever could not become JSON later.
"""

from __future__ import annotations

import math

from protocol.errors import RemoteProtocolError

MAX_DEPTH = 64  # the request's own map is depth 1; real requests nest a handful of levels
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def check_json(value: object, what: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise ``RemoteProtocolError`` naming ``what`` unless ``value`` is JSON-compatible: str,
    int within int64, finite float, bool, None, and lists and str-keyed maps of those, at most
    ``max_depth`` lists and maps deep (``value`` itself is the first). Iterative, so a deep
    value cannot exhaust the Python stack."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if item is None or isinstance(item, (str, bool)):
            continue
        if isinstance(item, int):
            if not INT64_MIN <= item <= INT64_MAX:
                raise RemoteProtocolError(f"{what}: integer {item} is outside int64")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise RemoteProtocolError(f"{what}: {item} is not a finite number")
        elif isinstance(item, (list, dict)):
            if depth > max_depth:
                raise RemoteProtocolError(f"{what}: nested deeper than {max_depth} levels")
            if isinstance(item, dict):
                for key in item:
                    if not isinstance(key, str):
                        raise RemoteProtocolError(f"{what}: a map key of type {type(key).__name__}")
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)
        else:  # bytes (msgpack bin), or anything else a caller put there
            raise RemoteProtocolError(f"{what}: a {type(item).__name__} value is not JSON")
