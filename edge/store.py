"""The edge's state in SQLite (WAL), behind one small interface (DESIGN.md "State").

Queries are short and indexed, so they run on the event loop: a lookup costs microseconds, less
than a thread hop. Schema changes are numbered migrations applied in order and recorded in
``PRAGMA user_version``. Secrets never reach this module in the clear: callers pass digests.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    # 2: key limits and machine binding; secrets in their own table so that a rotated key keeps
    # its old secret through a grace period; usage per key and day; audit events. api_keys is
    # rebuilt without its secret column (SQLite cannot drop a UNIQUE column in place).
    """
    CREATE TEMP TABLE old_key_secrets AS SELECT id, secret_hash, created_at FROM api_keys;
    CREATE TABLE api_keys_v2 (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL,
        revoked_at REAL,
        last_used_at REAL,
        models TEXT,  -- JSON list of model names; NULL: every model
        budget_tokens INTEGER,
        budget_period TEXT,  -- 'day' | 'week' | 'month' (UTC)
        rpm INTEGER,
        tpm INTEGER,
        machine_id TEXT REFERENCES machines(id)  -- requests route only to this machine
    );
    INSERT INTO api_keys_v2 (id, tenant_id, name, prefix, created_at, expires_at, revoked_at,
                             last_used_at)
        SELECT id, tenant_id, name, prefix, created_at, expires_at, revoked_at, last_used_at
        FROM api_keys;
    DROP TABLE api_keys;
    ALTER TABLE api_keys_v2 RENAME TO api_keys;
    CREATE UNIQUE INDEX api_keys_live_name ON api_keys(tenant_id, name) WHERE revoked_at IS NULL;
    CREATE INDEX api_keys_machine ON api_keys(machine_id) WHERE machine_id IS NOT NULL;
    CREATE TABLE api_key_secrets (
        secret_hash TEXT PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES api_keys(id),
        created_at REAL NOT NULL,
        expires_at REAL  -- set by a rotation: the end of this secret's grace period
    ) WITHOUT ROWID;
    CREATE INDEX api_key_secrets_key ON api_key_secrets(key_id);
    INSERT INTO api_key_secrets (secret_hash, key_id, created_at)
        SELECT secret_hash, id, created_at FROM old_key_secrets;
    DROP TABLE old_key_secrets;
    CREATE TABLE usage_daily (
        key_id TEXT NOT NULL REFERENCES api_keys(id),
        day TEXT NOT NULL,  -- UTC date the request started, YYYY-MM-DD
        tenant_id TEXT NOT NULL,
        requests INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        PRIMARY KEY (key_id, day)
    ) WITHOUT ROWID;
    CREATE INDEX usage_daily_tenant ON usage_daily(tenant_id, day);
    CREATE TABLE audit_events (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        at REAL NOT NULL,
        kind TEXT NOT NULL,  -- 'request' | 'admin'
        actor TEXT NOT NULL,  -- the key's name, or 'operator' / 'tenant-admin' for admin actions
        action TEXT NOT NULL,  -- 'POST /v1/chat/completions', 'key.rotated', …
        subject TEXT,  -- what an admin action acted on
        key_id TEXT,
        machine TEXT,
        model TEXT,
        status INTEGER,
        error_code TEXT,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        ttft_ms REAL,
        duration_ms REAL,
        client TEXT,
        user_agent TEXT
    );
    CREATE INDEX audit_events_tenant ON audit_events(tenant_id, at);
    CREATE INDEX audit_events_at ON audit_events(at);
    ALTER TABLE admin_keys ADD COLUMN name TEXT;  -- NULL for the operator key
    CREATE UNIQUE INDEX admin_keys_live_name ON admin_keys(tenant_id, name)
        WHERE revoked_at IS NULL AND name IS NOT NULL;
    """,
    # 3: per-tenant model aliases, so that clients with fixed model names work (gpt-4o → qwen3).
    """
    CREATE TABLE model_aliases (
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        alias TEXT NOT NULL,
        model TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (tenant_id, alias)
    ) WITHOUT ROWID;
    """,
    # 4: opt-in storage of Responses API responses (off by default: content at rest is the
    # exception), with the conversation items a later response continues from.
    """
    ALTER TABLE tenants ADD COLUMN store_responses INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        key_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        response TEXT NOT NULL,  -- the response object, JSON
        input_items TEXT NOT NULL  -- JSON list: the conversation before the response's output
    );
    CREATE INDEX responses_tenant ON responses(tenant_id, created_at);
    """,
)

AUDIT_COLUMNS = (
    "tenant_id",
    "at",
    "kind",
    "actor",
    "action",
    "subject",
    "key_id",
    "machine",
    "model",
    "status",
    "error_code",
    "prompt_tokens",
    "completion_tokens",
    "ttft_ms",
    "duration_ms",
    "client",
    "user_agent",
)
# Built from the constant column names above, never from input.
_AUDIT_INSERT = (
    f"INSERT INTO audit_events ({', '.join(AUDIT_COLUMNS)})"  # noqa: S608
    f" VALUES ({', '.join('?' for _ in AUDIT_COLUMNS)})"
)
_AUDIT_SELECT = f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_events"  # noqa: S608


class StoreError(Exception):
    """Root of the store's errors."""


