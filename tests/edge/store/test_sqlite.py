"""What only the SQLite store has: its file in WAL mode, its migrations from the schemas that
shipped, and its one shared connection (the interface's tests run on it too:
test_interface.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.store import KeyLimits, SqliteStore
from edge.store.sqlite.migrations import MIGRATIONS


async def test_migrations_are_applied_once_and_recorded(tmp_path: Path) -> None:
    await SqliteStore(tmp_path / "edge.db").close()
    again = SqliteStore(tmp_path / "edge.db")
    assert again.schema_version == len(MIGRATIONS)
    await again.close()
    mode = sqlite3.connect(tmp_path / "edge.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


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
