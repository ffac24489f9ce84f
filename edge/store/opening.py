"""Which store the edge opens (docs/ARCHITECTURE.md "State"): SQLite in the data directory unless
a PostgreSQL URL is given."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

from edge.data_dir import create_private_file
from edge.store.interface import Clock, Store
from edge.store.records import OpenFailed
from edge.store.sqlite import SqliteStore
from edge.store.urls import redacted

SQLITE_FILE = "edge.db"
POSTGRES_SCHEMES = ("postgresql", "postgres")


async def open_store(database: str | None, data_dir: Path, clock: Clock = time.time) -> Store:
    """``database`` None: SQLite at ``DATA_DIR/edge.db`` (one node: the default and the demo),
    created private (0600). A ``postgresql://…`` URL: PostgreSQL, which several nodes may share.
    ``OpenFailed`` (one line, no password) for a database that cannot be opened or a URL of
    another kind."""
    if database is None:
        path = data_dir / SQLITE_FILE
        create_private_file(path)
        return SqliteStore(path, clock)
    if urlsplit(database).scheme not in POSTGRES_SCHEMES:
        raise OpenFailed(
            f"unsupported database URL {redacted(database)}: give a postgresql:// URL, or none"
            f" for SQLite in the data directory"
        )
    from edge.store.postgres import PostgresStore  # asyncpg is imported only when used

    return await PostgresStore.open(database, clock)
