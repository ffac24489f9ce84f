"""SharedLimits on a real Redis: two instances on one server are two edge nodes."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis import exceptions
from redis.asyncio import Redis

from edge.cluster.counters import Keys, Settlement, SharedLimits
from edge.cluster.redis_link import is_outage_reply, open_redis
from edge.errors import ApiError
from edge.limits import estimate_prompt_tokens
from edge.store import ApiKey, KeyLimits, SqliteStore
from protocol.requests import ChatRequest, Message, Options
from tests.edge.cluster.conftest import Acl
from tests.redis_server import RedisServer

NOW = datetime.datetime(2026, 11, 23, 15, 30, tzinfo=datetime.UTC).timestamp()


def _key(key_id: str = "k1", **limits: object) -> ApiKey:
    return ApiKey(key_id, "t1", "ci", "sk-lt-x", 0.0, None, None, None, KeyLimits(**limits))  # type: ignore[arg-type]


def _chat(text: str = "hello", max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest("m", (Message("user", text),), options=Options(num_predict=max_tokens))


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "edge.db")
    await store.tenants.create("t1", "acme")
    await store.keys.add("k1", "t1", "ci", "sk-lt-x", "h1", None)
    return store


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = open_redis(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def nodes(redis: Redis, store: SqliteStore, clock: Clock) -> list[SharedLimits]:
    """Three nodes' limiters on one Redis (a short reservation TTL: 5 s)."""
    return [SharedLimits(redis, store, reservation_ttl=5.0, clock=clock) for _ in range(3)]


async def test_requests_per_minute_hold_across_nodes(nodes: list[SharedLimits]) -> None:
    key = _key(rpm=6)
    refusals: list[ApiError] = []
    for i in range(18):  # 6 a minute for the key, whichever node a request lands on
        try:
            (await nodes[i % 3].admit(key, _chat(), NOW)).settle(1)
        except ApiError as exc:
            refusals.append(exc)
    assert len(refusals) == 12
    assert {(e.status, e.code, e.headers["Retry-After"]) for e in refusals} == {
        (429, "rate_limit_exceeded", "10")
    }
    assert (await nodes[2].admit(key, _chat(), NOW + 10)).headers[
        "x-ratelimit-remaining-requests"
    ] == "0"  # one request's worth refilled in 10 s, on any node


async def test_a_refused_request_charges_nothing_anywhere(nodes: list[SharedLimits]) -> None:
    key = _key(rpm=10, tpm=100)
    first = await nodes[0].admit(key, _chat(max_tokens=60), NOW)
    assert first.headers["x-ratelimit-remaining-requests"] == "9"
    with pytest.raises(ApiError) as caught:
        await nodes[1].admit(key, _chat(max_tokens=60), NOW)
    assert "tokens" in caught.value.message
    first.settle(0)
    await nodes[0].flush()
    third = await nodes[2].admit(key, _chat(max_tokens=10), NOW)
    assert third.headers["x-ratelimit-remaining-requests"] == "8"


async def test_tokens_per_minute_settle_to_real_use(nodes: list[SharedLimits]) -> None:
    key = _key(tpm=1000)
    first = await nodes[0].admit(key, _chat("hi", max_tokens=400), NOW)
    charged = first.tokens_taken
    first.settle(50)
    await nodes[0].flush()
    second = await nodes[1].admit(key, _chat("hi", max_tokens=400), NOW)
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == pytest.approx(
        1000 - 50 - charged, abs=1
    )


async def test_a_budget_is_never_overspent_by_concurrent_nodes(
    nodes: list[SharedLimits], store: SqliteStore
) -> None:
    key = _key(budget_tokens=10_000, budget_period="day")
    reservation = estimate_prompt_tokens(_chat()) + 300

    async def one(i: int) -> str:
        try:
            await nodes[i % 3].admit(key, _chat(max_tokens=300), NOW)
        except ApiError as exc:
            return exc.code
        return "admitted"

    results = await asyncio.gather(*(one(i) for i in range(60)))
    admitted = 10_000 // reservation  # exactly what fits, over three nodes
    assert sorted(results) == ["admitted"] * admitted + ["budget_exceeded"] * (60 - admitted)


async def test_a_budget_is_seeded_once_from_the_store(
    nodes: list[SharedLimits], store: SqliteStore, redis: Redis
) -> None:
    await store.usage.record([], [("k1", "2026-11-23", "t1", 3, 400, 500)])  # 900 spent today
    key = _key(budget_tokens=2000, budget_period="day")
    await asyncio.gather(*(n.admit(key, _chat(max_tokens=100), NOW) for n in nodes))
    account = await redis.hgetall("llmtunnel:{k1}:budget:2026-11-23")
    assert int(account[b"spent"]) == 900  # seeded once, not once per node (LiteLLM #28247)
    # Usage recorded after the seed is in the account already (settled): it is not read again.
    await store.usage.record([], [("k1", "2026-11-23", "t1", 1, 0, 100)])
    await nodes[0].admit(key, _chat(max_tokens=100), NOW)
    account = await redis.hgetall("llmtunnel:{k1}:budget:2026-11-23")
    assert int(account[b"spent"]) == 900


