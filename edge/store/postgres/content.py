"""Model aliases and stored Responses API responses in PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from edge.store.postgres.db import Db


class PostgresAliases:
    """Aliases, cached per tenant as SQLite's are.

    The cache is this process's: a change made here drops this node's copy at once; another
    edge node on the same database drops its own when the change's broadcast reaches it
    (``forget``, called by ``edge.cluster.broadcast``). Without ``--redis`` there is one node.
    """

    def __init__(self, db: Db) -> None:
        self._db = db
        self._cache: dict[str, dict[str, str]] = {}
        # Bumped by every change: a read that overlapped one (queries await, unlike SQLite's)
        # does not cache what it read, which may predate the change.
        self._changes = 0

    def forget(self, tenant_id: str | None = None) -> None:
        """Drop the tenant's cached aliases, or every tenant's (another node changed them)."""
        self._changes += 1
        if tenant_id is None:
            self._cache.clear()
        else:
            self._cache.pop(tenant_id, None)

    async def set(self, tenant_id: str, alias: str, model: str) -> None:
        self.forget(tenant_id)
        try:
            await self._db.execute(
                "INSERT INTO model_aliases (tenant_id, alias, model, created_at)"
                " VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (tenant_id, alias) DO UPDATE SET model = excluded.model",
                *(tenant_id, alias, model, self._db.clock()),
            )
        finally:
            self.forget(tenant_id)

    async def delete(self, tenant_id: str, alias: str) -> bool:
        self.forget(tenant_id)
        try:
            deleted = await self._db.execute(
                "DELETE FROM model_aliases WHERE tenant_id = $1 AND alias = $2", tenant_id, alias
            )
        finally:
            self.forget(tenant_id)
        return deleted > 0

    async def of_tenant(self, tenant_id: str) -> dict[str, str]:
        cached = self._cache.get(tenant_id)
        if cached is None:
            changes = self._changes
            rows = await self._db.fetch(
                "SELECT alias, model FROM model_aliases WHERE tenant_id = $1 ORDER BY alias",
                tenant_id,
            )
            cached = {alias: model for alias, model in rows}
            if changes == self._changes:
                self._cache[tenant_id] = cached
        return cached


class PostgresResponses:
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
        await self._db.execute(
            "INSERT INTO responses (id, tenant_id, key_id, created_at, response, input_items)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            *(response_id, tenant_id, key_id, created_at),
            *(json.dumps(response), json.dumps(input_items)),
        )

    async def get(
        self, tenant_id: str, response_id: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        row = await self._db.fetchrow(
            "SELECT response, input_items FROM responses WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            response_id,
        )
        return (json.loads(row[0]), json.loads(row[1])) if row else None

    async def delete(self, tenant_id: str, response_id: str) -> bool:
        deleted = await self._db.execute(
            "DELETE FROM responses WHERE tenant_id = $1 AND id = $2", tenant_id, response_id
        )
        return deleted > 0
