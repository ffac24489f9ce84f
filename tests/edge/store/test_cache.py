"""The key cache never lets a revoked, rotated-out or expired secret through, and serves the
rest without a query (edge/store/cache.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edge.store import ApiKey, KeyLimits, SqliteStore
from edge.store.cache import CachedStore, KeyCache

NOW = time.time()


class Counting(SqliteStore):
    """A real store that counts the key lookups that reach it."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.lookups = 0
        inner_secret = self.keys.secret

        async def secret(secret_hash: str) -> tuple[ApiKey, float | None] | None:
            self.lookups += 1
            return await inner_secret(secret_hash)

        self.keys.secret = secret  # type: ignore[method-assign]


@pytest.fixture
async def stores(tmp_path: Path) -> tuple[Counting, CachedStore]:
    inner = Counting(tmp_path / "edge.db")
    store = CachedStore(inner)
    await store.tenants.create("t1", "acme")
    await store.machines.add_pairing_code("c", "t1", "gpu-1", time.time() + 600)
    await store.machines.redeem_pairing_code("c", "m1", b"k" * 32)
    await store.keys.add("k1", "t1", "free", "p", "h1", None)
    await store.keys.add("k2", "t1", "bound", "p", "h2", None, KeyLimits(machine_id="m1"))
    return inner, store


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