async def test_settling_spends_what_was_used_and_frees_the_reservation(
    nodes: list[SharedLimits], redis: Redis
) -> None:
    key = _key(budget_tokens=10_000, budget_period="day")
    admission = await nodes[0].admit(key, _chat(max_tokens=300), NOW)
    account = "llmtunnel:{k1}:budget:2026-11-23"
    assert int(await redis.hget(account, "reserved") or 0) == admission.charged
    admission.settle(42)
    admission.settle(42)  # settling twice changes nothing
    await nodes[0].flush()
    assert await redis.hmget(account, ["spent", "reserved"]) == [b"42", b"0"]
    await nodes[0].flush()  # a settlement written again (a cut pipeline) is applied once
    assert await redis.hget(account, "spent") == b"42"


async def test_a_dead_nodes_reservations_expire(nodes: list[SharedLimits], clock: Clock) -> None:
    key = _key(budget_tokens=3000, budget_period="day")
    held = [await nodes[0].admit(key, _chat(max_tokens=1000), NOW) for _ in range(2)]
    assert all(a.charged for a in held)
    with pytest.raises(ApiError):
        await nodes[1].admit(key, _chat(max_tokens=1000), NOW)  # node 0 holds most of it
    # Node 0 dies: it never settles and stops renewing. Node 2 renews its own, which does not
    # keep node 0's alive.
    mine = await nodes[2].admit(key, _chat(max_tokens=1), NOW)
    clock.now = NOW + 4
    await nodes[2].renew()
    later = NOW + 6  # past node 0's reservations' TTL (5 s)
    admitted = await nodes[1].admit(key, _chat(max_tokens=1000), later)
    assert admitted.charged
    mine.settle(1)


async def test_a_live_node_renews_its_reservations(nodes: list[SharedLimits], clock: Clock) -> None:
    key = _key(budget_tokens=2000, budget_period="day")
    long_request = await nodes[0].admit(key, _chat(max_tokens=1500), NOW)
    for step in (3, 6, 9):  # renewed before each TTL ran out
        clock.now = NOW + step
        await nodes[0].renew()
    with pytest.raises(ApiError):
        await nodes[1].admit(key, _chat(max_tokens=1000), NOW + 10)  # still held
    long_request.settle(1500)


async def test_keys_without_limits_never_ask_redis(
    store: SqliteStore, redis_server: RedisServer, clock: Clock
) -> None:
    client = open_redis("redis://127.0.0.1:1/0")  # nothing listens there
    limits = SharedLimits(client, store, clock=clock)
    admission = await limits.admit(_key(), _chat(), NOW)
    assert admission.headers == {}
    await client.aclose()


async def test_when_redis_is_down_rate_limits_fail_open_to_the_node_and_budgets_close(
    store: SqliteStore, redis_server: RedisServer, clock: Clock
) -> None:
    redis_server.start()
    client = open_redis(redis_server.url)
    node = SharedLimits(client, store, clock=clock)
    await node.admit(_key(rpm=2), _chat(), NOW)  # shared: one of the two used
    redis_server.stop()
    try:
        # Rate limits: this node's own buckets (a full one: it had not counted alone).
        rated = _key(rpm=2)
        await node.admit(rated, _chat(), NOW)
        await node.admit(rated, _chat(), NOW)
        with pytest.raises(ApiError) as caught:
            await node.admit(rated, _chat(), NOW)
        assert caught.value.code == "rate_limit_exceeded"
        # Budgets: refused until Redis answers again, and keys without limits go on.
        with pytest.raises(ApiError) as closed:
            await node.admit(_key(budget_tokens=10**6, budget_period="day"), _chat(), NOW)
        assert (closed.value.status, closed.value.code) == (503, "limits_unavailable")
        assert closed.value.headers["Retry-After"] == "1"
        assert (await node.admit(_key(), _chat(), NOW)).headers == {}
    finally:
        redis_server.start()
        await client.aclose()


async def test_settlements_wait_for_redis_and_are_written_when_it_is_back(
    store: SqliteStore, redis_server: RedisServer, clock: Clock
) -> None:
    redis_server.persist = True  # a restart keeps the data: an outage, not a loss
    redis_server.stop()
    redis_server.start()
    client = open_redis(redis_server.url)
    try:
        node = SharedLimits(client, store, clock=clock)
        key = _key(budget_tokens=10_000, budget_period="day")
        admission = await node.admit(key, _chat(max_tokens=300), NOW)
        redis_server.stop(crash=False)  # a clean shutdown writes the append-only file
        admission.settle(77)
        assert not await node.flush()  # kept
        redis_server.start()
        assert await node.flush()
        account = await client.hmget("llmtunnel:{k1}:budget:2026-11-23", ["spent", "reserved"])
        assert account == [b"77", b"0"]
    finally:
        redis_server.persist = False
        redis_server.stop()
        redis_server.start()
        await client.aclose()


