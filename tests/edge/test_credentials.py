from __future__ import annotations

import stat
from pathlib import Path

from edge import credentials


def test_pairing_codes_are_readable_and_normalize() -> None:
    code = credentials.new_pairing_code()
    assert len(code) == 19
    assert code.count("-") == 3
    assert credentials.normalize_pairing_code(code.lower().replace("-", " ")) == code.replace(
        "-", ""
    )


def test_keys_are_random_and_hashed_with_the_server_secret() -> None:
    key = credentials.new_api_key()
    assert key.startswith("sk-lt-")
    assert len(key) > 30
    assert key != credentials.new_api_key()
    one = credentials.KeyHasher(b"a" * 32)
    other = credentials.KeyHasher(b"b" * 32)
    assert one.digest(key) != other.digest(key)
    assert one.matches(key, one.digest(key))
    assert not one.matches(key + "x", one.digest(key))


def test_server_secret_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "server.secret"
    first = credentials.load_or_create_server_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert credentials.load_or_create_server_secret(path) == first
    assert len(first) == 32
