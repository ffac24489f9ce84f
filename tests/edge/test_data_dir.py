from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.data_dir import create_private_file, secure_data_dir
from edge.tls import ensure_self_signed


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_everything_too_open_is_tightened_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, umask_022: None
) -> None:
    data = tmp_path / "edge"
    bundle = ensure_self_signed(data / "tls", "example.test")
    files = {
        data / "edge.db": 0o644,
        data / "edge.db-wal": 0o664,
        data / "server.secret": 0o640,
        data / "admin.key": 0o604,
        bundle.key: 0o644,
        data / "tls" / "ca-key.pem": 0o755,
        bundle.cert: 0o666,  # a certificate is public, but no one else may write it
        bundle.ca_cert: 0o644,
    }
    for path, permissions in files.items():
        path.touch()
        path.chmod(permissions)
    data.chmod(0o755)
    (data / "tls").chmod(0o750)
    caplog.set_level(logging.WARNING, logger="edge.data_dir")

    secure_data_dir(data)

    assert mode(data) == mode(data / "tls") == 0o700
    for path in (data / "edge.db", data / "edge.db-wal", data / "server.secret", bundle.key):
        assert mode(path) == 0o600, path
    assert mode(data / "admin.key") == 0o600 and mode(data / "tls" / "ca-key.pem") == 0o700 & 0o600
    assert mode(bundle.cert) == mode(bundle.ca_cert) == 0o644
    warned = caplog.text
    for path in [data, data / "tls", *(p for p in files if p != bundle.ca_cert)]:
        assert f"{path} had mode" in warned, path
    assert f"{bundle.ca_cert} had mode" not in warned  # 0644 is fine for a certificate

    caplog.clear()
    secure_data_dir(data)  # the next start finds nothing to say
    assert caplog.text == ""


def test_a_private_key_named_like_a_certificate_is_still_private(tmp_path: Path) -> None:
    combined = tmp_path / "combined.pem"
    bundle = ensure_self_signed(tmp_path / "tls", "example.test")
    combined.write_bytes(bundle.cert.read_bytes() + bundle.key.read_bytes())
    combined.chmod(0o644)
    secure_data_dir(tmp_path)
    assert mode(combined) == 0o600


def test_a_new_data_dir_and_database_file_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o277)  # even one that takes the owner's own write bit
    try:
        secure_data_dir(tmp_path / "a" / "edge")
        create_private_file(tmp_path / "a" / "edge" / "edge.db")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a" / "edge") == 0o700
    assert mode(tmp_path / "a" / "edge" / "edge.db") == 0o600


def test_symlinks_are_left_alone(tmp_path: Path) -> None:
    elsewhere = tmp_path / "shared.txt"
    elsewhere.write_text("not ours")
    elsewhere.chmod(0o644)
    (tmp_path / "edge").mkdir(mode=0o700)
    (tmp_path / "edge" / "link").symlink_to(elsewhere)
    secure_data_dir(tmp_path / "edge")
    assert mode(elsewhere) == 0o644
