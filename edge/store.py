"""The edge's state in SQLite (WAL), behind one small interface (DESIGN.md "State").

Queries are short and indexed, so they run on the event loop: a lookup costs microseconds, less
than a thread hop. Schema changes are numbered migrations applied in order and recorded in
``PRAGMA user_version``. Secrets never reach this module in the clear: callers pass digests.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

MIGRATIONS: tuple[str, ...] = (
    # 1: tenants, machines, pairing codes, API keys, operator and tenant admin keys.
    """
    CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE machines (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        public_key BLOB NOT NULL,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE UNIQUE INDEX machines_live_name ON machines(tenant_id, name) WHERE revoked_at IS NULL;
    CREATE TABLE pairing_codes (
        code_hash TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        machine_name TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL,
        used_at REAL
    );
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        expires_at REAL,
        revoked_at REAL,
        last_used_at REAL
    );
    CREATE UNIQUE INDEX api_keys_live_name ON api_keys(tenant_id, name) WHERE revoked_at IS NULL;
    CREATE TABLE admin_keys (
        id TEXT PRIMARY KEY,
        tenant_id TEXT REFERENCES tenants(id),  -- NULL: the operator, who manages every tenant
        secret_hash TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    """,
)


class StoreError(Exception):
    """Root of the store's errors."""


class Conflict(StoreError):
    """The name is already taken."""


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str
    slug: str
    created_at: float


@dataclass(frozen=True, slots=True)
class Machine:
    id: str
    tenant_id: str
    name: str
    public_key: bytes
    created_at: float
    revoked_at: float | None


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    prefix: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None


@dataclass(frozen=True, slots=True)
class AdminKey:
    id: str
    tenant_id: str | None


class Store:
    """All persistent state. One instance per edge process; not shared across threads."""

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self._db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    @property
    def schema_version(self) -> int:
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        return int(version)

    # ------------------------------------------------------------------ tenants

    def create_tenant(self, tenant_id: str, slug: str) -> Tenant:
        now = time.time()
        try:
            self._db.execute(
                "INSERT INTO tenants (id, slug, created_at) VALUES (?, ?, ?)",
                (tenant_id, slug, now),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"tenant {slug!r} already exists") from None
        return Tenant(tenant_id, slug, now)

    def tenant_by_slug(self, slug: str) -> Tenant | None:
        row = self._db.execute(
            "SELECT id, slug, created_at FROM tenants WHERE slug = ?", (slug,)
        ).fetchone()
        return Tenant(*row) if row else None

    def tenant_by_id(self, tenant_id: str) -> Tenant | None:
        row = self._db.execute(
            "SELECT id, slug, created_at FROM tenants WHERE id = ?", (tenant_id,)
        ).fetchone()
        return Tenant(*row) if row else None

    def list_tenants(self) -> list[Tenant]:
        rows = self._db.execute("SELECT id, slug, created_at FROM tenants ORDER BY slug")
        return [Tenant(*row) for row in rows]

    # ------------------------------------------------------------------ pairing and machines

    def add_pairing_code(
        self, code_hash: str, tenant_id: str, machine_name: str, expires_at: float
    ) -> None:
        if self.machine_by_name(tenant_id, machine_name) is not None:
            raise Conflict(f"machine {machine_name!r} already exists; revoke it first")
        self._db.execute(
            "INSERT INTO pairing_codes (code_hash, tenant_id, machine_name, created_at, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (code_hash, tenant_id, machine_name, time.time(), expires_at),
        )

    def redeem_pairing_code(
        self, code_hash: str, machine_id: str, public_key: bytes
    ) -> Machine | None:
        """Spend a live code and create its machine, atomically; ``None`` if the code is not live.

        The conditional UPDATE is what makes a code single-use under concurrency: only one
        redeemer sees a changed row.
        """
        now = time.time()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute(
                "UPDATE pairing_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL"
                " AND expires_at > ? RETURNING tenant_id, machine_name",
                (now, code_hash, now),
            ).fetchone()
            if row is None:
                self._db.execute("ROLLBACK")
                return None
            tenant_id, name = row
            self._db.execute(
                "INSERT INTO machines (id, tenant_id, name, public_key, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (machine_id, tenant_id, name, public_key, now),
            )
            self._db.execute("COMMIT")
        except sqlite3.IntegrityError:
            self._db.execute("ROLLBACK")
            raise Conflict(f"machine {name!r} already exists; revoke it first") from None
        return Machine(machine_id, tenant_id, name, public_key, now, None)

    _MACHINE = "SELECT id, tenant_id, name, public_key, created_at, revoked_at FROM machines"

    def machine_by_id(self, machine_id: str) -> Machine | None:
        row = self._db.execute(f"{self._MACHINE} WHERE id = ?", (machine_id,)).fetchone()
        return Machine(*row) if row else None

    def machine_by_name(self, tenant_id: str, name: str) -> Machine | None:
        row = self._db.execute(
            f"{self._MACHINE} WHERE tenant_id = ? AND name = ? AND revoked_at IS NULL",
            (tenant_id, name),
        ).fetchone()
        return Machine(*row) if row else None

    def list_machines(self, tenant_id: str) -> list[Machine]:
        rows = self._db.execute(
            f"{self._MACHINE} WHERE tenant_id = ? AND revoked_at IS NULL ORDER BY name",
            (tenant_id,),
        )
        return [Machine(*row) for row in rows]

    def revoke_machine(self, machine_id: str) -> None:
        self._db.execute(
            "UPDATE machines SET revoked_at = ? WHERE id = ?", (time.time(), machine_id)
        )

    # ------------------------------------------------------------------ API keys

    _KEY = (
        "SELECT id, tenant_id, name, prefix, created_at, expires_at, revoked_at, last_used_at"
        " FROM api_keys"
    )

    def add_api_key(
        self,
        key_id: str,
        tenant_id: str,
        name: str,
        prefix: str,
        secret_hash: str,
        expires_at: float | None,
    ) -> ApiKey:
        now = time.time()
        try:
            self._db.execute(
                "INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key_id, tenant_id, name, prefix, secret_hash, now, expires_at),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"key {name!r} already exists") from None
        return ApiKey(key_id, tenant_id, name, prefix, now, expires_at, None, None)

    def api_key_by_hash(self, secret_hash: str) -> ApiKey | None:
        row = self._db.execute(f"{self._KEY} WHERE secret_hash = ?", (secret_hash,)).fetchone()
        return ApiKey(*row) if row else None

    def api_key_by_name(self, tenant_id: str, name: str) -> ApiKey | None:
        row = self._db.execute(
            f"{self._KEY} WHERE tenant_id = ? AND name = ? AND revoked_at IS NULL",
            (tenant_id, name),
        ).fetchone()
        return ApiKey(*row) if row else None

    def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        rows = self._db.execute(
            f"{self._KEY} WHERE tenant_id = ? AND revoked_at IS NULL ORDER BY name",
            (tenant_id,),
        )
        return [ApiKey(*row) for row in rows]

    def revoke_api_key(self, key_id: str) -> None:
        self._db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (time.time(), key_id))

    def touch_api_key(self, key_id: str, when: float) -> None:
        self._db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (when, key_id))

    # ------------------------------------------------------------------ admin keys

    def add_admin_key(self, key_id: str, tenant_id: str | None, secret_hash: str) -> None:
        self._db.execute(
            "INSERT INTO admin_keys (id, tenant_id, secret_hash, created_at) VALUES (?, ?, ?, ?)",
            (key_id, tenant_id, secret_hash, time.time()),
        )

    def admin_key_by_hash(self, secret_hash: str) -> AdminKey | None:
        row = self._db.execute(
            "SELECT id, tenant_id FROM admin_keys WHERE secret_hash = ? AND revoked_at IS NULL",
            (secret_hash,),
        ).fetchone()
        return AdminKey(*row) if row else None

    def has_operator_key(self) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM admin_keys WHERE tenant_id IS NULL AND revoked_at IS NULL"
        ).fetchone()
        return row is not None
