"""A cache of API keys by secret digest, in front of the store, that never lets a revoked or
expired key through.

Every API request authenticates: without a cache that is a query per request, the edge's top
cost after the tunnel itself. A cached key is as good as a fresh lookup because:

- **expiry and the end of a rotation's grace** are checked against the clock on every request
  (the cache keeps when each secret stops being valid, not whether it was valid when cached);
- **revocation, rotation and machine revocation** go through this wrapper (``CachingKeys``,
  ``CachingMachines``) and drop what they change before they return, so the very next request
  misses and reads the store;
- **on several edge nodes** every change is also handed to ``Changes.published``, which tells
  the other nodes and returns once they have dropped it too (``edge.cluster.broadcast``); a node
  that cannot hear the others stops trusting its cache (``KeyCache.trusted``) until it can, and
  then starts empty (docs/ARCHITECTURE.md "Several edge nodes");
- on several edge nodes an entry is also read again from the store once it is ``MAX_AGE`` old:
  a change whose broadcast failed (logged as an error) reaches every node within that time;
- a lookup that read the store while a change dropped what it changed (or the cache was
  emptied) does not cache what it read, which may be the copy from before the change
  (``KeyCache.generation``);
- nothing is cached for a digest the store did not know, so a new key works at once.

The cache is bounded (least recently used entries go first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge.store.interface import (
    AdminKeys,
    Aliases,
    Keys,
    Machines,
    Responses,
    Sessions,
    Store,
    Tenants,
    Usage,
)
from edge.store.records import ApiKey, KeyLimits, Machine, Tenant

MAX_ENTRIES = 100_000
# Seconds an entry is served on several nodes before the store is read again: the backstop for
# a change whose broadcast failed, so that a revoked key is never served longer than this.
MAX_AGE = 30.0


class Changes(Protocol):
    """Where a change other nodes must hear of goes: ``kind`` is ``key`` (``subject``: its id),
    ``machine`` (``tenant_id/machine_id``) or ``aliases`` (the tenant id)."""

    async def published(self, kind: str, subject: str) -> None: ...


class NoChanges:
    """One node: nobody else to tell."""

    async def published(self, kind: str, subject: str) -> None:
        return None


@dataclass(slots=True)
class _Entry:
    key: ApiKey
    secret_expires_at: float | None  # the end of this secret's grace, if it was rotated out
    cached_at: float  # the cache's clock (monotonic)


class KeyCache:
    """Digest → key, with each secret's own expiry; ``drop_key`` forgets every secret of a key."""

    def __init__(
        self,
        max_entries: int = MAX_ENTRIES,
        max_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``max_age``: seconds an entry is served before the store is read again; ``None`` (one
        node, where every change drops what it changes directly) for no limit."""
        self._max_entries = max_entries
        self.max_age = max_age
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._digests_of: dict[str, set[str]] = {}  # key id → its cached digests
        # False while this node may miss other nodes' changes: nothing is served from the cache
        # nor put in it (every lookup reads the store).
        self.trusted = True
        # Moves on every drop, clear and change of trust: a lookup that read the store while it
        # moved may hold the copy from before a change, and must not cache it (``put``).
        self.generation = 0

    def trust(self, trusted: bool) -> None:
        """Start (emptied first: changes may have been missed) or stop trusting the cache."""
        self.clear()
        self.trusted = trusted

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()
        self._digests_of.clear()

    def get(self, secret_hash: str, now: float) -> ApiKey | None:
        if not self.trusted:
            return None
        entry = self._entries.get(secret_hash)
        if entry is None:
            return None
        if entry.secret_expires_at is not None and entry.secret_expires_at <= now:
            self._forget(secret_hash)  # past its grace: the store will say so too
            return None
        if self.max_age is not None and self._clock() - entry.cached_at >= self.max_age:
            self._forget(secret_hash)  # a change to it may have been missed: read it again
            return None
        self._entries.move_to_end(secret_hash)
        return entry.key

    def put(
        self,
        secret_hash: str,
        key: ApiKey,
        secret_expires_at: float | None,
        generation: int | None = None,
    ) -> None:
        """Cache ``key``; nothing when ``generation`` (``self.generation`` before the store was
        read) is no longer current: what was read may predate a change."""
        if not self.trusted or (generation is not None and generation != self.generation):
            return
        self._entries[secret_hash] = _Entry(key, secret_expires_at, self._clock())
        self._entries.move_to_end(secret_hash)
        self._digests_of.setdefault(key.id, set()).add(secret_hash)
        while len(self._entries) > self._max_entries:
            self._forget(next(iter(self._entries)))

    def touched(self, key_id: str, when: float) -> None:
        """The key's last use was written: the cached copies say so, so that the next write is
        a minute away again."""
        for digest in self._digests_of.get(key_id, ()):
            entry = self._entries[digest]
            entry.key = _with_last_used(entry.key, when)

    def drop_key(self, key_id: str) -> None:
        self.generation += 1
        for digest in self._digests_of.pop(key_id, set()):
            self._entries.pop(digest, None)

    def drop_keys_bound_to(self, machine_id: str) -> None:
        self.generation += 1
        bound = {e.key.id for e in self._entries.values() if e.key.limits.machine_id == machine_id}
        for key_id in bound:
            self.drop_key(key_id)

    def __len__(self) -> int:
        return len(self._entries)

    def _forget(self, secret_hash: str) -> None:
        entry = self._entries.pop(secret_hash)
        digests = self._digests_of.get(entry.key.id)
        if digests is not None:
            digests.discard(secret_hash)
            if not digests:
                del self._digests_of[entry.key.id]


def _with_last_used(key: ApiKey, when: float) -> ApiKey:
    return ApiKey(
        key.id,
        key.tenant_id,
        key.name,
        key.prefix,
        key.created_at,
        key.expires_at,
        key.revoked_at,
        when,
        key.limits,
    )


class CachingKeys:
    """``Keys`` with ``by_hash`` served from the cache; every change drops what it changes."""

    def __init__(self, inner: Keys, cache: KeyCache, changes: Changes) -> None:
        self._inner = inner
        self._cache = cache
        self._changes = changes

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
        return await self._inner.add(
            key_id, tenant_id, name, prefix, secret_hash, expires_at, limits
        )

    async def by_hash(self, secret_hash: str, now: float | None = None) -> ApiKey | None:
        if now is not None and (cached := self._cache.get(secret_hash, now)) is not None:
            return cached
        generation = self._cache.generation
        found = await self._inner.secret(secret_hash)
        if found is None:
            return None
        key, secret_expires_at = found
        self._cache.put(secret_hash, key, secret_expires_at, generation)
        if now is not None and secret_expires_at is not None and secret_expires_at <= now:
            return None
        return key

    async def secret(self, secret_hash: str) -> tuple[ApiKey, float | None] | None:
        return await self._inner.secret(secret_hash)

    async def by_name(self, tenant_id: str, name: str) -> ApiKey | None:
        return await self._inner.by_name(tenant_id, name)

    async def of_tenant(self, tenant_id: str) -> list[ApiKey]:
        return await self._inner.of_tenant(tenant_id)

    async def rotate(self, key_id: str, prefix: str, secret_hash: str, grace_until: float) -> None:
        await self._inner.rotate(key_id, prefix, secret_hash, grace_until)
        self._cache.drop_key(key_id)
        await self._changes.published("key", key_id)

    async def revoke(self, key_id: str) -> None:
        await self._inner.revoke(key_id)
        self._cache.drop_key(key_id)
        await self._changes.published("key", key_id)

    async def touch(self, key_id: str, when: float) -> None:
        await self._inner.touch(key_id, when)
        self._cache.touched(key_id, when)


class CachingMachines:
    """``Machines`` whose revocation drops the keys bound to the machine from the cache (and
    tells the other nodes, which close the machine's tunnels too)."""

    def __init__(self, inner: Machines, cache: KeyCache, changes: Changes) -> None:
        self._inner = inner
        self._cache = cache
        self._changes = changes

    async def add_pairing_code(
        self, code_hash: str, tenant_id: str, machine_name: str, expires_at: float
    ) -> None:
        await self._inner.add_pairing_code(code_hash, tenant_id, machine_name, expires_at)

    async def redeem_pairing_code(
        self, code_hash: str, machine_id: str, public_key: bytes
    ) -> Machine | None:
        return await self._inner.redeem_pairing_code(code_hash, machine_id, public_key)

    async def by_id(self, machine_id: str) -> Machine | None:
        return await self._inner.by_id(machine_id)

    async def by_name(self, tenant_id: str, name: str) -> Machine | None:
        return await self._inner.by_name(tenant_id, name)

    async def of_tenant(self, tenant_id: str) -> list[Machine]:
        return await self._inner.of_tenant(tenant_id)

    async def revoke(self, machine_id: str) -> list[str]:
        machine = await self._inner.by_id(machine_id)
        revoked = await self._inner.revoke(machine_id)
        self._cache.drop_keys_bound_to(machine_id)
        if machine is not None:
            await self._changes.published("machine", f"{machine.tenant_id}/{machine_id}")
        return revoked


class CachingAliases:
    """``Aliases`` whose changes are told to the other nodes (each caches its tenants')."""

    def __init__(self, inner: Aliases, changes: Changes) -> None:
        self._inner = inner
        self._changes = changes

    async def set(self, tenant_id: str, alias: str, model: str) -> None:
        await self._inner.set(tenant_id, alias, model)
        await self._changes.published("aliases", tenant_id)

    async def delete(self, tenant_id: str, alias: str) -> bool:
        deleted = await self._inner.delete(tenant_id, alias)
        await self._changes.published("aliases", tenant_id)
        return deleted

    async def of_tenant(self, tenant_id: str) -> dict[str, str]:
        return await self._inner.of_tenant(tenant_id)

    def forget(self, tenant_id: str | None = None) -> None:
        self._inner.forget(tenant_id)


class CachingTenants:
    """``Tenants`` with ``by_id`` cached: a tenant's id and slug never change."""

    def __init__(self, inner: Tenants) -> None:
        self._inner = inner
        self._by_id: dict[str, Tenant] = {}

    async def create(self, tenant_id: str, slug: str) -> Tenant:
        return await self._inner.create(tenant_id, slug)

    async def by_slug(self, slug: str) -> Tenant | None:
        return await self._inner.by_slug(slug)

    async def by_id(self, tenant_id: str) -> Tenant | None:
        tenant = self._by_id.get(tenant_id)
        if tenant is None and (tenant := await self._inner.by_id(tenant_id)) is not None:
            self._by_id[tenant_id] = tenant
        return tenant

    async def all(self) -> list[Tenant]:
        return await self._inner.all()

    async def set_store_responses(self, tenant_id: str, enabled: bool) -> int:
        return await self._inner.set_store_responses(tenant_id, enabled)

    async def stores_responses(self, tenant_id: str) -> bool:
        return await self._inner.stores_responses(tenant_id)


class CachedStore:
    """A ``Store`` whose hot lookups (a key by its secret, a tenant by its id) are cached, and
    whose changes to what any node caches are handed to ``changes`` (set by the cluster when
    there are several nodes)."""

    def __init__(self, inner: Store, cache: KeyCache | None = None) -> None:
        self.inner = inner
        self.key_cache = cache or KeyCache()
        self.changes: Changes = NoChanges()
        relay = _Relay(self)
        self._keys = CachingKeys(inner.keys, self.key_cache, relay)
        self._machines = CachingMachines(inner.machines, self.key_cache, relay)
        self._tenants = CachingTenants(inner.tenants)
        self._aliases = CachingAliases(inner.aliases, relay)

    @property
    def tenants(self) -> Tenants:
        return self._tenants

    @property
    def machines(self) -> Machines:
        return self._machines

    @property
    def keys(self) -> Keys:
        return self._keys

    @property
    def admin_keys(self) -> AdminKeys:
        return self.inner.admin_keys

    @property
    def usage(self) -> Usage:
        return self.inner.usage

    @property
    def aliases(self) -> Aliases:
        return self._aliases

    @property
    def responses(self) -> Responses:
        return self.inner.responses

    @property
    def sessions(self) -> Sessions:
        return self.inner.sessions

    @property
    def schema_version(self) -> int:
        return self.inner.schema_version

    async def close(self) -> None:
        await self.inner.close()


class _Relay:
    """Hands changes to whatever ``CachedStore.changes`` is when they happen."""

    def __init__(self, store: CachedStore) -> None:
        self._store = store

    async def published(self, kind: str, subject: str) -> None:
        await self._store.changes.published(kind, subject)
