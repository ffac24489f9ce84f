"""The edge's data directory is private: the directory 0700, everything in it 0600, whatever the
umask; public certificates alone may be 0644.

It holds the database (API key digests, audit), the server secret that keys those digests, the
operator key and the self-signed CA's private key. ``secure_data_dir`` runs at every start: it
creates the directory if needed and tightens anything too open, naming each file it changed in a
warning (a copy restored with ``cp``, an old install, a hand-made directory).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
PUBLIC_CERTIFICATE = 0o644
_CERTIFICATE_SUFFIXES = (".pem", ".crt", ".cer")


def secure_data_dir(path: Path) -> None:
    """Create ``path`` (0700) if missing, then tighten it and everything under it."""
    try:
        path.mkdir(parents=True, mode=PRIVATE_DIR)
        os.chmod(path, PRIVATE_DIR)  # exactly: the umask may have taken the owner's bits too
    except FileExistsError:
        _tighten(path, PRIVATE_DIR)
    for root, dirs, files in os.walk(path):  # does not follow symlinks into other directories
        for name in dirs:
            directory = Path(root, name)
            if not directory.is_symlink():
                _tighten(directory, PRIVATE_DIR)
        for name in files:
            file = Path(root, name)
            if file.is_symlink():
                continue  # chmod would change its target, which may be anything anywhere
            _tighten(file, PUBLIC_CERTIFICATE if _is_public_certificate(file) else PRIVATE_FILE)


def create_private_file(path: Path) -> None:
    """Make sure ``path`` exists with mode 0600 before anything else opens it (SQLite creates a
    database, and later its -wal and -shm files, with the mode of the umask; it gives the latter
    the database file's mode, so a 0600 database keeps them 0600 too)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        return  # secure_data_dir() has seen to its mode
    try:
        os.fchmod(fd, PRIVATE_FILE)  # the umask may have taken the owner's bits too
    finally:
        os.close(fd)


def _is_public_certificate(path: Path) -> bool:
    if path.suffix not in _CERTIFICATE_SUFFIXES:
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(256 * 1024)
    except OSError:
        return False
    return b"-----BEGIN CERTIFICATE-----" in head and b"PRIVATE KEY" not in head


def _tighten(path: Path, allowed: int) -> None:
    try:
        mode = stat.S_IMODE(path.lstat().st_mode)
    except FileNotFoundError:
        return  # e.g. a -wal file SQLite removed meanwhile
    if not mode & ~allowed:
        return
    try:
        os.chmod(path, mode & allowed)
    except OSError as exc:
        log.warning(
            "%s has mode %04o, more open than %04o, and cannot be changed: %s",
            path,
            mode,
            allowed,
            exc,
        )
        return
    log.warning(
        "%s had mode %04o, more open than %04o: changed to %04o",
        path,
        mode,
        allowed,
        mode & allowed,
    )
