"""The store on PostgreSQL, for several edge nodes on one database: asyncpg and a connection
pool, its own numbered migrations (``migrations.py``) run once under an advisory lock however
many nodes start together. Behind ``edge.store.Store`` like the SQLite store, by the same
table groups, with the same semantics; failures are named as ``db.classify`` says.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from edge.store.interface import Clock
from edge.store.postgres.content import PostgresAliases, PostgresResponses
from edge.store.postgres.db import MAX_CONNECTIONS, MIN_CONNECTIONS, Db
from edge.store.postgres.identity import PostgresMachines, PostgresTenants
from edge.store.postgres.keys import PostgresAdminKeys, PostgresKeys
from edge.store.postgres.sessions import PostgresSessions
from edge.store.postgres.usage import PostgresUsage


class PostgresStore:
    """All persistent state in one PostgreSQL database, shared by every edge node on it."""

    def __init__(self, db: Db) -> None:
        self._db = db
        self.tenants = PostgresTenants(db)
        self.machines = PostgresMachines(db)
        self.keys = PostgresKeys(db)
        self.admin_keys = PostgresAdminKeys(db)
        self.usage = PostgresUsage(db)
        self.aliases = PostgresAliases(db)
        self.responses = PostgresResponses(db)
        self.sessions = PostgresSessions(db)

    @classmethod
    async def open(
        cls,
        url: str,
        clock: Clock = time.time,
        *,
        min_connections: int = MIN_CONNECTIONS,
        max_connections: int = MAX_CONNECTIONS,
    ) -> PostgresStore:
        """Connect to ``url`` (``postgresql://USER:PASSWORD@HOST:PORT/DATABASE``), migrate and
        open the pool; ``OpenFailed`` with one line when that cannot be done."""
        db = await Db.open(
            url, clock, min_connections=min_connections, max_connections=max_connections
        )
        return cls(db)

    @property
    def schema_version(self) -> int:
        return self._db.schema_version

    async def close(self) -> None:
        await self._db.close()


if TYPE_CHECKING:  # PostgresStore implements the interface: mypy checks it here
    from edge.store.interface import Store

    def _conforms(store: PostgresStore) -> Store:
        return store
