"""Secrets the edge hands out and how it stores them (README "Security").

API keys and pairing codes are random, shown once, and kept only as HMAC-SHA256 under a server
secret that lives in a 0600 file beside (not inside) the database: a copied database alone is
useless. HMAC is fast on purpose: keys carry 192 bits of randomness, so no slow hash is needed on
the request path.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

API_KEY_PREFIX = "sk-lt-"
ADMIN_KEY_PREFIX = "sk-lt-admin-"
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"  # no 0/O, 1/I/L, U: easy to read aloud
PAIRING_CODE_LENGTH = 16  # 16 symbols of 30 = 78 bits


class KeyHasher:
    """Keyed hashing of secrets. Equal inputs give equal digests, so lookups are by digest."""

    def __init__(self, server_secret: bytes) -> None:
        if len(server_secret) < 32:
            raise ValueError("server secret must be at least 32 bytes")
        self._secret = server_secret

    def digest(self, token: str) -> str:
        return hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()

    def matches(self, token: str, digest: str) -> bool:
        return hmac.compare_digest(self.digest(token), digest)


def load_or_create_server_secret(path: Path) -> bytes:
    """The server secret from ``path``, created with 0600 permissions on first use."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    secret = secrets.token_bytes(32)
    write_private_file(path, secret.hex() + "\n")
    return secret


def write_private_file(path: Path, text: str) -> None:
    """Write ``text`` atomically to a file that is 0600 from the moment it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def new_api_key(prefix: str = API_KEY_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(24)


def visible_prefix(key: str) -> str:
    """The part of a key shown in listings: enough to tell keys apart, useless to an attacker."""
    return key[: len(API_KEY_PREFIX) + 6]


def new_pairing_code() -> str:
    symbols = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(PAIRING_CODE_LENGTH))
    return "-".join(symbols[i : i + 4] for i in range(0, PAIRING_CODE_LENGTH, 4))


def normalize_pairing_code(code: str) -> str:
    """Codes are typed by people: ignore case, spaces and dashes."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def new_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(8)}"
