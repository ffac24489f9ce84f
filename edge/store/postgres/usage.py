"""Usage per key per day and the audit trail in PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge.store.postgres.db import Db
from edge.store.records import (
    AUDIT_COLUMNS,
    AuditQuery,
    AuditRow,
    ModelUsageRow,
    SeriesPoint,
    UsageIncrement,
    UsageRow,
)

# Built from the constant column names, never from input.
_AUDIT_INSERT = (
    f"INSERT INTO audit_events ({', '.join(AUDIT_COLUMNS)})"  # noqa: S608
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(AUDIT_COLUMNS) + 1))})"
)
_AUDIT_SELECT = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_events"  # noqa: S608
_AUDIT_PAGE = (
    f"SELECT id, {', '.join(AUDIT_COLUMNS)} FROM audit_events"  # noqa: S608
    " WHERE tenant_id = $1 AND at >= $2"
    " AND ($3::float8 IS NULL OR at < $3)"
    " AND ($4::text IS NULL OR key_id = $4)"
    " AND ($5::text IS NULL OR machine = $5)"
    " AND ($6::text IS NULL OR kind = $6)"
    " AND ($7::bigint IS NULL OR status >= $7)"
    " AND ($8::bigint IS NULL OR status <= $8)"
    " AND ($9::float8 IS NULL OR at < $9 OR (at = $9 AND id < $10))"
    " ORDER BY at DESC, id DESC LIMIT $11"
)
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

    async def audit_page(
        self, tenant_id: str, query: AuditQuery, limit: int
    ) -> list[dict[str, Any]]:
        before_at, before_id = query.before if query.before is not None else (None, None)
        rows = await self._db.fetch(
            _AUDIT_PAGE,
            *(tenant_id, query.since, query.until, query.key_id, query.machine, query.kind),
            *(query.status_min, query.status_max, before_at, before_id, limit),
        )
        return [dict(zip(("id", *AUDIT_COLUMNS), row, strict=True)) for row in rows]

    async def series(
        self, since: float, until: float, bucket_seconds: int, tenant_id: str | None = None
    ) -> list[SeriesPoint]:
        # floor, not a cast: a cast rounds, and an event at 0.6 of a bucket would go to the next.
        rows = await self._db.fetch(
            "SELECT tenant_id, floor((at - $1) / $3)::bigint AS bucket, COUNT(*),"
            " COUNT(*) FILTER (WHERE status >= 400), COALESCE(SUM(prompt_tokens), 0),"
            " COALESCE(SUM(completion_tokens), 0), AVG(ttft_ms), MAX(ttft_ms)"
            " FROM audit_events WHERE kind = 'request' AND at >= $1 AND at < $2"
            " AND ($4::text IS NULL OR tenant_id = $4)"
            " GROUP BY tenant_id, bucket ORDER BY tenant_id, bucket",
            *(since, until, float(bucket_seconds), tenant_id),
        )
        return [
            SeriesPoint(tenant, since + bucket * bucket_seconds, *map(_number, counts))
            for tenant, bucket, *counts in rows
        ]

    async def daily_by_model(
        self, tenant_id: str, since: float, key_id: str | None = None
    ) -> list[ModelUsageRow]:
        rows = await self._db.fetch(
            "SELECT to_char(to_timestamp(e.at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,"
            " k.name, e.model, COUNT(*), COUNT(*) FILTER (WHERE e.status >= 400),"
            " COALESCE(SUM(e.prompt_tokens), 0), COALESCE(SUM(e.completion_tokens), 0)"
            " FROM audit_events AS e LEFT JOIN api_keys AS k ON k.id = e.key_id"
            " WHERE e.tenant_id = $1 AND e.kind = 'request' AND e.at >= $2"
            " AND ($3::text IS NULL OR e.key_id = $3)"
            # NULLS FIRST: where SQLite puts them, so both stores list rows alike.
            ' GROUP BY day, e.key_id, k.name, e.model ORDER BY day, k.name COLLATE "C" NULLS FIRST,'
            ' e.model COLLATE "C" NULLS FIRST',
            *(tenant_id, since, key_id),
        )
        return [
            ModelUsageRow(day, name, model, *map(int, counts)) for day, name, model, *counts in rows
        ]


def _number(value: Any) -> Any:
    """A sum or count as the SQLite store returns it: PostgreSQL's SUM of BIGINT is NUMERIC."""
    if value is None or isinstance(value, float):
        return value
    return int(value)