class Conflict(StoreError):
    """The name is already taken."""


class StoreUnavailable(StoreError):
    """The database cannot be written now (locked, disk full, I/O error); retrying may work."""


class RejectedRow(StoreError):
    """A row the database refuses whatever the moment (a number out of range, a wrong type):
    retrying it can never work."""


# What the sqlite3 module raises for a row it can never store, as opposed to a moment it cannot.
_ROW_ERRORS = (
    OverflowError,
    ValueError,
    TypeError,
    sqlite3.DataError,
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
)


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
class KeyLimits:
    """What a key may do; ``None`` everywhere means no limit."""

    models: tuple[str, ...] | None = None
    budget_tokens: int | None = None
    budget_period: str | None = None  # 'day' | 'week' | 'month', UTC
    rpm: int | None = None
    tpm: int | None = None
    machine_id: str | None = None  # bound: requests route only to this machine


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
    limits: KeyLimits = field(default_factory=KeyLimits)


@dataclass(frozen=True, slots=True)
class UsageRow:
    key_name: str
    day: str
    requests: int
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class AdminKey:
    id: str
    tenant_id: str | None  # None: the operator
    name: str | None = None
    created_at: float = 0.0

    @property
    def actor(self) -> str:
        """Who acted, as the audit trail names it."""
        return "operator" if self.tenant_id is None else f"admin:{self.name}"


