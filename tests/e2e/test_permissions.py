"""The edge's data directory as a started edge leaves it, under a permissive umask: private."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.stack import running_stack

pytestmark = pytest.mark.e2e

PRIVATE = ("edge.db", "edge.db-wal", "edge.db-shm", "server.secret", "admin.key")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default, which makes new files 0644
    try:
        yield
    finally:
        os.umask(old)


async def test_a_new_edge_makes_its_directory_0700_and_every_file_0600(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.tenant("acme")  # something written, so the WAL files exist
        data = stack.edge.context.config.data_dir
        assert mode(data) == 0o700
        for name in PRIVATE:
            assert mode(data / name) == 0o600, name


async def test_an_existing_directory_too_open_is_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "edge"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    sqlite3.connect(data / "edge.db").close()  # as an older edge (or a cp) left it
    (data / "edge.db").chmod(0o644)
    caplog.set_level(logging.WARNING, logger="edge")
    async with running_stack(tmp_path) as stack:
        await stack.tenant("acme")
        assert mode(data) == 0o700
        for name in PRIVATE:
            assert mode(data / name) == 0o600, name
    assert f"{data} had mode 0755" in caplog.text
    assert f"{data / 'edge.db'} had mode 0644" in caplog.text
