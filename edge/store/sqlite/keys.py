"""API keys (with their secrets, for rotation) and admin keys in SQLite."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from edge.store.records import AdminKey, ApiKey, Conflict, KeyLimits
from edge.store.sqlite.db import Db

_KEY_COLUMNS = (
    "k.id, k.tenant_id, k.name, k.prefix, k.created_at, k.expires_at, k.revoked_at,"
    " k.last_used_at, k.models, k.budget_tokens, k.budget_period, k.rpm, k.tpm, k.machine_id"
)
_KEY = f"SELECT {_KEY_COLUMNS} FROM api_keys AS k"  # noqa: S608  # constant columns
_ADMIN = "SELECT id, tenant_id, name, created_at FROM admin_keys"


def _api_key(row: tuple[Any, ...]) -> ApiKey:
    models = tuple(json.loads(row[8])) if row[8] is not None else None
    key_id, tenant_id, name, prefix, created, expires, revoked, last_used = row[:8]
    limits = KeyLimits(models, *row[9:])
    return ApiKey(key_id, tenant_id, name, prefix, created, expires, revoked, last_used, limits)


class SqliteKeys:
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
        try:
            with self._db.transaction() as db:
                db.execute(
                    "INSERT INTO api_keys (id, tenant_id, name, prefix, created_at, expires_at,"
                    " models, budget_tokens, budget_period, rpm, tpm, machine_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        *(key_id, tenant_id, name, prefix, now, expires_at, models),
                        *(limits.budget_tokens, limits.budget_period, limits.rpm, limits.tpm),
                        limits.machine_id,
                    ),
                )
                db.execute(
                    "INSERT INTO api_key_secrets (secret_hash, key_id, created_at)"
                    " VALUES (?, ?, ?)",
                    (secret_hash, key_id, now),
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"key {name!r} already exists") from None
        return ApiKey(key_id, tenant_id, name, prefix, now, expires_at, None, None, limits)

    async def by_hash(self, secret_hash: str, now: float | None = None) -> ApiKey | None:
        found = await self.secret(secret_hash)
        if found is None:
            return None
        key, secret_expires_at = found
        now = self._db.clock() if now is None else now
        return key if secret_expires_at is None or secret_expires_at > now else None

    async def secret(self, secret_hash: str) -> tuple[ApiKey, float | None] | None:
        row = self._db.conn.execute(
            f"SELECT {_KEY_COLUMNS}, s.expires_at FROM api_keys AS k"  # noqa: S608
            " JOIN api_key_secrets AS s ON s.key_id = k.id WHERE s.secret_hash = ?",
            (secret_hash,),
        ).fetchone()
        return (_api_key(row[:-1]), row[-1]) if row else None

    async def by_name(self, tenant_id: str, name: str) -> ApiKey | None:
        row = self._db.conn.execute(
            f"{_KEY} WHERE k.tenant_id = ? AND k.name = ? AND k.revoked_at IS NULL",
            (tenant_id, name),
        ).fetchone()
        return _api_key(row) if row else None

    async def of_tenant(self, tenant_id: str) -> list[ApiKey]:
        rows = self._db.conn.execute(
            f"{_KEY} WHERE k.tenant_id = ? AND k.revoked_at IS NULL ORDER BY k.name",
            (tenant_id,),
        )
        return [_api_key(row) for row in rows]

    async def rotate(self, key_id: str, prefix: str, secret_hash: str, grace_until: float) -> None:
        now = self._db.clock()
        with self._db.transaction() as db:
            db.execute(
                "UPDATE api_key_secrets SET expires_at = MIN(COALESCE(expires_at, ?), ?)"
                " WHERE key_id = ?",
                (grace_until, grace_until, key_id),
            )
            db.execute(
                "INSERT INTO api_key_secrets (secret_hash, key_id, created_at) VALUES (?, ?, ?)",
                (secret_hash, key_id, now),
            )
            db.execute("UPDATE api_keys SET prefix = ? WHERE id = ?", (prefix, key_id))

    async def revoke(self, key_id: str) -> None:
        self._db.conn.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ?", (self._db.clock(), key_id)
        )

    async def touch(self, key_id: str, when: float) -> None:
        self._db.conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (when, key_id))


class SqliteAdminKeys:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def add(
        self, key_id: str, tenant_id: str | None, secret_hash: str, name: str | None = None
    ) -> AdminKey:
        now = self._db.clock()
        try:
            self._db.conn.execute(
                "INSERT INTO admin_keys (id, tenant_id, secret_hash, created_at, name)"
                " VALUES (?, ?, ?, ?, ?)",
                (key_id, tenant_id, secret_hash, now, name),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"admin key {name!r} already exists") from None
        return AdminKey(key_id, tenant_id, name, now)

    async def by_hash(self, secret_hash: str) -> AdminKey | None:
        row = self._db.conn.execute(
            f"{_ADMIN} WHERE secret_hash = ? AND revoked_at IS NULL", (secret_hash,)
        ).fetchone()
        return AdminKey(*row) if row else None

    async def of_tenant(self, tenant_id: str) -> list[AdminKey]:
        rows = self._db.conn.execute(
            f"{_ADMIN} WHERE tenant_id = ? AND revoked_at IS NULL ORDER BY name", (tenant_id,)
        )
        return [AdminKey(*row) for row in rows]

    async def revoke(self, tenant_id: str, name: str) -> bool:
        cursor = self._db.conn.execute(
            "UPDATE admin_keys SET revoked_at = ? WHERE tenant_id = ? AND name = ?"
            " AND revoked_at IS NULL",
            (self._db.clock(), tenant_id, name),
        )
        return cursor.rowcount > 0

    async def has_operator(self) -> bool:
        row = self._db.conn.execute(
            "SELECT 1 FROM admin_keys WHERE tenant_id IS NULL AND revoked_at IS NULL"
        ).fetchone()
        return row is not None
