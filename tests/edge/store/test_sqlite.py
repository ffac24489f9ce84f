from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from edge.store import Conflict, KeyLimits, SqliteStore
from edge.store.sqlite.migrations import MIGRATIONS


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "edge.db")


async def test_migrations_are_applied_once_and_recorded(tmp_path: Path) -> None:
    await SqliteStore(tmp_path / "edge.db").close()
    again = SqliteStore(tmp_path / "edge.db")
    assert again.schema_version == len(MIGRATIONS)
    await again.close()
    mode = sqlite3.connect(tmp_path / "edge.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


async def test_a_pairing_code_is_redeemed_once(store: SqliteStore) -> None:
    await store.tenants.create("t1", "acme")
    await store.machines.add_pairing_code("h", "t1", "gpu-1", time.time() + 60)
    machine = await store.machines.redeem_pairing_code("h", "m1", b"k" * 32)
    assert machine is not None
    assert machine.name == "gpu-1"
    assert await store.machines.redeem_pairing_code("h", "m2", b"k" * 32) is None
    assert [m.id for m in await store.machines.of_tenant("t1")] == ["m1"]


async def test_an_expired_pairing_code_is_not_redeemed(store: SqliteStore) -> None:
    await store.tenants.create("t1", "acme")
    await store.machines.add_pairing_code("h", "t1", "gpu-1", time.time() - 1)
    assert await store.machines.redeem_pairing_code("h", "m1", b"k" * 32) is None


async def test_machine_names_are_unique_among_live_machines(store: SqliteStore) -> None:
    await store.tenants.create("t1", "acme")
    await store.machines.add_pairing_code("h1", "t1", "gpu-1", time.time() + 60)
    machine = await store.machines.redeem_pairing_code("h1", "m1", b"k" * 32)
    assert machine is not None
    with pytest.raises(Conflict):
        await store.machines.add_pairing_code("h2", "t1", "gpu-1", time.time() + 60)
    await store.machines.revoke(machine.id)
    await store.machines.add_pairing_code(
        "h3", "t1", "gpu-1", time.time() + 60
    )  # the name is free again


async def test_duplicate_tenants_and_keys_conflict(store: SqliteStore) -> None:
    await store.tenants.create("t1", "acme")
    with pytest.raises(Conflict):
        await store.tenants.create("t2", "acme")
    await store.keys.add("k1", "t1", "laptop", "sk-lt-abc", "hash1", None)
    with pytest.raises(Conflict):
        await store.keys.add("k2", "t1", "laptop", "sk-lt-def", "hash2", None)
    assert await store.keys.by_hash("hash1") is not None
    assert await store.keys.by_hash("hash2") is None


async def test_migrating_from_version_1_keeps_every_key_working(tmp_path: Path) -> None:
    path = tmp_path / "edge.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(f"BEGIN; {MIGRATIONS[0]}; PRAGMA user_version = 1; COMMIT;")
    old.execute("INSERT INTO tenants VALUES ('t1', 'acme', 1.0)")
    old.execute(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, created_at, expires_at,"
        " revoked_at, last_used_at) VALUES ('k1', 't1', 'laptop', 'sk-lt-ab', 'h1', 2.0, 99.0,"
        " NULL, 3.0)"
    )
    old.close()
    store = SqliteStore(path)
    assert store.schema_version == len(MIGRATIONS)
    key = await store.keys.by_hash("h1", now=50.0)
    assert key is not None
    assert (key.name, key.prefix, key.expires_at, key.last_used_at) == (
        "laptop",
        "sk-lt-ab",
        99.0,
        3.0,
    )
    assert key.limits == KeyLimits()


async def test_rotation_keeps_old_secrets_until_the_grace_ends_and_never_extends_it(
    store: SqliteStore,
) -> None:
    await store.tenants.create("t1", "acme")
    await store.keys.add("k1", "t1", "ci", "sk-lt-a", "h1", None)
    await store.keys.rotate("k1", "sk-lt-b", "h2", grace_until=100.0)
    assert await store.keys.by_hash("h1", now=99.0) is not None
    assert await store.keys.by_hash("h1", now=100.0) is None
    await store.keys.rotate("k1", "sk-lt-c", "h3", grace_until=500.0)
    assert await store.keys.by_hash("h1", now=99.0) is not None  # still its own, earlier end
    assert await store.keys.by_hash("h1", now=200.0) is None
    assert await store.keys.by_hash("h2", now=499.0) is not None
    key = await store.keys.by_hash("h3", now=10**10)
    assert key is not None and key.prefix == "sk-lt-c"


async def test_key_limits_round_trip(store: SqliteStore) -> None:
    await store.tenants.create("t1", "acme")
    limits = KeyLimits(("a", "b:1"), 1000, "week", 60, 6000, None)
    await store.keys.add("k1", "t1", "ci", "sk-lt-a", "h1", None, limits)
    key = await store.keys.by_name("t1", "ci")
    assert key is not None and key.limits == limits


async def test_revoking_a_machine_revokes_its_bound_keys_only(store: SqliteStore) -> None:
    await store.tenants.create("t1", "acme")
    await store.machines.add_pairing_code("c", "t1", "gpu-1", time.time() + 60)
    machine = await store.machines.redeem_pairing_code("c", "m1", b"k" * 32)
    assert machine is not None
    await store.keys.add("k1", "t1", "bound", "p", "h1", None, KeyLimits(machine_id="m1"))
    await store.keys.add("k2", "t1", "free", "p", "h2", None)
    assert await store.machines.revoke("m1") == ["bound"]
    bound, free = await store.keys.by_hash("h1"), await store.keys.by_hash("h2")
    assert bound is not None and bound.revoked_at is not None
    assert free is not None and free.revoked_at is None


async def test_usage_batches_add_up_and_audit_prunes_by_age(store: SqliteStore) -> None:
    await store.tenants.create("t1", "acme")
    await store.keys.add("k1", "t1", "ci", "p", "h1", None)
    audit = [
        (("t1", float(at), "admin", "operator", "key.created", "ci") + (None,) * 11)
        for at in (10, 20, 30)
    ]
    await store.usage.record(audit, [("k1", "2026-11-23", "t1", 1, 10, 20)])
    await store.usage.record(
        [], [("k1", "2026-11-23", "t1", 2, 5, 5), ("k1", "2026-11-24", "t1", 1, 1, 1)]
    )
    rows = await store.usage.daily("t1", "2026-11-01")
    assert [(r.day, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == [
        ("2026-11-23", 3, 15, 25),
        ("2026-11-24", 1, 1, 1),
    ]
    assert await store.usage.tokens_used("k1", "2026-11-24") == 2
    assert await store.usage.prune_audit(before=25.0) == 2
    assert [e["at"] for e in await store.usage.audit_events("t1", 0, None, 10)] == [30.0]


async def test_response_storage_is_off_by_default_and_per_tenant(store: SqliteStore) -> None:
    await store.tenants.create("t1", "acme")
    await store.tenants.create("t2", "globex")
    assert not await store.tenants.stores_responses("t1")
    assert await store.tenants.set_store_responses("t1", True) == 0
    assert await store.tenants.stores_responses("t1") and not await store.tenants.stores_responses(
        "t2"
    )


async def test_stored_responses_are_read_and_deleted_within_their_tenant(
    store: SqliteStore,
) -> None:
    await store.tenants.create("t1", "acme")
    await store.tenants.create("t2", "globex")
    await store.tenants.set_store_responses("t1", True)
    items = [{"type": "message", "role": "user", "content": "hi"}]
    await store.responses.save("resp_1", "t1", "k1", 1.0, {"id": "resp_1", "output": []}, items)
    assert await store.responses.get("t1", "resp_1") == ({"id": "resp_1", "output": []}, items)
    assert await store.responses.get("t2", "resp_1") is None
    assert not await store.responses.delete("t2", "resp_1")
    assert await store.responses.delete("t1", "resp_1")
    assert await store.responses.get("t1", "resp_1") is None
    assert not await store.responses.delete("t1", "resp_1")


async def test_turning_response_storage_off_deletes_the_stored_ones(store: SqliteStore) -> None:
    await store.tenants.create("t1", "acme")
    await store.tenants.create("t2", "globex")
    for tenant in ("t1", "t2"):
        await store.tenants.set_store_responses(tenant, True)
        await store.responses.save(f"resp_{tenant}", tenant, "k", 1.0, {}, [])
    assert await store.tenants.set_store_responses("t1", False) == 1
    assert await store.responses.get("t1", "resp_t1") is None
    assert await store.responses.get("t2", "resp_t2") is not None  # other tenants keep theirs


async def test_migration_4_keeps_existing_tenants_with_storage_off(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "edge.db")
    for number, script in enumerate(MIGRATIONS[:3], start=1):
        old.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
    old.execute("INSERT INTO tenants (id, slug, created_at) VALUES ('t1', 'acme', 1.0)")
    old.commit()
    old.close()
    store = SqliteStore(tmp_path / "edge.db")
    assert store.schema_version == len(MIGRATIONS) >= 4
    assert await store.tenants.by_slug("acme") is not None
    assert not await store.tenants.stores_responses("t1")


async def test_a_transaction_ends_whatever_is_raised_inside_it(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "edge.db")
    await store.tenants.create("t1", "acme")
    await store.keys.add("k1", "t1", "ci", "p", "h1", None)
    with pytest.raises(OverflowError):  # past SQLite's 64-bit INTEGER, raised mid-transaction
        await store.keys.add("k2", "t1", "x", "p", "h2", None, KeyLimits(rpm=2**63))
    # The shared connection holds no write lock: another writer gets in at once…
    other = sqlite3.connect(tmp_path / "edge.db", timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()
    # …and what this store writes afterwards is committed, as a restart shows.
    await store.keys.revoke("k1")
    assert await store.keys.by_name("t1", "x") is None
    await store.close()
    reopened = SqliteStore(tmp_path / "edge.db")
    assert await reopened.keys.by_name("t1", "ci") is None  # revoked, and it stayed revoked
