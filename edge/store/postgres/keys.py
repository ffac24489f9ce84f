"""API keys (with their secrets, for rotation) and admin keys in PostgreSQL."""

from __future__ import annotations

import json

import asyncpg

from edge.store.postgres.db import Db
from edge.store.records import AdminKey, ApiKey, KeyLimits

_KEY_COLUMNS = (
    "k.id, k.tenant_id, k.name, k.prefix, k.created_at, k.expires_at, k.revoked_at,"
    " k.last_used_at, k.models, k.budget_tokens, k.budget_period, k.rpm, k.tpm, k.machine_id"
)
_KEY = f"SELECT {_KEY_COLUMNS} FROM api_keys AS k"  # noqa: S608  # constant columns
_ADMIN = "SELECT id, tenant_id, name, created_at FROM admin_keys"


def _api_key(row: asyncpg.Record | tuple[object, ...]) -> ApiKey:
    values = tuple(row)
    models = tuple(json.loads(values[8])) if values[8] is not None else None
    key_id, tenant_id, name, prefix, created, expires, revoked, last_used = values[:8]
    limits = KeyLimits(models, *values[9:])
    return ApiKey(key_id, tenant_id, name, prefix, created, expires, revoked, last_used, limits)


class PostgresKeys:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def add(
        self,
        key_id: str,
        tenant_id: str,
        name: str,
        prefix: str,
        secret_hash: str,
        expires_at: float | None,
        limits: KeyLimits | None = None,
    ) -> ApiKey:
        limits = limits or KeyLimits()
        models = json.dumps(list(limits.models)) if limits.models is not None else None
        now = self._db.clock()
        async with self._db.transaction(conflict=f"key {name!r} already exists") as db:
            await db.execute(
                "INSERT INTO api_keys (id, tenant_id, name, prefix, created_at, expires_at,"
                " models, budget_tokens, budget_period, rpm, tpm, machine_id)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                *(key_id, tenant_id, name, prefix, now, expires_at, models),
                *(limits.budget_tokens, limits.budget_period, limits.rpm, limits.tpm),
                limits.machine_id,
            )
            await db.execute(
                "INSERT INTO api_key_secrets (secret_hash, key_id, created_at) VALUES ($1, $2, $3)",
                *(secret_hash, key_id, now),
            )
        return ApiKey(key_id, tenant_id, name, prefix, now, expires_at, None, None, limits)

    async def by_hash(self, secret_hash: str, now: float | None = None) -> ApiKey | None:
        found = await self.secret(secret_hash)
        if found is None:
            return None
        key, secret_expires_at = found
        now = self._db.clock() if now is None else now
        return key if secret_expires_at is None or secret_expires_at > now else None

    async def secret(self, secret_hash: str) -> tuple[ApiKey, float | None] | None:
        row = await self._db.fetchrow(
            f"SELECT {_KEY_COLUMNS}, s.expires_at FROM api_keys AS k"  # noqa: S608
            " JOIN api_key_secrets AS s ON s.key_id = k.id WHERE s.secret_hash = $1",
            secret_hash,
        )
        if row is None:
            return None
        values = tuple(row)
        return _api_key(values[:-1]), values[-1]

    async def by_name(self, tenant_id: str, name: str) -> ApiKey | None:
        row = await self._db.fetchrow(
            f"{_KEY} WHERE k.tenant_id = $1 AND k.name = $2 AND k.revoked_at IS NULL",
            tenant_id,
            name,
        )
        return _api_key(row) if row else None

    async def of_tenant(self, tenant_id: str) -> list[ApiKey]:
        rows = await self._db.fetch(
            f"{_KEY} WHERE k.tenant_id = $1 AND k.revoked_at IS NULL ORDER BY k.name", tenant_id
        )
        return [_api_key(row) for row in rows]

    async def rotate(self, key_id: str, prefix: str, secret_hash: str, grace_until: float) -> None:
        now = self._db.clock()
        async with self._db.transaction() as db:
            # The key's row first: a rotation that runs at the same time (on this node or
            # another) waits here, then ends the grace of the secret this one adds as well.
            # Without it, under READ COMMITTED, its UPDATE would not see that secret, which
            # would stay valid for good.
            await db.execute("SELECT 1 FROM api_keys WHERE id = $1 FOR UPDATE", key_id)
            await db.execute(
                "UPDATE api_key_secrets SET expires_at = LEAST(COALESCE(expires_at, $1), $1)"
                " WHERE key_id = $2",
                grace_until,
                key_id,
            )
            await db.execute(
                "INSERT INTO api_key_secrets (secret_hash, key_id, created_at) VALUES ($1, $2, $3)",
                *(secret_hash, key_id, now),
            )
            await db.execute("UPDATE api_keys SET prefix = $1 WHERE id = $2", prefix, key_id)

    async def revoke(self, key_id: str) -> None:
        await self._db.execute(
            "UPDATE api_keys SET revoked_at = $1 WHERE id = $2", self._db.clock(), key_id
        )

    async def touch(self, key_id: str, when: float) -> None:
        await self._db.execute("UPDATE api_keys SET last_used_at = $1 WHERE id = $2", when, key_id)


class PostgresAdminKeys:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def add(
        self, key_id: str, tenant_id: str | None, secret_hash: str, name: str | None = None
    ) -> AdminKey:
        now = self._db.clock()
        await self._db.execute(
            "INSERT INTO admin_keys (id, tenant_id, secret_hash, created_at, name)"
            " VALUES ($1, $2, $3, $4, $5)",
            *(key_id, tenant_id, secret_hash, now, name),
            conflict=f"admin key {name!r} already exists",
        )
        return AdminKey(key_id, tenant_id, name, now)

    async def by_hash(self, secret_hash: str) -> AdminKey | None:
        row = await self._db.fetchrow(
            f"{_ADMIN} WHERE secret_hash = $1 AND revoked_at IS NULL", secret_hash
        )
        return AdminKey(*row) if row else None

    async def of_tenant(self, tenant_id: str) -> list[AdminKey]:
        rows = await self._db.fetch(
            f"{_ADMIN} WHERE tenant_id = $1 AND revoked_at IS NULL ORDER BY name", tenant_id
        )
        return [AdminKey(*row) for row in rows]

    async def revoke(self, tenant_id: str, name: str) -> bool:
        revoked = await self._db.execute(
            "UPDATE admin_keys SET revoked_at = $1 WHERE tenant_id = $2 AND name = $3"
            " AND revoked_at IS NULL",
            *(self._db.clock(), tenant_id, name),
        )
        return revoked > 0

    async def has_operator(self) -> bool:
        row = await self._db.fetchrow(
            "SELECT 1 FROM admin_keys WHERE tenant_id IS NULL AND revoked_at IS NULL LIMIT 1"
        )
        return row is not None
