"""The codec: golden bytes both ways, and every malformed input named, never allocated."""

from __future__ import annotations

import time

import pytest

from protocol import (
    Cancel,
    Delta,
    Error,
    FrameTooLarge,
    GoAway,
    Ping,
    RemoteProtocolError,
    Window,
    decode,
    encode,
)
from protocol.frames import Frame

# Derived by hand from the msgpack spec: fixarray header, positive fixint type code, then fields.
GOLDEN: list[tuple[Frame, str]] = [
    (Ping(5), "92 0c 05"),
    (Window(1, 65536), "93 0b 01 ce 00 01 00 00"),  # uint32 0xce for 65536
    (Cancel(3, "gone"), "93 0a 03 a4 67 6f 6e 65"),  # fixstr a4 "gone"
    (Delta(1, "hi", "", []), "95 07 01 a2 68 69 a0 90"),  # empty fixstr a0, empty fixarray 90
    (Error(0, "x", "y", False), "95 09 00 a1 78 a1 79 c2"),  # false is c2
    (GoAway("bye"), "92 0e a3 62 79 65"),
]


@pytest.mark.parametrize(("frame", "wire"), GOLDEN)
def test_golden_bytes_both_ways(frame: Frame, wire: str) -> None:
    data = bytes.fromhex(wire)
    assert encode(frame) == data
    assert decode(data) == frame


@pytest.mark.parametrize(("frame", "wire"), GOLDEN)
def test_every_truncation_of_a_golden_frame_is_rejected(frame: Frame, wire: str) -> None:
    data = bytes.fromhex(wire)
    for cut in range(len(data)):
        with pytest.raises(RemoteProtocolError):
            decode(data[:cut])


def test_oversized_frame_names_both_sizes() -> None:
    data = encode(Delta(1, "x" * 2000, "", []))
    with pytest.raises(FrameTooLarge, match=rf"frame of {len(data)} bytes exceeds limit 1024"):
        decode(data, max_frame=1024)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ("05", "array"),  # not an array
        ("90", "array"),  # empty array
        ("92 a1 78 05", "type code"),  # type is not an int
        ("92 63 05", "unknown frame type 99"),
        ("93 0c 05 06", "fields"),  # PING with two fields
        ("92 0c c3", "Ping.payload has type bool"),  # bool where int expected
        ("95 09 00 a1 78 a1 79 01", "Error.retryable has type int"),  # int where bool expected
        ("92 0c 05 05", "malformed"),  # trailing data
        ("c1", "malformed"),  # never-used msgpack byte
        ("92 0c d4 01 02", "malformed"),  # ext types are refused
        ("92 0c a3 ff fe fd", "malformed"),  # invalid UTF-8 in a str
        ("92 0b 81 90 01", "malformed"),  # map with an array key
    ],
)
def test_malformed_frames_are_rejected_with_a_reason(wire: str, message: str) -> None:
    with pytest.raises(RemoteProtocolError, match=message):
        decode(bytes.fromhex(wire))


@pytest.mark.parametrize(
    "prefix",
    ["dd ff ff ff ff", "df ff ff ff ff", "db ff ff ff ff", "c6 ff ff ff ff", "dc ff ff"],
)
def test_forged_length_prefixes_are_refused_without_allocating(prefix: str) -> None:
    started = time.perf_counter()
    with pytest.raises(RemoteProtocolError):
        decode(bytes.fromhex(prefix) + b"\x00" * 16)
    assert time.perf_counter() - started < 0.5


def test_deep_nesting_is_refused() -> None:
    depth = 100_000
    data = b"\x92\x06\x01" + b"\x91" * depth + b"\x00"
    with pytest.raises(RemoteProtocolError):
        decode(data, max_frame=len(data))
