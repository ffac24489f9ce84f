"""The key cache never lets a revoked, rotated-out or expired secret through, and serves the
rest without a query (edge/store/cache.py); in front of every store (conftest.py)."""

from __future__ import annotations

import asyncio
import time

import pytest

from edge.store import (
    AdminKeys,
    Aliases,
    ApiKey,
    KeyLimits,
    Keys,
    Machines,
    Responses,
    Sessions,
    Store,
    Tenants,
    Usage,
)
from edge.store.cache import CachedStore, KeyCache

NOW = time.time()  # what the tests pass as the request's time


class CountingKeys:
    """A store's keys, counting the lookups that reach the store."""

    def __init__(self, inner: Keys) -> None:
        self._inner = inner
        self.lookups = 0
        # When set, a lookup reads the store, then waits for the gate (``reading`` says it has
        # read): a change can then happen between the read and the caching.
        self.gate: asyncio.Event | None = None
        self.reading = asyncio.Event()

    async def secret(self, secret_hash: str) -> tuple[ApiKey, float | None] | None:
        self.lookups += 1
        found = await self._inner.secret(secret_hash)
        if self.gate is not None:
            self.reading.set()
            await self.gate.wait()
        return found

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
        return await self._inner.by_hash(secret_hash, now)

    async def by_name(self, tenant_id: str, name: str) -> ApiKey | None:
        return await self._inner.by_name(tenant_id, name)

    async def of_tenant(self, tenant_id: str) -> list[ApiKey]:
        return await self._inner.of_tenant(tenant_id)

    async def rotate(self, key_id: str, prefix: str, secret_hash: str, grace_until: float) -> None:
        await self._inner.rotate(key_id, prefix, secret_hash, grace_until)

    async def revoke(self, key_id: str) -> None:
        await self._inner.revoke(key_id)

    async def touch(self, key_id: str, when: float) -> None:
        await self._inner.touch(key_id, when)


