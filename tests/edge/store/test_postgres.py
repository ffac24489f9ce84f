"""What only the PostgreSQL store has (the interface's tests run on it too: test_interface.py):
several nodes on one database, a pool whose transactions always end, a server that goes away and
comes back, and failures named ``StoreUnavailable`` (now) or ``RejectedRow`` (ever)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from edge.audit import Recorder
from edge.store import (
    AUDIT_COLUMNS,
    AuditRow,
    Conflict,
    OpenFailed,
    RejectedRow,
    StoreError,
    StoreUnavailable,
    UsageIncrement,
    open_store,
)
from edge.store.postgres import PostgresStore
from edge.store.postgres.db import classify
from edge.store.postgres.migrations import LOCK_KEY, MIGRATIONS, migrate
from edge.store.urls import redacted
from tests.postgres_server import PostgresServer, free_port


def _event(at: float, **values: object) -> tuple[object, ...]:
    row = dict.fromkeys(AUDIT_COLUMNS)
    row.update(tenant_id="t1", at=at, kind="admin", actor="operator", action="key.created")
    row.update(values)
    return tuple(row.values())


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    opened = await PostgresStore.open(postgres_url)
    await opened.tenants.create("t1", "acme")
    await opened.keys.add("k1", "t1", "ci", "p", "h1", None)
    yield opened
    await opened.close()


@contextlib.asynccontextmanager
async def _nodes(url: str, count: int) -> AsyncIterator[list[PostgresStore]]:
    """``count`` stores on one database, as that many edge nodes."""
    nodes = list(await asyncio.gather(*(PostgresStore.open(url) for _ in range(count))))
    try:
        yield nodes
    finally:
        await asyncio.gather(*(node.close() for node in nodes))


async def _connect(url: str) -> asyncpg.Connection[asyncpg.Record]:
    """A connection of its own to the store's database (its search_path too)."""
    return await asyncpg.connect(url)


# --- several nodes starting and working on one database ---------------------------------------


async def test_three_nodes_starting_together_migrate_once(postgres_url: str) -> None:
    async with _nodes(postgres_url, 3) as nodes:
        assert [node.schema_version for node in nodes] == [len(MIGRATIONS)] * 3
    conn = await _connect(postgres_url)
    try:
        recorded = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [v for (v,) in recorded] == list(range(1, len(MIGRATIONS) + 1))
        # A migration that counts its runs, started on three connections at once: one run.
        counting = (*MIGRATIONS, "CREATE TABLE runs (n INT); INSERT INTO runs VALUES (1)")
        others = [await _connect(postgres_url) for _ in range(3)]
        try:
            versions = await asyncio.gather(*(migrate(c, counting) for c in others))
        finally:
            for other in others:
                await other.close()
        assert versions == [len(counting)] * 3
        assert await conn.fetchval("SELECT count(*) FROM runs") == 1
    finally:
        await conn.close()


async def test_a_node_waits_for_the_migration_lock(postgres_url: str) -> None:
    holder = await _connect(postgres_url)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)  # a node migrating
        opening = asyncio.create_task(PostgresStore.open(postgres_url))
        await asyncio.sleep(0.3)
        assert not opening.done()  # waiting on the lock, before reading any version
        tables = "SELECT count(*) FROM pg_tables WHERE tablename = 'schema_migrations'"
        assert await holder.fetchval(tables) == 0
        await transaction.rollback()  # the other node is done: this one goes on
        store = await asyncio.wait_for(opening, 10)
        assert store.schema_version == len(MIGRATIONS)
        await store.close()
    finally:
        await holder.close()


async def test_a_pairing_code_redeemed_on_several_nodes_at_once_makes_one_machine(
    postgres_url: str,
) -> None:
    async with _nodes(postgres_url, 5) as nodes:
        await nodes[0].tenants.create("t1", "acme")
        for round_ in range(5):
            code = f"code-{round_}"
            await nodes[0].machines.add_pairing_code(code, "t1", f"gpu-{round_}", time.time() + 60)
            machines = await asyncio.gather(
                *(
                    node.machines.redeem_pairing_code(code, f"m{round_}-{n}", b"k" * 32)
                    for n, node in enumerate(nodes)
                )
            )
            assert sum(machine is not None for machine in machines) == 1
        assert len(await nodes[1].machines.of_tenant("t1")) == 5


