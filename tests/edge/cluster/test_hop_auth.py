"""The node-to-node hop's signature: good for one body, one sender, one target, a short time,
and checked on the headers alone; junk headers are refused, never an exception."""

from __future__ import annotations

import pytest

from edge.cluster.hop_auth import (
    DIGEST,
    MAX_SKEW,
    NODE,
    NONCE,
    SIGNATURE,
    TARGET,
    TIME,
    HopRefused,
    SeenNonces,
    body_matches,
    check_headers,
    hop_key,
    sign,
)

KEY = hop_key(b"s" * 32)
NOW = 1_800_000_000.0
PATH = "/cluster/v1/streams"


def signed(body: bytes = b"body") -> dict[str, str]:
    return sign(KEY, PATH, "node-1", "node-2", body, NOW)


def test_signed_headers_check_out_and_name_the_sender_and_the_body() -> None:
    hop = check_headers(KEY, PATH, "node-2", signed(), NOW + MAX_SKEW)
    assert hop.node_id == "node-1"
    assert body_matches(hop, b"body")
    assert not body_matches(hop, b"bodY")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({NODE: "node-3"}, "bad signature"),  # another sender
        ({TARGET: "node-3"}, "not this one"),  # meant for another node: no replay there
        ({DIGEST: "0" * 64}, "bad signature"),  # another body
        ({TIME: str(int(NOW) - 1)}, "bad signature"),
        ({TIME: str(int(NOW + MAX_SKEW) + 1)}, "from this node's clock"),  # from the future
        ({TIME: "²"}, "malformed time"),  # str.isdigit() says yes, int() raises
        ({TIME: "1" * 40}, "malformed time"),
        ({TIME: ""}, "malformed time"),
        ({SIGNATURE: "é" * 64}, "malformed"),  # compare_digest raises on non-ASCII str
        ({SIGNATURE: "A" * 64}, "malformed"),
        ({SIGNATURE: ""}, "malformed"),
        ({NONCE: "x" * 32}, "malformed"),
        ({NODE: "nöde"}, "node headers"),
        ({NODE: "n" * 65}, "node headers"),
        ({NODE: "a\nb"}, "node headers"),  # would forge the signed message's fields
    ],
)
def test_anything_changed_or_junk_is_refused_with_a_reason(
    change: dict[str, str], why: str
) -> None:
    with pytest.raises(HopRefused, match=why):
        check_headers(KEY, PATH, "node-2", {**signed(), **change}, NOW)


def test_a_stale_hop_another_path_or_another_secret_is_refused() -> None:
    headers = signed()
    with pytest.raises(HopRefused, match="from this node's clock"):
        check_headers(KEY, PATH, "node-2", headers, NOW + MAX_SKEW + 1)
    with pytest.raises(HopRefused, match="bad signature"):
        check_headers(KEY, "/cluster/v1/other", "node-2", headers, NOW)
    with pytest.raises(HopRefused, match="bad signature"):
        check_headers(hop_key(b"t" * 32), PATH, "node-2", headers, NOW)
    with pytest.raises(HopRefused):
        check_headers(KEY, PATH, "node-2", {}, NOW)


def test_each_hop_has_its_own_nonce() -> None:
    assert signed()[NONCE] != signed()[NONCE]


def test_the_hop_key_is_not_the_server_secret() -> None:
    assert KEY != b"s" * 32 and len(KEY) == 32


def test_a_nonce_is_refused_again_while_its_hop_could_still_be_accepted() -> None:
    nonces = SeenNonces()
    assert nonces.add("a", NOW)
    assert not nonces.add("a", NOW + 2 * MAX_SKEW - 1)  # a replay at the window's far end
    assert nonces.add("a", NOW + 2 * MAX_SKEW)  # forgotten once no hop of its time is accepted


def test_the_nonce_set_is_bounded_and_frees_room_as_nonces_expire() -> None:
    nonces = SeenNonces(limit=2)
    assert nonces.add("a", NOW) and nonces.add("b", NOW + 1)
    assert nonces.full(NOW + 1)
    assert not nonces.full(NOW + 2 * MAX_SKEW)  # "a" expired
    assert nonces.add("c", NOW + 2 * MAX_SKEW)
