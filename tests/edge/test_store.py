from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from edge.store import MIGRATIONS, Conflict, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "edge.db")


def test_migrations_are_applied_once_and_recorded(tmp_path: Path) -> None:
    Store(tmp_path / "edge.db").close()
    again = Store(tmp_path / "edge.db")
    assert again.schema_version == len(MIGRATIONS)
    again.close()
    mode = sqlite3.connect(tmp_path / "edge.db").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_a_pairing_code_is_redeemed_once(store: Store) -> None:
    store.create_tenant("t1", "acme")
    store.add_pairing_code("h", "t1", "gpu-1", time.time() + 60)
    machine = store.redeem_pairing_code("h", "m1", b"k" * 32)
    assert machine is not None
    assert machine.name == "gpu-1"
    assert store.redeem_pairing_code("h", "m2", b"k" * 32) is None
    assert [m.id for m in store.list_machines("t1")] == ["m1"]


def test_an_expired_pairing_code_is_not_redeemed(store: Store) -> None:
    store.create_tenant("t1", "acme")
    store.add_pairing_code("h", "t1", "gpu-1", time.time() - 1)
    assert store.redeem_pairing_code("h", "m1", b"k" * 32) is None


def test_machine_names_are_unique_among_live_machines(store: Store) -> None:
    store.create_tenant("t1", "acme")
    store.add_pairing_code("h1", "t1", "gpu-1", time.time() + 60)
    machine = store.redeem_pairing_code("h1", "m1", b"k" * 32)
    assert machine is not None
    with pytest.raises(Conflict):
        store.add_pairing_code("h2", "t1", "gpu-1", time.time() + 60)
    store.revoke_machine(machine.id)
    store.add_pairing_code("h3", "t1", "gpu-1", time.time() + 60)  # the name is free again


def test_duplicate_tenants_and_keys_conflict(store: Store) -> None:
    store.create_tenant("t1", "acme")
    with pytest.raises(Conflict):
        store.create_tenant("t2", "acme")
    store.add_api_key("k1", "t1", "laptop", "sk-lt-abc", "hash1", None)
    with pytest.raises(Conflict):
        store.add_api_key("k2", "t1", "laptop", "sk-lt-def", "hash2", None)
    assert store.api_key_by_hash("hash1") is not None
    assert store.api_key_by_hash("hash2") is None
