"""Tenants, pairing codes and machines in PostgreSQL."""

from __future__ import annotations

from edge.store.postgres.db import Db, changed, conflicts
from edge.store.records import Conflict, Machine, Tenant

_TENANT = "SELECT id, slug, created_at FROM tenants"
_MACHINE = "SELECT id, tenant_id, name, public_key, created_at, revoked_at FROM machines"


class PostgresTenants:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def create(self, tenant_id: str, slug: str) -> Tenant:
        now = self._db.clock()
        await self._db.execute(
            "INSERT INTO tenants (id, slug, created_at) VALUES ($1, $2, $3)",
            *(tenant_id, slug, now),
            conflict=f"tenant {slug!r} already exists",
        )
        return Tenant(tenant_id, slug, now)

    async def by_slug(self, slug: str) -> Tenant | None:
        row = await self._db.fetchrow(f"{_TENANT} WHERE slug = $1", slug)
        return Tenant(*row) if row else None

    async def by_id(self, tenant_id: str) -> Tenant | None:
        row = await self._db.fetchrow(f"{_TENANT} WHERE id = $1", tenant_id)
        return Tenant(*row) if row else None

    async def all(self) -> list[Tenant]:
        return [Tenant(*row) for row in await self._db.fetch(f"{_TENANT} ORDER BY slug")]

    async def set_store_responses(self, tenant_id: str, enabled: bool) -> int:
        async with self._db.transaction() as db:
            await db.execute(
                "UPDATE tenants SET store_responses = $1 WHERE id = $2", enabled, tenant_id
            )
            if enabled:
                return 0
            deleted = await db.execute("DELETE FROM responses WHERE tenant_id = $1", tenant_id)
            return changed(deleted)

    async def stores_responses(self, tenant_id: str) -> bool:
        row = await self._db.fetchrow(
            "SELECT store_responses FROM tenants WHERE id = $1", tenant_id
        )
        return bool(row and row[0])


class PostgresMachines:
    def __init__(self, db: Db) -> None:
        self._db = db

    async def add_pairing_code(
        self, code_hash: str, tenant_id: str, machine_name: str, expires_at: float
    ) -> None:
        if await self.by_name(tenant_id, machine_name) is not None:
            raise Conflict(f"machine {machine_name!r} already exists; revoke it first")
        await self._db.execute(
            "INSERT INTO pairing_codes (code_hash, tenant_id, machine_name, created_at, expires_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            *(code_hash, tenant_id, machine_name, self._db.clock(), expires_at),
        )

    async def redeem_pairing_code(
        self, code_hash: str, machine_id: str, public_key: bytes
    ) -> Machine | None:
        # The conditional UPDATE is what makes a code single-use under concurrency, on one node
        # or several: it locks the code's row, and a redeemer that waited on that lock
        # re-checks ``used_at IS NULL`` on the row as the first one committed it, so only one
        # sees a changed row.
        now = self._db.clock()
        async with self._db.transaction() as db:
            row = await db.fetchrow(
                "UPDATE pairing_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL"
                " AND expires_at > $1 RETURNING tenant_id, machine_name",
                now,
                code_hash,
            )
            if row is None:
                return None
            tenant_id, name = row
            with conflicts(f"machine {name!r} already exists; revoke it first"):
                await db.execute(
                    "INSERT INTO machines (id, tenant_id, name, public_key, created_at)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    *(machine_id, tenant_id, name, public_key, now),
                )
        return Machine(machine_id, tenant_id, name, public_key, now, None)

    async def by_id(self, machine_id: str) -> Machine | None:
        row = await self._db.fetchrow(f"{_MACHINE} WHERE id = $1", machine_id)
        return Machine(*row) if row else None

    async def by_name(self, tenant_id: str, name: str) -> Machine | None:
        row = await self._db.fetchrow(
            f"{_MACHINE} WHERE tenant_id = $1 AND name = $2 AND revoked_at IS NULL",
            tenant_id,
            name,
        )
        return Machine(*row) if row else None

    async def of_tenant(self, tenant_id: str) -> list[Machine]:
        rows = await self._db.fetch(
            f"{_MACHINE} WHERE tenant_id = $1 AND revoked_at IS NULL ORDER BY name", tenant_id
        )
        return [Machine(*row) for row in rows]

    async def revoke(self, machine_id: str) -> list[str]:
        now = self._db.clock()
        async with self._db.transaction() as db:
            await db.execute("UPDATE machines SET revoked_at = $1 WHERE id = $2", now, machine_id)
            rows = await db.fetch(
                "UPDATE api_keys SET revoked_at = $1 WHERE machine_id = $2 AND revoked_at IS NULL"
                " RETURNING name",
                now,
                machine_id,
            )
        return sorted(name for (name,) in rows)
