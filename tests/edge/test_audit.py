from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import cast

import pytest

from edge.agents.stream import TunnelStream
from edge.audit import MAX_TOKENS_PER_REQUEST, Recorder, RequestRecord
from edge.store import SqliteStore
from protocol import Delta, End, Error


@pytest.fixture
async def store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "edge.db")
    await store.tenants.create("t1", "acme")
    await store.keys.add("k1", "t1", "ci", "p", "h1", None)
    return store


def _record() -> RequestRecord:
    record = RequestRecord("POST /v1/chat/completions", "127.0.0.1", "sdk/1")
    record.tenant_id, record.key_id, record.key_name = "t1", "k1", "ci"
    return record


def test_a_finished_stream_is_charged_its_real_usage() -> None:
    record = _record()
    record.dispatch("gpu-1", prompt_estimate=500)
    record.observe(Delta(1, "hello", "", []))
    record.observe(End(1, "stop", 12, 3, {}))
    assert record.tokens_used() == (12, 3)
    assert record.first_output is not None


def test_a_broken_stream_is_charged_an_upper_bound() -> None:
    record = _record()
    record.dispatch("gpu-1", prompt_estimate=500)
    record.observe(Delta(1, "héllo", "hm", []))
    record.observe(Error(1, "backend_error", "boom", False))
    assert record.tokens_used() == (500, len("héllo".encode()) + 2)
    assert record.error_code == "backend_error"


def test_tool_calls_are_charged_by_their_flow_size() -> None:
    # A broken stream is charged one token per byte streamed, and tool calls are bytes too:
    # id + name + arguments, as the windows count them (PROTOCOL.md §8).
    record = _record()
    record.dispatch("gpu-1", prompt_estimate=10)
    call = {"id": "call_1", "name": "f", "arguments": '{"q":"é"}'}
    record.observe(Delta(1, "ab", "", [call]))
    record.observe(Error(1, "backend_error", "boom", False))
    assert record.tokens_used() == (10, 2 + 6 + 1 + 10)


async def test_an_end_without_usage_is_charged_and_filed_as_an_upper_bound(
    store: SqliteStore,
) -> None:
    # The runtime counted nothing (PROTOCOL.md §7): the stream hands the record an END that
    # carries the record's own upper bound, and the audit row says the counts are not exact.
    stream = TunnelStream(_NoSession(), 1)
    record = _record()
    record.dispatch("gpu-1", prompt_estimate=40)
    stream.observer, stream.unreported_usage = record.observe, record.upper_bound
    stream.deliver(Delta(1, "héllo", "", []))
    stream.deliver(End(1, "stop", 0, 0, {}, usage_reported=False))
    await stream.next()
    end = await stream.next()
    assert isinstance(end, End)
    assert (end.prompt_tokens, end.completion_tokens, end.usage_reported) == (40, 6, False)
    assert record.tokens_used() == (40, 6) and not record.exact
    recorder = Recorder(store)
    recorder.request(record, 200)
    assert await recorder.flush() is True
    (event,) = await store.usage.audit_events("t1", 0, None, 10)
    assert (event["prompt_tokens"], event["completion_tokens"]) == (None, None)
    (usage,) = await store.usage.daily("t1", "2000-01-01")
    assert (usage.prompt_tokens, usage.completion_tokens) == (40, 6)


class _NoSession:
    def consumed(self, stream_id: int, size: int) -> None:
        pass

    def forget(self, stream: TunnelStream, cancel_reason: str | None) -> None:
        pass


def test_a_request_refused_before_any_output_is_not_charged() -> None:
    record = _record()
    record.dispatch("gpu-1", prompt_estimate=500)
    record.observe(Error(1, "busy", "full", True))
    assert record.tokens_used() == (0, 0)
    never_sent = _record()
    assert never_sent.tokens_used() == (0, 0)


def test_failover_counts_only_the_machine_that_served() -> None:
    record = _record()
    record.dispatch("gpu-1", prompt_estimate=50)
    record.observe(Error(1, "busy", "full", True))
    record.dispatch("gpu-2", prompt_estimate=50)
    record.observe(Delta(3, "ok", "", []))
    assert (record.machine, record.tokens_used()) == ("gpu-2", (50, 2))