class Counting:
    """A real store whose key lookups are counted."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.counting_keys = CountingKeys(inner.keys)

    @property
    def lookups(self) -> int:
        return self.counting_keys.lookups

    @property
    def keys(self) -> Keys:
        return self.counting_keys

    @property
    def tenants(self) -> Tenants:
        return self._inner.tenants

    @property
    def machines(self) -> Machines:
        return self._inner.machines

    @property
    def admin_keys(self) -> AdminKeys:
        return self._inner.admin_keys

    @property
    def usage(self) -> Usage:
        return self._inner.usage

    @property
    def aliases(self) -> Aliases:
        return self._inner.aliases

    @property
    def responses(self) -> Responses:
        return self._inner.responses

    @property
    def sessions(self) -> Sessions:
        return self._inner.sessions

    @property
    def schema_version(self) -> int:
        return self._inner.schema_version

    async def close(self) -> None:
        await self._inner.close()


@pytest.fixture
async def stores(store: Store) -> tuple[Counting, CachedStore]:
    inner = Counting(store)
    cached = CachedStore(inner)
    await cached.tenants.create("t1", "acme")
    # Expiry from the clock now, not at collection: the suite may reach this file minutes later.
    await cached.machines.add_pairing_code("c", "t1", "gpu-1", time.time() + 60)
    await cached.machines.redeem_pairing_code("c", "m1", b"k" * 32)
    await cached.keys.add("k1", "t1", "free", "p", "h1", None)
    await cached.keys.add("k2", "t1", "bound", "p", "h2", None, KeyLimits(machine_id="m1"))
    return inner, cached


async def test_a_known_key_is_served_from_the_cache(stores: tuple[Counting, CachedStore]) -> None:
    inner, store = stores
    for _ in range(5):
        key = await store.keys.by_hash("h1", NOW)
        assert key is not None and key.id == "k1"
    assert inner.lookups == 1
    assert await store.keys.by_hash("nope", NOW) is None
    assert await store.keys.by_hash("nope", NOW) is None
    assert inner.lookups == 3  # unknown digests are not cached: a new key works at once


async def test_revocation_applies_from_the_next_request(
    stores: tuple[Counting, CachedStore],
) -> None:
    _, store = stores
    assert await store.keys.by_hash("h1", NOW) is not None
    await store.keys.revoke("k1")
    key = await store.keys.by_hash("h1", NOW)
    assert key is not None and key.revoked_at is not None  # auth refuses it as revoked


async def test_a_rotated_out_secret_stops_when_its_grace_ends_without_a_query(
    stores: tuple[Counting, CachedStore],
) -> None:
    inner, store = stores
    await store.keys.rotate("k1", "p2", "h1-new", NOW + 100)
    assert await store.keys.by_hash("h1", NOW) is not None
    lookups = inner.lookups
    assert await store.keys.by_hash("h1", NOW + 99) is not None
    assert inner.lookups == lookups  # still within the grace: cached
    assert await store.keys.by_hash("h1", NOW + 100) is None  # the clock, not a TTL, ends it
    assert await store.keys.by_hash("h1-new", NOW + 100) is not None


async def test_revoking_a_machine_drops_the_keys_bound_to_it(
    stores: tuple[Counting, CachedStore],
) -> None:
    _, store = stores
    assert await store.keys.by_hash("h2", NOW) is not None
    assert await store.machines.revoke("m1") == ["bound"]
    key = await store.keys.by_hash("h2", NOW)
    assert key is not None and key.revoked_at is not None


async def test_a_key_dropped_on_another_node_is_read_again(
    stores: tuple[Counting, CachedStore],
) -> None:
    inner, store = stores
    await store.keys.by_hash("h1", NOW)
    await inner.keys.revoke("k1")  # written past this node's cache, as another node would
    store.key_cache.drop_key("k1")  # …which then tells every node
    key = await store.keys.by_hash("h1", NOW)
    assert key is not None and key.revoked_at is not None


def test_the_cache_is_bounded() -> None:
    cache = KeyCache(max_entries=3)
    for n in range(10):
        cache.put(f"h{n}", ApiKey(f"k{n}", "t", "n", "p", 0, None, None, None), None)
    assert len(cache) == 3
    assert cache.get("h9", NOW) is not None and cache.get("h0", NOW) is None


async def test_a_lookup_that_read_before_a_revocation_does_not_cache_what_it_read(
    stores: tuple[Counting, CachedStore],
) -> None:
    inner, store = stores
    inner.counting_keys.gate = asyncio.Event()
    lookup = asyncio.create_task(store.keys.by_hash("h1", NOW))
    await inner.counting_keys.reading.wait()  # it holds the copy from before the revocation
    await store.keys.revoke("k1")
    inner.counting_keys.gate.set()
    stale = await lookup
    assert stale is not None and stale.revoked_at is None  # that request raced the revocation
    inner.counting_keys.gate = None
    key = await store.keys.by_hash("h1", NOW)
    assert key is not None and key.revoked_at is not None  # …but the next one reads the store


@pytest.mark.parametrize("change", ["drop", "clear", "trust"])
def test_a_put_after_a_drop_clear_or_trust_change_is_skipped(change: str) -> None:
    cache = KeyCache()
    key = ApiKey("k1", "t", "n", "p", 0, None, None, None)
    generation = cache.generation
    if change == "drop":
        cache.drop_key("k1")
    elif change == "clear":
        cache.clear()
    else:
        cache.trust(True)
    cache.put("h1", key, None, generation)
    assert cache.get("h1", NOW) is None
    cache.put("h1", key, None, cache.generation)
    assert cache.get("h1", NOW) is key


def test_with_a_max_age_an_entry_is_read_again_once_that_old() -> None:
    now = [1000.0]
    cache = KeyCache(max_age=30.0, clock=lambda: now[0])
    key = ApiKey("k1", "t", "n", "p", 0, None, None, None)
    cache.put("h1", key, None)
    now[0] += 29.9
    assert cache.get("h1", NOW) is key
    now[0] += 0.1
    assert cache.get("h1", NOW) is None  # a broadcast of its revocation may have been missed
    assert len(cache) == 0


async def test_one_node_has_no_max_age_and_still_drops_a_revoked_key_at_once(
    stores: tuple[Counting, CachedStore],
) -> None:
    inner, store = stores
    assert store.key_cache.max_age is None
    assert await store.keys.by_hash("h1", NOW) is not None
    await store.keys.revoke("k1")
    lookups = inner.lookups
    key = await store.keys.by_hash("h1", NOW)
    assert key is not None and key.revoked_at is not None
    assert inner.lookups == lookups + 1
