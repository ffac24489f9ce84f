"""The node-to-node hop's signature: good for one body, one node, a short time."""

from __future__ import annotations

from edge.cluster.hop import MAX_SKEW, fresh, hop_key, sign, verify

KEY = hop_key(b"s" * 32)
NOW = 1_800_000_000.0


def test_a_signed_hop_verifies_and_anything_changed_does_not() -> None:
    headers = sign(KEY, "node-1", b"body", NOW)
    assert verify(KEY, headers, b"body", NOW)
    assert verify(KEY, headers, b"body", NOW + MAX_SKEW)
    assert not verify(KEY, headers, b"bodY", NOW)  # another body
    assert not verify(KEY, {**headers, "x-llmtunnel-node": "node-2"}, b"body", NOW)
    assert not verify(KEY, headers, b"body", NOW + MAX_SKEW + 1)  # too old: replay refused
    assert not verify(hop_key(b"t" * 32), headers, b"body", NOW)  # another cluster's secret
    assert not verify(KEY, {}, b"body", NOW)


def test_the_hop_key_is_not_the_server_secret() -> None:
    assert KEY != b"s" * 32 and len(KEY) == 32


def test_a_hop_without_fresh_signed_headers_is_refused_before_its_body_is_read() -> None:
    headers = sign(KEY, "node-1", b"body", NOW)
    assert fresh(headers, NOW)
    assert not fresh({**headers, "x-llmtunnel-time": "soon"}, NOW)
    assert not fresh({k: v for k, v in headers.items() if k != "x-llmtunnel-signature"}, NOW)
    assert not fresh(headers, NOW - MAX_SKEW - 1)  # from the future, past the skew