async def test_the_recorder_flushes_on_its_interval_and_when_stopped(store: SqliteStore) -> None:
    recorder = Recorder(store, flush_interval=0.05)
    task = asyncio.create_task(recorder.run())
    recorder.request(_record(), 200)
    async with asyncio.timeout(2):
        while not await store.usage.audit_events("t1", 0, None, 10):
            await asyncio.sleep(0.01)
    recorder.admin("t1", "operator", "key.revoked", "ci")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    kinds = [e["kind"] for e in await store.usage.audit_events("t1", 0, None, 10)]
    assert sorted(kinds) == ["admin", "request"]
    assert [u.requests for u in await store.usage.daily("t1", "2000-01-01")] == [1]


async def test_a_failed_write_keeps_the_batch_for_the_next_flush(
    store: SqliteStore, tmp_path: Path
) -> None:
    recorder = Recorder(store)
    recorder.request(_record(), 200)
    lock = sqlite3.connect(tmp_path / "edge.db", timeout=0, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another writer holds the database
    store._db.conn.execute("PRAGMA busy_timeout = 0")
    assert await recorder.flush() is False
    lock.execute("ROLLBACK")
    assert await recorder.flush() is True
    assert len(await store.usage.audit_events("t1", 0, None, 10)) == 1
    assert [u.requests for u in await store.usage.daily("t1", "2000-01-01")] == [1]


async def test_token_counts_past_any_real_request_are_clamped(store: SqliteStore) -> None:
    recorder = Recorder(store)
    record = _record()
    record.observe(End(1, "stop", 2**64 - 1, 1, {}))  # past what SQLite's INTEGER holds
    recorder.request(record, 200)
    assert await recorder.flush() is True
    (event,) = await store.usage.audit_events("t1", 0, None, 10)
    assert event["prompt_tokens"] == MAX_TOKENS_PER_REQUEST
    assert [u.prompt_tokens for u in await store.usage.daily("t1", "2000-01-01")] == [
        MAX_TOKENS_PER_REQUEST
    ]


async def test_a_row_the_store_refuses_is_dropped_and_does_not_block_the_others(
    store: SqliteStore,
) -> None:
    recorder = Recorder(store)
    recorder.request(_record(), 200)
    unstorable = cast(str, {"not": "text"})  # sqlite3 takes no dict: this row can never go in
    recorder.admin("t1", "operator", "key.created", unstorable)
    recorder.admin("t1", "operator", "key.revoked", "ci")
    assert await recorder.flush() is True
    assert recorder.dropped == 1
    actions = sorted(e["action"] for e in await store.usage.audit_events("t1", 0, None, 10))
    assert actions == ["POST /v1/chat/completions", "key.revoked"]
    assert [u.requests for u in await store.usage.daily("t1", "2000-01-01")] == [1]
    # The store is not left in a transaction: later batches are written as usual.
    recorder.admin("t1", "operator", "key.rotated", "ci")
    assert await recorder.flush() is True
    assert len(await store.usage.audit_events("t1", 0, None, 10)) == 3


async def test_unauthenticated_requests_are_not_filed(store: SqliteStore) -> None:
    recorder = Recorder(store)
    recorder.request(RequestRecord("POST /v1/chat/completions", None, None), 401)
    await recorder.flush()
    assert await store.usage.audit_events("t1", 0, None, 10) == []


async def test_a_failure_no_store_names_keeps_the_batch_and_the_recorder(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncpg raised "cannot switch to state 15; another operation is in progress" when a
    # server shutting down cut a connection mid-statement: the batch must wait, not be lost,
    # and the recorder must go on flushing.
    recorder = Recorder(store, flush_interval=0.05)
    record = store.usage.record
    failures = 0

    async def failing_twice(*args: object) -> None:
        nonlocal failures
        failures += 1
        if failures <= 2:
            raise RuntimeError("cannot switch to state 15; another operation is in progress")
        await record(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store.usage, "record", failing_twice)
    task = asyncio.create_task(recorder.run())
    recorder.request(_record(), 200)
    async with asyncio.timeout(2):
        while not await store.usage.audit_events("t1", 0, None, 10):
            await asyncio.sleep(0.01)
    assert failures == 3 and not task.done() and recorder.dropped == 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [u.requests for u in await store.usage.daily("t1", "2000-01-01")] == [1]
