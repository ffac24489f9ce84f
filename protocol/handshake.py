"""The login handshake's pure parts: version choice and the bytes an agent signs (PROTOCOL.md §3).

Signing and verifying stay with the callers (they own the keys); this module only fixes *what* is
signed, so that both sides build exactly the same message.
"""

from __future__ import annotations

from collections.abc import Iterable

from protocol.errors import ErrorCode, RemoteProtocolError

SUPPORTED_VERSIONS: tuple[int, ...] = (2,)
NONCE_SIZE = 32
_CONTEXT = b"llmtunnel-auth\x00"


def choose_version(offered: Iterable[int]) -> int:
    """The newest version both sides speak; ``RemoteProtocolError`` when there is none."""
    offered = list(offered)
    common = set(offered) & set(SUPPORTED_VERSIONS)
    if not common:
        raise RemoteProtocolError(
            f"no common protocol version: edge offers {sorted(offered)}, "
            f"agent speaks {list(SUPPORTED_VERSIONS)}",
            code=ErrorCode.UNSUPPORTED_VERSION,
        )
    return max(common)


def auth_message(nonce: bytes, edge_host: str, version: int) -> bytes:
    """What the agent's Ed25519 key signs: a fixed context, the nonce, the edge host, the version.

    Binding the edge host stops a signature made for one edge from being replayed to another;
    the fresh nonce stops replay to the same edge.
    """
    host = edge_host.lower().encode()
    parts = (_CONTEXT, nonce, len(host).to_bytes(2, "big"), host, version.to_bytes(2, "big"))
    return b"".join(parts)
