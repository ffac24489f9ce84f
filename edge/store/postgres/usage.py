"""Usage per key per day and the audit trail in PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge.store.postgres.db import Db
from edge.store.records import AUDIT_COLUMNS, AuditRow, UsageIncrement, UsageRow

# Built from the constant column names, never from input.
_AUDIT_INSERT = (
    f"INSERT INTO audit_events ({', '.join(AUDIT_COLUMNS)})"  # noqa: S608
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(AUDIT_COLUMNS) + 1))})"
)
_AUDIT_SELECT = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_events"  # noqa: S608
# Adds to the day's counts in the statement itself: several nodes add to one row safely.
_USAGE_UPSERT = (
    "INSERT INTO usage_daily (key_id, day, tenant_id, requests, prompt_tokens,"
    " completion_tokens) VALUES ($1, $2, $3, $4, $5, $6)"
    " ON CONFLICT (key_id, day) DO UPDATE SET"
    " requests = usage_daily.requests + excluded.requests,"
    " prompt_tokens = usage_daily.prompt_tokens + excluded.prompt_tokens,"
    " completion_tokens = usage_daily.completion_tokens + excluded.completion_tokens"
)


class PostgresUsage:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def record(
        self, audit_rows: Iterable[AuditRow], usage_rows: Iterable[UsageIncrement]
    ) -> None:
        # Rows in key order: two nodes adding to the same keys lock their rows in one order,
        # so neither waits on the other in a deadlock.
        events = list(audit_rows)
        usage = sorted(usage_rows, key=lambda row: (str(row[0]), str(row[1])))
        async with self._db.transaction() as db:
            if events:
                await db.executemany(_AUDIT_INSERT, events)
            if usage:
                await db.executemany(_USAGE_UPSERT, usage)

    async def tokens_used(self, key_id: str, since_day: str) -> int:
        row = await self._db.fetchrow(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage_daily"
            " WHERE key_id = $1 AND day >= $2",
            key_id,
            since_day,
        )
        assert row is not None
        return int(row[0])

    async def daily(
        self, tenant_id: str, since_day: str, key_id: str | None = None
    ) -> list[UsageRow]:
        rows = await self._db.fetch(
            "SELECT k.name, u.day, u.requests, u.prompt_tokens, u.completion_tokens"
            " FROM usage_daily AS u JOIN api_keys AS k ON k.id = u.key_id"
            " WHERE u.tenant_id = $1 AND u.day >= $2 AND ($3::text IS NULL OR u.key_id = $3)"
            " ORDER BY u.day, k.name",
            *(tenant_id, since_day, key_id),
        )
        return [UsageRow(*row) for row in rows]

    async def audit_events(
        self, tenant_id: str, since: float, key_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        rows = await self._db.fetch(
            _AUDIT_SELECT + " WHERE tenant_id = $1 AND at >= $2"
            " AND ($3::text IS NULL OR key_id = $3) ORDER BY at DESC, id DESC LIMIT $4",
            *(tenant_id, since, key_id, limit),
        )
        return [dict(zip(AUDIT_COLUMNS, row, strict=True)) for row in rows]

    async def prune_audit(self, before: float) -> int:
        return await self._db.execute("DELETE FROM audit_events WHERE at < $1", before)
