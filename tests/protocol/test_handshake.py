"""The login handshake's pure parts: version choice and the exact bytes an agent signs (§3)."""

from __future__ import annotations

import pytest

from protocol import (
    SUPPORTED_VERSIONS,
    Challenge,
    ErrorCode,
    RemoteProtocolError,
    auth_message,
    choose_version,
)
from protocol.handshake import NONCE_SIZE


def test_version_two_is_what_this_build_speaks() -> None:
    assert SUPPORTED_VERSIONS == (2,)


def test_the_nonce_size_fits_challenge() -> None:
    assert NONCE_SIZE == 32  # "32 random bytes" (PROTOCOL.md §3)
    Challenge(b"\x00" * NONCE_SIZE, "edge.test", list(SUPPORTED_VERSIONS)).check()


@pytest.mark.parametrize("offered", [[2], [1, 2, 3], [3, 2], [2, 2], (2,)])
def test_choose_version_picks_the_common_one(offered: list[int]) -> None:
    assert choose_version(offered) == 2


def test_choose_version_accepts_any_iterable() -> None:
    assert choose_version(v for v in [5, 2]) == 2


@pytest.mark.parametrize("offered", [[], [1], [0, 1, 3], [-1]])  # [1]: an edge of version 1
def test_no_common_version_is_unsupported_version(offered: list[int]) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        choose_version(offered)
    assert caught.value.code is ErrorCode.UNSUPPORTED_VERSION
    assert f"edge offers {sorted(offered)}" in str(caught.value)
    assert "agent speaks [2]" in str(caught.value)


def test_the_error_code_does_not_leak_into_the_class() -> None:
    with pytest.raises(RemoteProtocolError):
        choose_version([9])
    assert RemoteProtocolError.code is ErrorCode.PROTOCOL_ERROR
    assert RemoteProtocolError("x").code is ErrorCode.PROTOCOL_ERROR


def test_auth_message_golden_bytes() -> None:
    # "llmtunnel-auth\0" ‖ nonce ‖ u16be(len(host)) ‖ host (lowercase) ‖ u16be(version), by hand.
    expected = bytes.fromhex(
        "6c 6c 6d 74 75 6e 6e 65 6c 2d 61 75 74 68 00"  # llmtunnel-auth\0
        + " 11" * 32  # the nonce
        + " 00 0c"  # 12 bytes of host
        + " 65 64 67 65 2e 65 78 61 6d 70 6c 65"  # edge.example
        + " 00 01"  # version 1
    )
    assert auth_message(b"\x11" * 32, "Edge.Example", 1) == expected


def test_auth_message_binds_every_input() -> None:
    base = auth_message(b"\x11" * 32, "edge.example", 1)
    assert auth_message(b"\x11" * 32, "EDGE.example", 1) == base  # the host is case-insensitive
    assert auth_message(b"\x12" * 32, "edge.example", 1) != base
    assert auth_message(b"\x11" * 32, "other.example", 1) != base
    assert auth_message(b"\x11" * 32, "edge.example", 2) != base
    # The length prefix keeps nonce/host boundaries unambiguous.
    assert auth_message(b"\x11" * 31, "\x11edge.example", 1) != base


def test_auth_message_counts_the_host_in_utf8_bytes() -> None:
    message = auth_message(b"", "bücher.example", 258)
    host = "bücher.example".encode()
    assert message == b"llmtunnel-auth\x00" + len(host).to_bytes(2, "big") + host + b"\x01\x02"
