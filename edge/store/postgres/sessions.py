"""Console sessions in PostgreSQL: a digest of the session id, its admin key and two times."""

from __future__ import annotations

from edge.store.postgres.db import Db
from edge.store.records import AdminKey, ConsoleSession


class PostgresSessions:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def create(self, session_hash: str, admin_key_id: str, now: float) -> None:
        await self._db.execute(
            "INSERT INTO console_sessions (session_hash, admin_key_id, created_at, last_seen_at)"
            " VALUES ($1, $2, $3, $3)",
            *(session_hash, admin_key_id, now),
        )

    async def get(self, session_hash: str) -> ConsoleSession | None:
        # The join is what ends a session with its admin key: a revoked key's row never matches.
        row = await self._db.fetchrow(
            "SELECT a.id, a.tenant_id, a.name, a.created_at, s.created_at, s.last_seen_at"
            " FROM console_sessions AS s JOIN admin_keys AS a ON a.id = s.admin_key_id"
            " WHERE s.session_hash = $1 AND a.revoked_at IS NULL",
            session_hash,
        )
        if row is None:
            return None
        return ConsoleSession(AdminKey(*row[:4]), row[4], row[5])

    async def touch(self, session_hash: str, now: float) -> None:
        await self._db.execute(
            "UPDATE console_sessions SET last_seen_at = $1 WHERE session_hash = $2",
            *(now, session_hash),
        )

    async def delete(self, session_hash: str) -> bool:
        deleted = await self._db.execute(
            "DELETE FROM console_sessions WHERE session_hash = $1", session_hash
        )
        return deleted > 0

    async def prune(self, idle_before: float, created_before: float) -> int:
        return await self._db.execute(
            "DELETE FROM console_sessions WHERE last_seen_at < $1 OR created_at < $2"
            " OR admin_key_id IN (SELECT id FROM admin_keys WHERE revoked_at IS NOT NULL)",
            *(idle_before, created_before),
        )
