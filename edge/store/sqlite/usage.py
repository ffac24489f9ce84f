"""Usage per key per day and the audit trail in SQLite."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge.store.records import (
    AUDIT_COLUMNS,
    AuditQuery,
    AuditRow,
    ModelUsageRow,
    SeriesPoint,
    UsageIncrement,
    UsageRow,
)
from edge.store.sqlite.db import Db

# Built from the constant column names, never from input.
_AUDIT_INSERT = (
    f"INSERT INTO audit_events ({', '.join(AUDIT_COLUMNS)})"  # noqa: S608
    f" VALUES ({', '.join('?' for _ in AUDIT_COLUMNS)})"
)
_AUDIT_SELECT = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_events"  # noqa: S608
_AUDIT_PAGE = (
    f"SELECT id, {', '.join(AUDIT_COLUMNS)} FROM audit_events"  # noqa: S608
    " WHERE tenant_id = :tenant AND at >= :since"
    " AND (:until IS NULL OR at < :until)"
    " AND (:key IS NULL OR key_id = :key)"
    " AND (:machine IS NULL OR machine = :machine)"
    " AND (:kind IS NULL OR kind = :kind)"
    " AND (:status_min IS NULL OR status >= :status_min)"
    " AND (:status_max IS NULL OR status <= :status_max)"
    " AND (:before_at IS NULL OR at < :before_at OR (at = :before_at AND id < :before_id))"
    " ORDER BY at DESC, id DESC LIMIT :limit"
)
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

    async def audit_page(
        self, tenant_id: str, query: AuditQuery, limit: int
    ) -> list[dict[str, Any]]:
        before_at, before_id = query.before if query.before is not None else (None, None)
        cursor = self._db.conn.execute(
            _AUDIT_PAGE,
            {
                "tenant": tenant_id,
                "since": query.since,
                "until": query.until,
                "key": query.key_id,
                "machine": query.machine,
                "kind": query.kind,
                "status_min": query.status_min,
                "status_max": query.status_max,
                "before_at": before_at,
                "before_id": before_id,
                "limit": limit,
            },
        )
        return [dict(zip(("id", *AUDIT_COLUMNS), row, strict=True)) for row in cursor]

    async def series(
        self, since: float, until: float, bucket_seconds: int, tenant_id: str | None = None
    ) -> list[SeriesPoint]:
        rows = self._db.conn.execute(
            "SELECT tenant_id, CAST((at - :since) / :bucket AS INTEGER) AS bucket, COUNT(*),"
            " COALESCE(SUM(status >= 400), 0), COALESCE(SUM(prompt_tokens), 0),"
            " COALESCE(SUM(completion_tokens), 0), AVG(ttft_ms), MAX(ttft_ms)"
            " FROM audit_events WHERE kind = 'request' AND at >= :since AND at < :until"
            " AND (:tenant IS NULL OR tenant_id = :tenant)"
            " GROUP BY tenant_id, bucket ORDER BY tenant_id, bucket",
            {"since": since, "until": until, "bucket": bucket_seconds, "tenant": tenant_id},
        )
        return [
            SeriesPoint(tenant, since + bucket * bucket_seconds, *counts)
            for tenant, bucket, *counts in rows
        ]

    async def daily_by_model(
        self, tenant_id: str, since: float, key_id: str | None = None
    ) -> list[ModelUsageRow]:
        rows = self._db.conn.execute(
            "SELECT date(e.at, 'unixepoch') AS day, k.name, e.model, COUNT(*),"
            " COALESCE(SUM(e.status >= 400), 0), COALESCE(SUM(e.prompt_tokens), 0),"
            " COALESCE(SUM(e.completion_tokens), 0)"
            " FROM audit_events AS e LEFT JOIN api_keys AS k ON k.id = e.key_id"
            " WHERE e.tenant_id = :tenant AND e.kind = 'request' AND e.at >= :since"
            " AND (:key IS NULL OR e.key_id = :key)"
            " GROUP BY day, e.key_id, e.model ORDER BY day, k.name, e.model",
            {"tenant": tenant_id, "since": since, "key": key_id},
        )
        return [ModelUsageRow(*row) for row in rows]
