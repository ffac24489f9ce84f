"""The embedded store: one SQLite file (WAL) and one connection, used from the event loop.

Queries are short and indexed, so they run on the loop: a lookup costs microseconds, less than
a thread hop. Behind ``edge.store.Store`` like any other implementation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from edge.store.sqlite.content import SqliteAliases, SqliteResponses
from edge.store.sqlite.db import Clock, Db
from edge.store.sqlite.identity import SqliteMachines, SqliteTenants
from edge.store.sqlite.keys import SqliteAdminKeys, SqliteKeys
from edge.store.sqlite.sessions import SqliteSessions
from edge.store.sqlite.usage import SqliteUsage


class SqliteStore:
    """All persistent state in one file. One instance per edge process."""

    def __init__(self, path: Path | str, clock: Clock = time.time) -> None:
        self._db = Db(path, clock)
        self.tenants = SqliteTenants(self._db)
        self.machines = SqliteMachines(self._db)
        self.keys = SqliteKeys(self._db)
        self.admin_keys = SqliteAdminKeys(self._db)
        self.usage = SqliteUsage(self._db)
        self.aliases = SqliteAliases(self._db)
        self.responses = SqliteResponses(self._db)
        self.sessions = SqliteSessions(self._db)

    @property
    def schema_version(self) -> int:
        return self._db.schema_version

    async def close(self) -> None:
        self._db.conn.close()


if TYPE_CHECKING:  # SqliteStore implements the interface: mypy checks it here
    from edge.store.interface import Store

    def _conforms(store: SqliteStore) -> Store:
        return store
