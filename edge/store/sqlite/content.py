"""Model aliases and stored Responses API responses in SQLite."""

from __future__ import annotations

import json
from typing import Any

from edge.store.sqlite.db import Db


class SqliteAliases:
    def __init__(self, db: Db) -> None:
        self._db = db
        # Every request reads its tenant's aliases and admins rarely change them (and only
        # through this store, in this process): cached, dropped on every change.
        self._cache: dict[str, dict[str, str]] = {}

    def forget(self, tenant_id: str | None = None) -> None:
        if tenant_id is None:
            self._cache.clear()
        else:
            self._cache.pop(tenant_id, None)

    async def set(self, tenant_id: str, alias: str, model: str) -> None:
        self._cache.pop(tenant_id, None)
        self._db.conn.execute(
            "INSERT INTO model_aliases (tenant_id, alias, model, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (tenant_id, alias) DO UPDATE SET model = excluded.model",
            (tenant_id, alias, model, self._db.clock()),
        )

    async def delete(self, tenant_id: str, alias: str) -> bool:
        self._cache.pop(tenant_id, None)
        cursor = self._db.conn.execute(
            "DELETE FROM model_aliases WHERE tenant_id = ? AND alias = ?", (tenant_id, alias)
        )
        return cursor.rowcount > 0

    async def of_tenant(self, tenant_id: str) -> dict[str, str]:
        cached = self._cache.get(tenant_id)
        if cached is None:
            rows = self._db.conn.execute(
                "SELECT alias, model FROM model_aliases WHERE tenant_id = ? ORDER BY alias",
                (tenant_id,),
            )
            cached = self._cache[tenant_id] = dict(rows.fetchall())
        return cached


class SqliteResponses:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def save(
        self,
        response_id: str,
        tenant_id: str,
        key_id: str,
        created_at: float,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
    ) -> None:
        self._db.conn.execute(
            "INSERT INTO responses (id, tenant_id, key_id, created_at, response, input_items)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                *(response_id, tenant_id, key_id, created_at),
                *(json.dumps(response), json.dumps(input_items)),
            ),
        )

    async def get(
        self, tenant_id: str, response_id: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        row = self._db.conn.execute(
            "SELECT response, input_items FROM responses WHERE tenant_id = ? AND id = ?",
            (tenant_id, response_id),
        ).fetchone()
        return (json.loads(row[0]), json.loads(row[1])) if row else None

    async def delete(self, tenant_id: str, response_id: str) -> bool:
        cursor = self._db.conn.execute(
            "DELETE FROM responses WHERE tenant_id = ? AND id = ?", (tenant_id, response_id)
        )
        return cursor.rowcount > 0
