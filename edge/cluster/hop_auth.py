"""The node-to-node hop's signature (``edge.cluster.hop``): checked on the headers alone, so that
nobody without the cluster's secret makes a node read a request body.

The hop endpoint is on the public listener. A signed hop carries, in headers, the sending node,
the node it is meant for, the time, a random nonce and the SHA-256 of its body; the signature
(HMAC-SHA256 under a key derived from the server secret every node shares) covers the method and
path and all of these. The receiving node checks the headers first (well formed, meant for it,
within ``MAX_SKEW``, signed, nonce not seen), and only then reads the body, at most its own
bound, and checks it against the signed digest. So a captured hop can be replayed neither to
another node (the target is signed) nor to the same one (its nonce is remembered for as long as
its time is acceptable).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from protocol.frames import MAX_NODE_ID

MAX_SKEW = 30.0  # seconds a signed hop is good for (nodes keep NTP time)
METHOD = "POST"

NODE = "x-llmtunnel-node"
TARGET = "x-llmtunnel-target"
TIME = "x-llmtunnel-time"
NONCE = "x-llmtunnel-nonce"
DIGEST = "x-llmtunnel-body-sha256"
SIGNATURE = "x-llmtunnel-signature"

_MAX_TIME_DIGITS = 12  # Unix seconds for the next 30,000 years; longer is junk
_HEX = frozenset("0123456789abcdef")


class HopRefused(Exception):
    """Not a hop this node accepts; the message says why (for this node's log only: the
    sender gets one 403 whatever the reason)."""


def hop_key(server_secret: bytes) -> bytes:
    """The hop's HMAC key: derived, so that the server secret itself signs nothing else."""
    return hmac.new(server_secret, b"llmtunnel node-to-node hop v2", hashlib.sha256).digest()


def sign(
    key: bytes, path: str, node_id: str, target: str, body: bytes, now: float
) -> dict[str, str]:
    """The headers of a hop from ``node_id`` to ``target`` carrying ``body``."""
    fields = {
        NODE: node_id,
        TARGET: target,
        TIME: str(int(now)),
        NONCE: secrets.token_hex(16),
        DIGEST: hashlib.sha256(body).hexdigest(),
    }
    return {**fields, SIGNATURE: _mac(key, path, fields)}


@dataclass(frozen=True, slots=True)
class SignedHop:
    """A hop's headers, checked: what the body must hash to, and who sent it."""

    node_id: str
    nonce: str
    digest: str


def check_headers(
    key: bytes, path: str, node_id: str, headers: Mapping[str, str], now: float
) -> SignedHop:
    """The hop's signed headers if they are well formed, meant for ``node_id``, recent and
    signed with ``key``; ``HopRefused`` otherwise. Reads no body."""
    fields = {name: headers.get(name, "") for name in (NODE, TARGET, TIME, NONCE, DIGEST)}
    signature = headers.get(SIGNATURE, "")
    # Every value ASCII before anything is compared or converted: int() takes "²" and other
    # Unicode digits that str.isdigit() admits, and compare_digest raises on non-ASCII str.
    if not all(_is_node_id(fields[name]) for name in (NODE, TARGET)):
        raise HopRefused("missing or malformed node headers")
    stamp = fields[TIME]
    if not (0 < len(stamp) <= _MAX_TIME_DIGITS and stamp.isascii() and stamp.isdigit()):
        raise HopRefused("missing or malformed time")
    if not (_is_hex(fields[NONCE], 32) and _is_hex(fields[DIGEST], 64) and _is_hex(signature, 64)):
        raise HopRefused("missing or malformed nonce, digest or signature")
    if fields[TARGET] != node_id:
        raise HopRefused(f"meant for node {fields[TARGET]!r}, not this one")
    if abs(now - int(stamp)) > MAX_SKEW:
        raise HopRefused(f"signed at {stamp}, more than {MAX_SKEW:g} s from this node's clock")
    if not hmac.compare_digest(signature.encode("ascii"), _mac(key, path, fields).encode("ascii")):
        raise HopRefused("bad signature")
    return SignedHop(fields[NODE], fields[NONCE], fields[DIGEST])


def body_matches(hop: SignedHop, body: bytes) -> bool:
    return hmac.compare_digest(hashlib.sha256(body).hexdigest(), hop.digest)


def _mac(key: bytes, path: str, fields: Mapping[str, str]) -> str:
    # Newline-separated: no field may hold one (node ids are printable, the rest hex or digits).
    parts = (METHOD, path, *(fields[name] for name in (NODE, TARGET, TIME, NONCE, DIGEST)))
    return hmac.new(key, "\n".join(parts).encode("ascii"), hashlib.sha256).hexdigest()


def _is_node_id(value: str) -> bool:
    return 0 < len(value) <= MAX_NODE_ID and value.isascii() and value.isprintable()


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and set(value) <= _HEX


@dataclass(slots=True)
class SeenNonces:
    """The nonces of the hops this node accepted while their time is still acceptable.

    A hop is accepted up to ``MAX_SKEW`` from its time either way, so a nonce kept for twice
    that from when it arrived outlives every replay of it. Only hops whose signature verified
    are remembered, so outsiders cannot fill the set; ``limit`` bounds it anyway (a few MB):
    past it new hops are refused (503) rather than letting a replay through, which would take
    more than ``limit`` forwarded requests per minute to this one node. In memory and per node:
    a restarted node forgets, which a replay within the minute after a restart could use; the
    signature still binds it to this node, the same body and the same API key's request.
    """

    limit: int = 200_000
    _until: dict[str, float] = field(default_factory=dict)  # nonce → forget after (in order)

    def add(self, nonce: str, now: float) -> bool:
        """Remember ``nonce``; ``False`` if it was seen already (a replay)."""
        self._forget(now)
        if nonce in self._until:
            return False
        self._until[nonce] = now + 2 * MAX_SKEW
        return True

    def full(self, now: float) -> bool:
        self._forget(now)
        return len(self._until) >= self.limit

    def _forget(self, now: float) -> None:
        while self._until:  # insertion order is expiry order: stop at the first one kept
            oldest = next(iter(self._until))
            if self._until[oldest] > now:
                return
            del self._until[oldest]
