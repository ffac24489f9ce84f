"""Tenants, pairing codes and machines in SQLite."""

from __future__ import annotations

import sqlite3

from edge.store.records import Conflict, Machine, Tenant
from edge.store.sqlite.db import Db

_TENANT = "SELECT id, slug, created_at FROM tenants"
_MACHINE = "SELECT id, tenant_id, name, public_key, created_at, revoked_at FROM machines"


class SqliteTenants:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def create(self, tenant_id: str, slug: str) -> Tenant:
        now = self._db.clock()
        try:
            self._db.conn.execute(
                "INSERT INTO tenants (id, slug, created_at) VALUES (?, ?, ?)",
                (tenant_id, slug, now),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"tenant {slug!r} already exists") from None
        return Tenant(tenant_id, slug, now)

    async def by_slug(self, slug: str) -> Tenant | None:
        row = self._db.conn.execute(f"{_TENANT} WHERE slug = ?", (slug,)).fetchone()
        return Tenant(*row) if row else None

    async def by_id(self, tenant_id: str) -> Tenant | None:
        row = self._db.conn.execute(f"{_TENANT} WHERE id = ?", (tenant_id,)).fetchone()
        return Tenant(*row) if row else None

    async def all(self) -> list[Tenant]:
        return [Tenant(*row) for row in self._db.conn.execute(f"{_TENANT} ORDER BY slug")]

    async def set_store_responses(self, tenant_id: str, enabled: bool) -> int:
        with self._db.transaction() as db:
            db.execute(
                "UPDATE tenants SET store_responses = ? WHERE id = ?", (int(enabled), tenant_id)
            )
            if enabled:
                return 0
            return db.execute("DELETE FROM responses WHERE tenant_id = ?", (tenant_id,)).rowcount

    async def stores_responses(self, tenant_id: str) -> bool:
        row = self._db.conn.execute(
            "SELECT store_responses FROM tenants WHERE id = ?", (tenant_id,)
        ).fetchone()
        return bool(row and row[0])


class SqliteMachines:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def add_pairing_code(
        self, code_hash: str, tenant_id: str, machine_name: str, expires_at: float
    ) -> None:
        if await self.by_name(tenant_id, machine_name) is not None:
            raise Conflict(f"machine {machine_name!r} already exists; revoke it first")
        self._db.conn.execute(
            "INSERT INTO pairing_codes (code_hash, tenant_id, machine_name, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (code_hash, tenant_id, machine_name, self._db.clock(), expires_at),
        )

    async def redeem_pairing_code(
        self, code_hash: str, machine_id: str, public_key: bytes
    ) -> Machine | None:
        # The conditional UPDATE is what makes a code single-use under concurrency: only one
        # redeemer sees a changed row.
        now = self._db.clock()
        try:
            with self._db.transaction() as db:
                row = db.execute(
                    "UPDATE pairing_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL"
                    " AND expires_at > ? RETURNING tenant_id, machine_name",
                    (now, code_hash, now),
                ).fetchone()
                if row is None:
                    return None
                tenant_id, name = row
                db.execute(
                    "INSERT INTO machines (id, tenant_id, name, public_key, created_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (machine_id, tenant_id, name, public_key, now),
                )
        except sqlite3.IntegrityError:
            raise Conflict(f"machine {name!r} already exists; revoke it first") from None
        return Machine(machine_id, tenant_id, name, public_key, now, None)

    async def by_id(self, machine_id: str) -> Machine | None:
        row = self._db.conn.execute(f"{_MACHINE} WHERE id = ?", (machine_id,)).fetchone()
        return Machine(*row) if row else None

    async def by_name(self, tenant_id: str, name: str) -> Machine | None:
        row = self._db.conn.execute(
            f"{_MACHINE} WHERE tenant_id = ? AND name = ? AND revoked_at IS NULL",
            (tenant_id, name),
        ).fetchone()
        return Machine(*row) if row else None

    async def of_tenant(self, tenant_id: str) -> list[Machine]:
        rows = self._db.conn.execute(
            f"{_MACHINE} WHERE tenant_id = ? AND revoked_at IS NULL ORDER BY name",
            (tenant_id,),
        )
        return [Machine(*row) for row in rows]

    async def revoke(self, machine_id: str) -> list[str]:
        now = self._db.clock()
        with self._db.transaction() as db:
            db.execute("UPDATE machines SET revoked_at = ? WHERE id = ?", (now, machine_id))
            rows = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE machine_id = ? AND revoked_at IS NULL"
                " RETURNING name",
                (now, machine_id),
            ).fetchall()
        return sorted(name for (name,) in rows)
