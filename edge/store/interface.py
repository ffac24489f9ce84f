"""The store's interface: one group of queries per group of tables (docs/ARCHITECTURE.md "State").

Every method is a coroutine, so that a store on a network database (PostgreSQL) and the embedded
one (SQLite, whose indexed queries take microseconds and run on the loop) serve the same callers.
Secrets never reach the store in the clear: callers pass digests. Times are Unix seconds from the
store's clock, which tests may replace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from edge.store.records import (
    AdminKey,
    ApiKey,
    AuditQuery,
    AuditRow,
    ConsoleSession,
    KeyLimits,
    Machine,
    ModelUsageRow,
    SeriesPoint,
    Tenant,
    UsageIncrement,
    UsageRow,
)

Clock = Callable[[], float]  # Unix seconds


class Tenants(Protocol):
    async def create(self, tenant_id: str, slug: str) -> Tenant:
        """A new tenant; ``Conflict`` when the slug is taken."""

    async def by_slug(self, slug: str) -> Tenant | None: ...
    async def by_id(self, tenant_id: str) -> Tenant | None: ...
    async def all(self) -> list[Tenant]: ...

    async def set_store_responses(self, tenant_id: str, enabled: bool) -> int:
        """Turn the tenant's response storage on or off; off deletes what was kept (nothing
        could read or delete it any more). Returns how many responses went."""

    async def stores_responses(self, tenant_id: str) -> bool: ...


class Machines(Protocol):
    async def add_pairing_code(
        self, code_hash: str, tenant_id: str, machine_name: str, expires_at: float
    ) -> None:
        """``Conflict`` when a live machine already has that name."""

    async def redeem_pairing_code(
        self, code_hash: str, machine_id: str, public_key: bytes
    ) -> Machine | None:
        """Spend a live code and create its machine, atomically; ``None`` if the code is not
        live (unknown, expired or used: a code works once, however many try at once)."""

    async def by_id(self, machine_id: str) -> Machine | None: ...

    async def by_name(self, tenant_id: str, name: str) -> Machine | None:
        """The live (not revoked) machine of that name."""

    async def of_tenant(self, tenant_id: str) -> list[Machine]:
        """The tenant's live machines, by name."""

    async def revoke(self, machine_id: str) -> list[str]:
        """Revoke the machine and the keys bound to it, atomically; returns those keys' names."""


class Keys(Protocol):
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
        """``Conflict`` when the tenant has a live key of that name."""

    async def by_hash(self, secret_hash: str, now: float | None = None) -> ApiKey | None:
        """The key one of whose live secrets has this digest (a rotated-out secret is live
        until its grace ends). Revoked keys are returned too: the caller tells the client
        why."""

    async def secret(self, secret_hash: str) -> tuple[ApiKey, float | None] | None:
        """The key of this secret digest, live or not, and when the secret stops being valid
        (the end of a rotation's grace; ``None``: while the key lives)."""

    async def by_name(self, tenant_id: str, name: str) -> ApiKey | None:
        """The live key of that name."""

    async def of_tenant(self, tenant_id: str) -> list[ApiKey]: ...

    async def rotate(self, key_id: str, prefix: str, secret_hash: str, grace_until: float) -> None:
        """Add a new secret; the ones in use now stay valid until ``grace_until`` (a rotation
        during an earlier grace never extends it)."""

    async def revoke(self, key_id: str) -> None: ...
    async def touch(self, key_id: str, when: float) -> None: ...


class AdminKeys(Protocol):
    async def add(
        self, key_id: str, tenant_id: str | None, secret_hash: str, name: str | None = None
    ) -> AdminKey:
        """``tenant_id`` None: the operator. ``Conflict`` when the name is taken."""

    async def by_hash(self, secret_hash: str) -> AdminKey | None: ...
    async def of_tenant(self, tenant_id: str) -> list[AdminKey]: ...

    async def revoke(self, tenant_id: str, name: str) -> bool:
        """Revoke a tenant admin key; ``False`` when there is no live one of that name."""

    async def has_operator(self) -> bool: ...


