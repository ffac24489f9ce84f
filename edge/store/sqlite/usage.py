"""Usage per key per day and the audit trail in SQLite."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge.store.records import AUDIT_COLUMNS, AuditRow, UsageIncrement, UsageRow
from edge.store.sqlite.db import Db

# Built from the constant column names, never from input.
_AUDIT_INSERT = (
    f"INSERT INTO audit_events ({', '.join(AUDIT_COLUMNS)})"  # noqa: S608
    f" VALUES ({', '.join('?' for _ in AUDIT_COLUMNS)})"
)
_AUDIT_SELECT = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_events"  # noqa: S608
_USAGE_UPSERT = (
    "INSERT INTO usage_daily (key_id, day, tenant_id, requests, prompt_tokens,"
    " completion_tokens) VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (key_id, day) DO UPDATE SET"
    " requests = requests + excluded.requests,"
    " prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
    " completion_tokens = completion_tokens + excluded.completion_tokens"
)


class SqliteUsage:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def record(
        self, audit_rows: Iterable[AuditRow], usage_rows: Iterable[UsageIncrement]
    ) -> None:
        with self._db.classified(), self._db.transaction() as db:
            db.executemany(_AUDIT_INSERT, audit_rows)
            db.executemany(_USAGE_UPSERT, usage_rows)

    async def tokens_used(self, key_id: str, since_day: str) -> int:
        (total,) = self._db.conn.execute(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage_daily"
            " WHERE key_id = ? AND day >= ?",
            (key_id, since_day),
        ).fetchone()
        return int(total)

    async def daily(
        self, tenant_id: str, since_day: str, key_id: str | None = None
    ) -> list[UsageRow]:
        rows = self._db.conn.execute(
            "SELECT k.name, u.day, u.requests, u.prompt_tokens, u.completion_tokens"
            " FROM usage_daily AS u JOIN api_keys AS k ON k.id = u.key_id"
            " WHERE u.tenant_id = ? AND u.day >= ? AND (? IS NULL OR u.key_id = ?)"
            " ORDER BY u.day, k.name",
            (tenant_id, since_day, key_id, key_id),
        )
        return [UsageRow(*row) for row in rows]

    async def audit_events(
        self, tenant_id: str, since: float, key_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        cursor = self._db.conn.execute(
            _AUDIT_SELECT + " WHERE tenant_id = ? AND at >= ? AND (? IS NULL OR key_id = ?)"
            " ORDER BY at DESC, id DESC LIMIT ?",
            (tenant_id, since, key_id, key_id, limit),
        )
        return [dict(zip(AUDIT_COLUMNS, row, strict=True)) for row in cursor]

    async def prune_audit(self, before: float) -> int:
        with self._db.classified():
            cursor = self._db.conn.execute("DELETE FROM audit_events WHERE at < ?", (before,))
        return cursor.rowcount