async def test_an_admission_sent_twice_is_charged_once(
    nodes: list[SharedLimits], redis: Redis
) -> None:
    # redis-py sends a command again when the connection breaks after sending it, and the
    # script may have run already: the second run must not charge again.
    limits = nodes[0]
    once = limits._admit

    async def twice(keys: list[str], args: list[str | int | float]) -> object:
        await once(keys=keys, args=args)
        return await once(keys=keys, args=args)

    limits._admit = twice  # type: ignore[assignment]
    key = _key(rpm=10, tpm=100_000, budget_tokens=10_000, budget_period="day")
    admission = await limits.admit(key, _chat(max_tokens=300), NOW)
    assert admission.charged > 0
    account = "llmtunnel:{k1}:budget:2026-11-23"
    assert int(await redis.hget(account, "reserved") or 0) == admission.charged
    assert float(await redis.hget("llmtunnel:{k1}:rpm", "level") or 0) == 9  # one request
    assert admission.headers["x-ratelimit-remaining-requests"] == "9"


async def test_error_replies_do_not_end_settling_which_resumes_when_redis_answers(
    redis: Redis, store: SqliteStore, clock: Clock, acl: Acl
) -> None:
    node = SharedLimits(redis, store, reservation_ttl=3.0, clock=clock)  # renews every second
    key = _key(budget_tokens=10_000, budget_period="day")
    admission = await node.admit(key, _chat(max_tokens=300), NOW)
    task = asyncio.create_task(node.run())
    account = "llmtunnel:{k1}:budget:2026-11-23"
    try:
        await acl("-evalsha", "-eval")  # the scripts answered -NOPERM, as -MISCONF would be
        admission.settle(42)
        await asyncio.sleep(1.5)
        assert not task.done()
        assert await redis.hget(account, "spent") in (None, b"0")
        await acl("+evalsha", "+eval")
        async with asyncio.timeout(5):
            while await redis.hget(account, "spent") != b"42":
                await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_unforeseen_failure_does_not_end_settling(
    redis: Redis, store: SqliteStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = SharedLimits(redis, store, reservation_ttl=3.0, clock=clock)
    key = _key(budget_tokens=10_000, budget_period="day")
    admission = await node.admit(key, _chat(max_tokens=300), NOW)
    flush = node.flush
    calls = 0

    async def broken_once() -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug")
        return await flush()

    monkeypatch.setattr(node, "flush", broken_once)
    task = asyncio.create_task(node.run())
    try:
        admission.settle(42)
        async with asyncio.timeout(5):
            while await redis.hget("llmtunnel:{k1}:budget:2026-11-23", "spent") != b"42":
                await asyncio.sleep(0.05)
        assert calls >= 2 and not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_settlement_redis_refuses_for_itself_does_not_hold_back_the_others(
    nodes: list[SharedLimits], redis: Redis
) -> None:
    node = nodes[0]
    key = _key(tpm=100_000, budget_tokens=10_000, budget_period="day")
    good = await node.admit(key, _chat(max_tokens=300), NOW)
    # A settlement whose script fails on its arguments (more tokens than a Redis integer holds)
    # fails the same way however often it is sent: it is dropped and counted, and the good one
    # is written.
    await redis.hset("llmtunnel:{k2}:budget:2026-11-23", mapping={"spent": 0, "reserved": 0})
    poison = Settlement(Keys.of("k2", "2026-11-23"), NOW, 0, 0.0, 2**64, "other:1")
    node.settled(poison)
    good.settle(42)
    assert await node.flush() is True
    assert node.dropped == 1
    assert await redis.hget("llmtunnel:{k1}:budget:2026-11-23", "spent") == b"42"
    assert await node.flush() is True  # nothing left behind to send again


def test_which_error_replies_mean_not_now() -> None:
    assert is_outage_reply(exceptions.ConnectionError("reset"))
    assert is_outage_reply(exceptions.ResponseError("MISCONF Redis is configured to save RDB"))
    assert is_outage_reply(exceptions.ResponseError("BUSY Redis is busy running a script"))
    assert is_outage_reply(exceptions.NoPermissionError("NOPERM this user has no permissions"))
    assert is_outage_reply(exceptions.ReadOnlyError("READONLY You can't write against a replica"))
    assert not is_outage_reply(exceptions.ResponseError("ERR user_script:3: attempt to compare"))