class Usage(Protocol):
    async def record(
        self, audit_rows: Iterable[AuditRow], usage_rows: Iterable[UsageIncrement]
    ) -> None:
        """Write a batch of audit events and usage increments in one transaction: one commit
        per flush, not per request. ``StoreUnavailable`` when the database cannot be written
        now, ``RejectedRow`` when some row never can be; either way nothing was written."""

    async def tokens_used(self, key_id: str, since_day: str) -> int:
        """Prompt + completion tokens the key used from ``since_day`` (inclusive) on."""

    async def daily(
        self, tenant_id: str, since_day: str, key_id: str | None = None
    ) -> list[UsageRow]: ...

    async def audit_events(
        self, tenant_id: str, since: float, key_id: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """The tenant's newest events first, as maps of ``AUDIT_COLUMNS``."""

    async def prune_audit(self, before: float) -> int:
        """Delete audit events older than ``before``; returns how many went."""

    async def audit_page(
        self, tenant_id: str, query: AuditQuery, limit: int
    ) -> list[dict[str, Any]]:
        """The tenant's events that ``query`` selects, newest first (by ``at``, then ``id``),
        as maps of ``AUDIT_COLUMNS`` plus ``id``: a number that orders events of the same
        ``at``, which ``AuditQuery.before`` pages on."""

    async def series(
        self, since: float, until: float, bucket_seconds: int, tenant_id: str | None = None
    ) -> list[SeriesPoint]:
        """API requests (``kind = 'request'``) from ``since`` to ``until`` (exclusive) counted
        per tenant (only ``tenant_id``'s when given) and per bucket of ``bucket_seconds``
        starting at ``since``; buckets without requests are left out. By tenant, then time."""

    async def daily_by_model(
        self, tenant_id: str, since: float, key_id: str | None = None
    ) -> list[ModelUsageRow]:
        """The tenant's API requests from ``since`` on, per UTC day, key and model (of one
        key when given), from the audit events. By day, key name, model."""


class Aliases(Protocol):
    async def set(self, tenant_id: str, alias: str, model: str) -> None:
        """Point ``alias`` at ``model`` (replacing what it pointed at)."""

    async def delete(self, tenant_id: str, alias: str) -> bool: ...

    async def of_tenant(self, tenant_id: str) -> dict[str, str]:
        """Alias → model. Read on every request: implementations cache it."""


class Responses(Protocol):
    async def save(
        self,
        response_id: str,
        tenant_id: str,
        key_id: str,
        created_at: float,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
    ) -> None: ...

    async def get(
        self, tenant_id: str, response_id: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The tenant's stored response and its input items; ``None`` for another tenant's."""

    async def delete(self, tenant_id: str, response_id: str) -> bool: ...


class Sessions(Protocol):
    """Console sessions (edge/console): stored by a digest of their id, never the id."""

    async def create(self, session_hash: str, admin_key_id: str, now: float) -> None: ...

    async def get(self, session_hash: str) -> ConsoleSession | None:
        """The session with its admin key; ``None`` when there is none or its admin key was
        revoked (revoking an admin key ends its sessions at once). Expiry is the caller's."""

    async def touch(self, session_hash: str, now: float) -> None:
        """The session was used at ``now`` (its inactivity timeout starts again)."""

    async def delete(self, session_hash: str) -> bool: ...

    async def prune(self, idle_before: float, created_before: float) -> int:
        """Delete sessions last used before ``idle_before``, made before ``created_before``, or
        of a revoked admin key; returns how many went."""


class Store(Protocol):
    # Read-only properties, so that an implementation's own query classes satisfy them.
    @property
    def tenants(self) -> Tenants: ...
    @property
    def machines(self) -> Machines: ...
    @property
    def keys(self) -> Keys: ...
    @property
    def admin_keys(self) -> AdminKeys: ...
    @property
    def usage(self) -> Usage: ...
    @property
    def aliases(self) -> Aliases: ...
    @property
    def responses(self) -> Responses: ...
    @property
    def sessions(self) -> Sessions: ...

    @property
    def schema_version(self) -> int: ...

    async def close(self) -> None: ...