async def test_concurrent_rotations_on_several_nodes_leave_one_secret_without_an_end(
    postgres_url: str,
) -> None:
    async with _nodes(postgres_url, 4) as nodes:
        await nodes[0].tenants.create("t1", "acme")
        await nodes[0].keys.add("k1", "t1", "ci", "p0", "h0", None)
        for round_ in range(5):
            await asyncio.gather(
                *(
                    node.keys.rotate("k1", f"p{round_}{n}", f"h{round_}-{n}", 1000.0 + round_)
                    for n, node in enumerate(nodes)
                )
            )
        conn = await _connect(postgres_url)
        try:
            open_ended = await conn.fetchval(
                "SELECT count(*) FROM api_key_secrets WHERE expires_at IS NULL"
            )
        finally:
            await conn.close()
        assert open_ended == 1  # the last rotation's secret; every other one's grace ends
        assert await nodes[0].keys.by_hash("h0", now=999.0) is not None
        assert await nodes[0].keys.by_hash("h0", now=1000.0) is None


async def test_usage_recorded_by_several_nodes_at_once_adds_up(postgres_url: str) -> None:
    async with _nodes(postgres_url, 3) as nodes:
        await nodes[0].tenants.create("t1", "acme")
        keys = [f"k{n:02}" for n in range(30)]
        for key in keys:
            await nodes[0].keys.add(key, "t1", key, "p", f"h-{key}", None)

        async def flushes(node: PostgresStore, rows: list[UsageIncrement]) -> None:
            for _ in range(10):
                await node.usage.record([], rows)

        # The same keys in opposite orders on different nodes: written in key order, the
        # batches wait on one another but never deadlock (which would fail one of them).
        forward: list[UsageIncrement] = [(key, "2026-01-01", "t1", 1, 2, 3) for key in keys]
        backward = forward[::-1]
        await asyncio.gather(
            *(flushes(node, backward if n % 2 else forward) for n, node in enumerate(nodes))
        )
        rows = await nodes[2].usage.daily("t1", "2026-01-01")
        assert [(r.key_name, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == [
            (key, 30, 60, 90) for key in keys
        ]


async def test_an_alias_changed_on_another_node_is_seen_once_that_node_is_told(
    postgres_url: str,
) -> None:
    async with _nodes(postgres_url, 2) as (here, there):
        await here.tenants.create("t1", "acme")
        await here.aliases.set("t1", "gpt-4o", "qwen3:8b")
        assert await there.aliases.of_tenant("t1") == {"gpt-4o": "qwen3:8b"}  # cached there
        await here.aliases.set("t1", "gpt-4o", "llama3.2:3b")
        assert await here.aliases.of_tenant("t1") == {"gpt-4o": "llama3.2:3b"}
        assert await there.aliases.of_tenant("t1") == {"gpt-4o": "qwen3:8b"}  # not told yet
        there.aliases.forget("t1")  # what the scale-out broadcast will call
        assert await there.aliases.of_tenant("t1") == {"gpt-4o": "llama3.2:3b"}


# --- transactions and the pool -----------------------------------------------------------------


async def _idle_in_transaction(url: str) -> int:
    conn = await _connect(url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND state LIKE 'idle in transaction%'"
        )
        return count
    finally:
        await conn.close()


async def test_a_transaction_is_rolled_back_whatever_is_raised_and_the_pool_stays_usable(
    postgres_url: str,
) -> None:
    store = await PostgresStore.open(postgres_url, max_connections=3)
    try:
        await store.tenants.create("t1", "acme")
        await store.keys.add("k1", "t1", "ci", "p", "h1", None)
        db = store._db
        insert = "INSERT INTO tenants (id, slug, created_at) VALUES ($1, $2, 0)"
        for n in range(5):  # more times than the pool has connections
            with pytest.raises(RuntimeError):
                async with db.transaction() as conn:
                    await conn.execute(insert, f"tx{n}", f"slug-{n}")
                    raise RuntimeError("mid-way")
        with pytest.raises(Conflict):  # the key goes in, its secret does not: neither stays
            await store.keys.add("k2", "t1", "other", "p", "h1", None)
        assert await store.keys.by_name("t1", "other") is None

        async def cancelled_midway() -> None:
            async with db.transaction() as conn:
                await conn.execute(insert, "tc", "cancelled")
                await conn.execute("SELECT pg_sleep(30)")

        task = asyncio.create_task(cancelled_midway())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert [t.slug for t in await store.tenants.all()] == ["acme"]
        assert await _idle_in_transaction(postgres_url) == 0
        # Every connection of the pool serves, and writes are committed as usual.
        listed = await asyncio.gather(*(store.tenants.all() for _ in range(10)))
        assert {len(tenants) for tenants in listed} == {1}
        await store.tenants.create("t2", "globex")
        assert [t.slug for t in await store.tenants.all()] == ["acme", "globex"]
    finally:
        await store.close()


# --- failures: now or ever ---------------------------------------------------------------------


async def test_the_store_is_unavailable_while_the_server_is_down_and_serves_once_it_is_back(
    postgres_server: PostgresServer, store: PostgresStore
) -> None:
    recorder = Recorder(store)
    recorder.admin("t1", "operator", "key.created", "before")
    assert await recorder.flush()
    postgres_server.stop()
    try:
        with pytest.raises(StoreUnavailable):
            await store.usage.record([_event(2.0)], [("k1", "2026-01-01", "t1", 1, 1, 1)])
        with pytest.raises(StoreUnavailable):
            await store.keys.by_hash("h1")
        recorder.admin("t1", "operator", "key.rotated", "while-down")
        assert await recorder.flush() is False  # kept for the next flush
    finally:
        postgres_server.start()
    assert await recorder.flush() is True
    subjects = [e["subject"] for e in await store.usage.audit_events("t1", 0, None, 10)]
    assert sorted(subjects) == ["before", "while-down"]
    assert await store.keys.by_hash("h1") is not None


async def test_rows_that_can_never_be_stored_are_rejected(store: PostgresStore) -> None:
    unstorable: list[tuple[list[AuditRow], list[UsageIncrement]]] = [
        ([_event(1.0, status=2**63)], []),  # past BIGINT, refused by the driver
        ([_event(1.0, model="nul\x00inside")], []),  # text PostgreSQL cannot hold
        ([_event(1.0, status="200")], []),  # the wrong type
        ([], [("k1", "2026-01-01", "t1", 1, 1, 1), ("nope", "2026-01-01", "t1", 1, 1, 1)]),
    ]
    for events, usage in unstorable:
        with pytest.raises(RejectedRow):
            await store.usage.record(events, usage)
    # A sum past BIGINT, refused by the server when the day's row is added to.
    await store.usage.record([], [("k1", "2026-01-02", "t1", 2**63 - 1, 0, 0)])
    with pytest.raises(RejectedRow, match="NumericValueOutOfRange"):
        await store.usage.record([_event(3.0)], [("k1", "2026-01-02", "t1", 1, 0, 0)])
    assert await store.usage.audit_events("t1", 0, None, 10) == []
    assert [r.requests for r in await store.usage.daily("t1", "2026-01-01")] == [2**63 - 1]


async def test_the_recorder_drops_only_the_rows_postgresql_refuses(store: PostgresStore) -> None:
    recorder = Recorder(store)
    recorder.admin("t1", "operator", "key.created", "ok-1")
    recorder.admin("t1", "operator", "key.created", "nul\x00")
    recorder.admin("t1", "operator", "key.created", "ok-2")
    assert await recorder.flush() is True
    assert recorder.dropped == 1
    subjects = [e["subject"] for e in await store.usage.audit_events("t1", 0, None, 10)]
    assert sorted(subjects) == ["ok-1", "ok-2"]


@pytest.mark.parametrize(
    ("exc", "named"),
    [
        (asyncpg.exceptions.SerializationError("could not serialize access"), StoreUnavailable),
        (asyncpg.exceptions.DeadlockDetectedError("deadlock detected"), StoreUnavailable),
        (asyncpg.exceptions.ReadOnlySQLTransactionError("read-only transaction"), StoreUnavailable),
        (asyncpg.exceptions.DiskFullError("could not extend file"), StoreUnavailable),
        (asyncpg.exceptions.TooManyConnectionsError("too many clients"), StoreUnavailable),
        (asyncpg.exceptions.AdminShutdownError("terminating connection"), StoreUnavailable),
        (asyncpg.exceptions.CannotConnectNowError("the database is starting up"), StoreUnavailable),
        (asyncpg.exceptions.QueryCanceledError("statement timeout"), StoreUnavailable),
        (asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"), StoreUnavailable),
        (asyncpg.exceptions.InsufficientPrivilegeError("permission denied"), StoreUnavailable),
        (asyncpg.exceptions.InterfaceError("connection is closed"), StoreUnavailable),
        (
            asyncpg.exceptions.InternalClientError(
                "cannot switch to state 15; another operation (2) is in progress"
            ),
            StoreUnavailable,
        ),
        (ConnectionRefusedError(111, "Connect call failed"), StoreUnavailable),
        (TimeoutError(), StoreUnavailable),
        (asyncpg.exceptions.NumericValueOutOfRangeError("bigint out of range"), RejectedRow),
        (asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence"), RejectedRow),
        (asyncpg.exceptions.DataError("invalid input for query argument $1"), RejectedRow),
        (asyncpg.exceptions.ForeignKeyViolationError("violates foreign key"), RejectedRow),
        (asyncpg.exceptions.StringDataRightTruncationError("value too long"), RejectedRow),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), RejectedRow),
        (TypeError("expected str, got dict"), RejectedRow),
    ],
)
def test_failures_are_named_now_or_ever(exc: Exception, named: type[StoreError]) -> None:
    assert type(classify(exc)) is named


def test_other_exceptions_are_left_as_they_are() -> None:
    assert classify(RuntimeError("a bug")) is None
    assert classify(Conflict("taken")) is None


# --- opening -----------------------------------------------------------------------------------


async def test_opening_an_unreachable_server_fails_in_one_line_without_the_password(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(OpenFailed) as caught:
        await open_store(f"postgresql://edge:s3cret-pw@127.0.0.1:{port}/llmtunnel", tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "s3cret-pw" not in message
    assert f"postgresql://edge@127.0.0.1:{port}/llmtunnel" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


async def test_opening_with_refused_credentials_fails_in_one_line_without_the_password(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.url("postgres", password="wrong-pw")
    with pytest.raises(OpenFailed) as caught:
        await open_store(url, tmp_path)
    message = str(caught.value)
    assert "\n" not in message and "wrong-pw" not in message
    assert "password authentication failed" in message
    assert redacted(url) in message


async def test_a_url_of_another_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OpenFailed, match="postgresql://") as caught:
        await open_store("mysql://root:pw@db/edge", tmp_path)
    assert "pw" not in str(caught.value).replace("postgresql", "")


def test_urls_are_shown_without_their_password() -> None:
    assert redacted("postgresql://edge:pw@db:5432/x") == "postgresql://edge@db:5432/x"
    assert redacted("postgresql://:pw@db/x") == "postgresql://db/x"
    assert redacted("postgresql://db/x?password=pw&sslmode=require") == (
        "postgresql://db/x?sslmode=require"
    )
    assert redacted("postgres://u:p@h1:5432,h2:5432/x") == "postgres://u@h1:5432,h2:5432/x"
