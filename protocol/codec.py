"""msgpack encoding of frames; every size is checked before allocating (PROTOCOL.md §2).

``decode`` (one frame) and ``decode_many`` (a message of frames back to back) raise only
``FrameTooLarge`` or ``RemoteProtocolError``: whatever msgpack or the frame constructors would
raise on hostile input is caught here and named.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any

import msgpack

from protocol.errors import FrameTooLarge, RemoteProtocolError
from protocol.frames import FRAME_CLASSES, Frame

DEFAULT_MAX_FRAME = 1024 * 1024
# What an agent accepts: OPEN carries whole requests, images included (PROTOCOL.md §4).
AGENT_MAX_RECEIVE_FRAME = 64 * 1024 * 1024

# Field names in wire order, per frame type, computed once: encode runs per token.
_FIELDS: dict[int, tuple[str, ...]] = {
    code: tuple(field.name for field in dataclasses.fields(cls))  # type: ignore[arg-type]
    for code, cls in FRAME_CLASSES.items()
}


def _values_getter(cls: type[Frame]) -> Callable[[Any], tuple[Any, ...]]:
    """How a frame of ``cls`` gives its wire values: its own ``wire_values`` where a field has a
    wire form of its own (OPEN's typed request), else its fields as they are."""
    custom: Callable[[Any], tuple[Any, ...]] | None = getattr(cls, "wire_values", None)
    if custom is not None:
        return custom
    names = _FIELDS[cls.TYPE]
    if len(names) == 1:
        (name,) = names
        return lambda frame: (getattr(frame, name),)
    return operator.attrgetter(*names)


_VALUES = {code: _values_getter(cls) for code, cls in FRAME_CLASSES.items()}


def encode(frame: Frame) -> bytes:
    """The wire bytes of ``frame``: ``[type, *fields]``."""
    data: bytes = msgpack.packb([int(frame.TYPE), *_VALUES[frame.TYPE](frame)], use_bin_type=True)
    return data


def decode(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> Frame:
    """Parse and validate a message of at most ``max_frame`` bytes that holds exactly one frame."""
    _check_size(data, max_frame)
    try:
        obj = msgpack.unpackb(data, **_bounds(len(data)))
    except msgpack.ExtraData:
        raise RemoteProtocolError(
            "a message with more than one frame where one is expected"
        ) from None
    except Exception as exc:  # msgpack raises a dozen types on garbage; all mean the same here
        raise _malformed(exc) from None
    return _frame_of(obj)


def decode_many(data: bytes, max_frame: int = DEFAULT_MAX_FRAME) -> list[Frame]:
    """Parse and validate every frame of a message of at most ``max_frame`` bytes, in order:
    once a session is open a message carries one or more frames back to back (§2)."""
    _check_size(data, max_frame)
    bounds = _bounds(len(data))
    try:
        # The common case, one frame, without the cost of an Unpacker.
        return [_frame_of(msgpack.unpackb(data, **bounds))]
    except msgpack.ExtraData as more:
        first, rest = more.unpacked, more.extra
    except RemoteProtocolError:
        raise
    except Exception as exc:
        raise _malformed(exc) from None
    frames = [_frame_of(first)]
    unpacker = msgpack.Unpacker(max_buffer_size=len(rest), **bounds)
    unpacker.feed(rest)
    try:
        objects = list(unpacker)
    except Exception as exc:
        raise _malformed(exc) from None
    if unpacker.tell() != len(rest):  # the iteration stops quietly at a frame cut short
        raise RemoteProtocolError("malformed frame: the message ends inside a frame")
    frames.extend(_frame_of(obj) for obj in objects)
    return frames


def _check_size(data: bytes, max_frame: int) -> None:
    if len(data) > max_frame:
        raise FrameTooLarge(f"frame of {len(data)} bytes exceeds limit {max_frame}")


def _bounds(size: int) -> dict[str, Any]:
    # No container or string can be longer than the message that carries it, so these bounds
    # stop a forged length prefix from allocating gigabytes from a few bytes.
    return {
        "raw": False,
        "strict_map_key": True,
        "max_str_len": size,
        "max_bin_len": size,
        "max_array_len": size,
        "max_map_len": size // 2,
        "max_ext_len": 0,
        "ext_hook": _refuse_extension,
    }


def _malformed(exc: Exception) -> RemoteProtocolError:
    return RemoteProtocolError(f"malformed frame: {type(exc).__name__}: {exc}")


def _frame_of(obj: Any) -> Frame:
    """The frame a decoded msgpack value stands for, checked field by field."""
    if not isinstance(obj, list) or not obj or type(obj[0]) is not int:
        raise RemoteProtocolError("a frame must be an array starting with its type code")
    cls = FRAME_CLASSES.get(obj[0])
    if cls is None:
        raise RemoteProtocolError(f"unknown frame type {obj[0]}")
    values = obj[1:]
    fewest = len(cls.SCHEMA) - cls.OPTIONAL_FIELDS  # trailing fields added later (§2)
    if not fewest <= len(values) <= len(cls.SCHEMA):
        allowed = f"{fewest} to " if fewest < len(cls.SCHEMA) else ""
        raise RemoteProtocolError(
            f"{cls.__name__} frame has {len(values)} fields, expected {allowed}{len(cls.SCHEMA)}"
        )
    for index, (value, expected) in enumerate(zip(values, cls.SCHEMA, strict=False)):
        if not _is_instance(value, expected):
            name = _FIELDS[cls.TYPE][index]
            raise RemoteProtocolError(
                f"{cls.__name__}.{name} has type {type(value).__name__}, expected {expected}"
            )
    build: Callable[[list[Any]], Frame] | None = getattr(cls, "from_wire_values", None)
    frame = build(values) if build is not None else cls(*values)
    frame.check()
    return frame


def _refuse_extension(code: int, data: bytes) -> object:
    # The protocol uses no msgpack extension types, not even empty ones, at any depth.
    raise ValueError(f"msgpack extension type {code} is not allowed")


def _is_instance(value: object, expected: type | tuple[type, ...]) -> bool:
    # bool is a subclass of int in Python but a distinct type on the wire: keep them apart.
    if isinstance(value, bool):
        return expected is bool or (isinstance(expected, tuple) and bool in expected)
    return isinstance(value, expected)