class Store:
    """All persistent state. One instance per edge process; not shared across threads."""

    def __init__(self, path: Path | str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._aliases: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on *any* exception: the connection is
        shared by every tenant, so a transaction left open by one bad request would wedge them
        all. An ``IntegrityError`` inside becomes ``Conflict`` for the caller to name."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

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
        try:
            with self._transaction() as db:
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

    def revoke_machine(self, machine_id: str) -> list[str]:
        """Revoke the machine and the keys bound to it, atomically; returns those keys' names."""
        now = time.time()
        with self._transaction() as db:
            db.execute("UPDATE machines SET revoked_at = ? WHERE id = ?", (now, machine_id))
            rows = db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE machine_id = ? AND revoked_at IS NULL"
                " RETURNING name",
                (now, machine_id),
            ).fetchall()
        return sorted(name for (name,) in rows)

    # ------------------------------------------------------------------ API keys

    _KEY = (
        "SELECT k.id, k.tenant_id, k.name, k.prefix, k.created_at, k.expires_at, k.revoked_at,"
        " k.last_used_at, k.models, k.budget_tokens, k.budget_period, k.rpm, k.tpm, k.machine_id"
        " FROM api_keys AS k"
    )

    @staticmethod
    def _api_key(row: tuple[Any, ...]) -> ApiKey:
        models = tuple(json.loads(row[8])) if row[8] is not None else None
        key_id, tenant_id, name, prefix, created, expires, revoked, last_used = row[:8]
        limits = KeyLimits(models, *row[9:])
        return ApiKey(key_id, tenant_id, name, prefix, created, expires, revoked, last_used, limits)

    def add_api_key(
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
        now = time.time()
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO api_keys (id, tenant_id, name, prefix, created_at, expires_at,"
                    " models, budget_tokens, budget_period, rpm, tpm, machine_id)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key_id,
                        tenant_id,
                        name,
                        prefix,
                        now,
                        expires_at,
                        models,
                        limits.budget_tokens,
                        limits.budget_period,
                        limits.rpm,
                        limits.tpm,
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

    def api_key_by_hash(self, secret_hash: str, now: float | None = None) -> ApiKey | None:
        """The key one of whose live secrets has this digest (a rotated-out secret is live until
        its grace ends). Revoked keys are returned too: the caller tells the client why."""
        now = time.time() if now is None else now
        row = self._db.execute(
            f"{self._KEY} JOIN api_key_secrets AS s ON s.key_id = k.id"
            " WHERE s.secret_hash = ? AND (s.expires_at IS NULL OR s.expires_at > ?)",
            (secret_hash, now),
        ).fetchone()
        return self._api_key(row) if row else None

    def api_key_by_name(self, tenant_id: str, name: str) -> ApiKey | None:
        row = self._db.execute(
            f"{self._KEY} WHERE k.tenant_id = ? AND k.name = ? AND k.revoked_at IS NULL",
            (tenant_id, name),
        ).fetchone()
        return self._api_key(row) if row else None

    def list_api_keys(self, tenant_id: str) -> list[ApiKey]:
        rows = self._db.execute(
            f"{self._KEY} WHERE k.tenant_id = ? AND k.revoked_at IS NULL ORDER BY k.name",
            (tenant_id,),
        )
        return [self._api_key(row) for row in rows]

    def rotate_api_key(
        self, key_id: str, prefix: str, secret_hash: str, grace_until: float
    ) -> None:
        """Add a new secret; the ones in use now stay valid until ``grace_until`` (a rotation
        during an earlier grace never extends it)."""
        now = time.time()
        with self._transaction() as db:
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

    def revoke_api_key(self, key_id: str) -> None:
        self._db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?", (time.time(), key_id))

    def touch_api_key(self, key_id: str, when: float) -> None:
        self._db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (when, key_id))

    # ------------------------------------------------------------------ usage and audit

    def record(
        self,
        audit_rows: Iterable[tuple[Any, ...]],
        usage_rows: Iterable[tuple[str, str, str, int, int, int]],
    ) -> None:
        """Write a batch of audit events (tuples in ``AUDIT_COLUMNS`` order) and usage increments
        ``(key_id, day, tenant_id, requests, prompt_tokens, completion_tokens)`` in one
        transaction: one commit per flush, not per request. ``StoreUnavailable`` when the
        database cannot be written now, ``RejectedRow`` when some row never can be; either way
        nothing of the batch was written."""
        try:
            self._record(audit_rows, usage_rows)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc
        except _ROW_ERRORS as exc:
            raise RejectedRow(f"{type(exc).__name__}: {exc}") from exc

    def _record(
        self,
        audit_rows: Iterable[tuple[Any, ...]],
        usage_rows: Iterable[tuple[str, str, str, int, int, int]],
    ) -> None:
        with self._transaction() as db:
            db.executemany(_AUDIT_INSERT, audit_rows)
            db.executemany(
                "INSERT INTO usage_daily (key_id, day, tenant_id, requests, prompt_tokens,"
                " completion_tokens) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (key_id, day) DO UPDATE SET"
                " requests = requests + excluded.requests,"
                " prompt_tokens = prompt_tokens + excluded.prompt_tokens,"
                " completion_tokens = completion_tokens + excluded.completion_tokens",
                usage_rows,
            )

    def tokens_used(self, key_id: str, since_day: str) -> int:
        """Prompt + completion tokens the key used from ``since_day`` (inclusive) on."""
        (total,) = self._db.execute(
            "SELECT COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM usage_daily"
            " WHERE key_id = ? AND day >= ?",
            (key_id, since_day),
        ).fetchone()
        return int(total)

    def usage(self, tenant_id: str, since_day: str, key_id: str | None = None) -> list[UsageRow]:
        rows = self._db.execute(
            "SELECT k.name, u.day, u.requests, u.prompt_tokens, u.completion_tokens"
            " FROM usage_daily AS u JOIN api_keys AS k ON k.id = u.key_id"
            " WHERE u.tenant_id = ? AND u.day >= ? AND (? IS NULL OR u.key_id = ?)"
            " ORDER BY u.day, k.name",
            (tenant_id, since_day, key_id, key_id),
        )
        return [UsageRow(*row) for row in rows]

    def audit_events(
        self, tenant_id: str, since: float, key_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """The tenant's newest events first."""
        cursor = self._db.execute(
            _AUDIT_SELECT + " WHERE tenant_id = ? AND at >= ? AND (? IS NULL OR key_id = ?)"
            " ORDER BY at DESC, id DESC LIMIT ?",
            (tenant_id, since, key_id, key_id, limit),
        )
        return [dict(zip(AUDIT_COLUMNS, row, strict=True)) for row in cursor]

    def prune_audit(self, before: float) -> int:
        """Delete audit events older than ``before``; returns how many went."""
        try:
            return self._db.execute("DELETE FROM audit_events WHERE at < ?", (before,)).rowcount
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc

    # ------------------------------------------------------------------ model aliases

    def set_alias(self, tenant_id: str, alias: str, model: str) -> None:
        """Point ``alias`` at ``model`` (replacing what it pointed at)."""
        self._aliases.pop(tenant_id, None)
        self._db.execute(
            "INSERT INTO model_aliases (tenant_id, alias, model, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (tenant_id, alias) DO UPDATE SET model = excluded.model",
            (tenant_id, alias, model, time.time()),
        )

    def delete_alias(self, tenant_id: str, alias: str) -> bool:
        self._aliases.pop(tenant_id, None)
        cursor = self._db.execute(
            "DELETE FROM model_aliases WHERE tenant_id = ? AND alias = ?", (tenant_id, alias)
        )
        return cursor.rowcount > 0

    def aliases(self, tenant_id: str) -> dict[str, str]:
        """The tenant's aliases, cached: every request reads them, admins rarely change them
        (and only through this store, in this process)."""
        cached = self._aliases.get(tenant_id)
        if cached is None:
            rows = self._db.execute(
                "SELECT alias, model FROM model_aliases WHERE tenant_id = ? ORDER BY alias",
                (tenant_id,),
            )
            cached = self._aliases[tenant_id] = dict(rows.fetchall())
        return cached

    # ------------------------------------------------------------------ admin keys

    def add_admin_key(
        self, key_id: str, tenant_id: str | None, secret_hash: str, name: str | None = None
    ) -> AdminKey:
        now = time.time()
        try:
            self._db.execute(
                "INSERT INTO admin_keys (id, tenant_id, secret_hash, created_at, name)"
                " VALUES (?, ?, ?, ?, ?)",
                (key_id, tenant_id, secret_hash, now, name),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"admin key {name!r} already exists") from None
        return AdminKey(key_id, tenant_id, name, now)

    _ADMIN = "SELECT id, tenant_id, name, created_at FROM admin_keys"

    def admin_key_by_hash(self, secret_hash: str) -> AdminKey | None:
        row = self._db.execute(
            f"{self._ADMIN} WHERE secret_hash = ? AND revoked_at IS NULL", (secret_hash,)
        ).fetchone()
        return AdminKey(*row) if row else None

    def tenant_admin_keys(self, tenant_id: str) -> list[AdminKey]:
        rows = self._db.execute(
            f"{self._ADMIN} WHERE tenant_id = ? AND revoked_at IS NULL ORDER BY name",
            (tenant_id,),
        )
        return [AdminKey(*row) for row in rows]

    def revoke_tenant_admin_key(self, tenant_id: str, name: str) -> bool:
        cursor = self._db.execute(
            "UPDATE admin_keys SET revoked_at = ? WHERE tenant_id = ? AND name = ?"
            " AND revoked_at IS NULL",
            (time.time(), tenant_id, name),
        )
        return cursor.rowcount > 0

    def has_operator_key(self) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM admin_keys WHERE tenant_id IS NULL AND revoked_at IS NULL"
        ).fetchone()
        return row is not None

    # ------------------------------------------------------------------ stored responses

    def set_store_responses(self, tenant_id: str, enabled: bool) -> int:
        """Turn the tenant's response storage on or off; turning it off deletes what was kept
        (nothing could read or delete it any more). Returns how many responses went."""
        with self._transaction() as db:
            db.execute(
                "UPDATE tenants SET store_responses = ? WHERE id = ?", (int(enabled), tenant_id)
            )
            deleted = 0
            if not enabled:
                deleted = db.execute(
                    "DELETE FROM responses WHERE tenant_id = ?", (tenant_id,)
                ).rowcount
        return deleted

    def stores_responses(self, tenant_id: str) -> bool:
        row = self._db.execute(
            "SELECT store_responses FROM tenants WHERE id = ?", (tenant_id,)
        ).fetchone()
        return bool(row and row[0])

    def save_response(
        self,
        response_id: str,
        tenant_id: str,
        key_id: str,
        created_at: float,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
    ) -> None:
        self._db.execute(
            "INSERT INTO responses (id, tenant_id, key_id, created_at, response, input_items)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                response_id,
                tenant_id,
                key_id,
                created_at,
                json.dumps(response),
                json.dumps(input_items),
            ),
        )

    def get_response(
        self, tenant_id: str, response_id: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The tenant's stored response and its input items; ``None`` for another tenant's."""
        row = self._db.execute(
            "SELECT response, input_items FROM responses WHERE tenant_id = ? AND id = ?",
            (tenant_id, response_id),
        ).fetchone()
        return (json.loads(row[0]), json.loads(row[1])) if row else None

    def delete_response(self, tenant_id: str, response_id: str) -> bool:
        cursor = self._db.execute(
            "DELETE FROM responses WHERE tenant_id = ? AND id = ?", (tenant_id, response_id)
        )
        return cursor.rowcount > 0
