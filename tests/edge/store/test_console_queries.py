"""The store queries the console added: sessions, the request time series, usage per model per
day, and the filtered, paged audit, on both stores (sessions.py and usage.py of each)."""

from __future__ import annotations

from typing import Any

import pytest

from edge.store import AUDIT_COLUMNS, AuditQuery, Store

T0 = 1_800_000_000.0  # a multiple of 3600


@pytest.fixture(autouse=True)
async def tenants(store: Store) -> None:
    """``store`` (SQLite, then PostgreSQL: conftest.py) gets two tenants and three keys."""
    await store.tenants.create("t1", "acme")
    await store.tenants.create("t2", "globex")
    await store.keys.add("k1", "t1", "ci", "p", "h1", None)
    await store.keys.add("k2", "t1", "prod", "p", "h2", None)
    await store.keys.add("k3", "t2", "ci", "p", "h3", None)


def request(tenant: str, key: str, at: float, **values: Any) -> tuple[Any, ...]:
    row = {"tenant_id": tenant, "key_id": key, "at": at, "kind": "request", "actor": key}
    row |= {"action": "POST /v1/chat/completions", "status": 200, "model": "qwen3:8b"}
    row |= values
    return tuple(row.get(column) for column in AUDIT_COLUMNS)


def admin(tenant: str, at: float, action: str) -> tuple[Any, ...]:
    row = {"tenant_id": tenant, "at": at, "kind": "admin", "actor": "operator", "action": action}
    return tuple(row.get(column) for column in AUDIT_COLUMNS)


async def test_sessions_are_kept_by_digest_and_end_with_their_admin_key(
    store: Store,
) -> None:
    key = await store.admin_keys.add("a1", "t1", "admin-hash", "alice")
    await store.sessions.create("s1", key.id, T0)
    found = await store.sessions.get("s1")
    assert found is not None
    assert (found.admin, found.created_at, found.last_seen_at) == (key, T0, T0)
    await store.sessions.touch("s1", T0 + 5)
    found = await store.sessions.get("s1")
    assert found is not None and found.last_seen_at == T0 + 5
    assert await store.sessions.get("nope") is None
    await store.admin_keys.revoke("t1", "alice")
    assert await store.sessions.get("s1") is None
    assert await store.sessions.prune(0, 0) == 1  # a revoked key's sessions are pruned


async def test_sessions_are_deleted_and_pruned_by_age(store: Store) -> None:
    await store.admin_keys.add("op", None, "operator-hash")
    await store.sessions.create("idle", "op", T0)
    await store.sessions.create("old", "op", T0)
    await store.sessions.touch("old", T0 + 100)
    await store.sessions.create("fresh", "op", T0 + 100)
    await store.sessions.create("gone", "op", T0 + 100)
    assert await store.sessions.delete("gone") is True
    assert await store.sessions.delete("gone") is False
    # last used before T0 + 50, or made before T0 + 10
    assert await store.sessions.prune(T0 + 50, T0 + 10) == 2
    assert await store.sessions.get("fresh") is not None
    assert await store.sessions.get("old") is None and await store.sessions.get("idle") is None


async def test_the_series_counts_requests_per_tenant_and_bucket(store: Store) -> None:
    await store.usage.record(
        [
            request("t1", "k1", T0 + 10, prompt_tokens=5, completion_tokens=7, ttft_ms=10.0),
            request("t1", "k2", T0 + 20, status=503, ttft_ms=None),
            request("t1", "k1", T0 + 70, prompt_tokens=1, completion_tokens=1, ttft_ms=30.0),
            request("t1", "k1", T0 + 80, prompt_tokens=1, completion_tokens=1, ttft_ms=50.0),
            request("t2", "k3", T0 + 10, prompt_tokens=2, completion_tokens=2, ttft_ms=5.0),
            request("t1", "k1", T0 + 200),  # past until
            request("t1", "k1", T0 - 1),  # before since
            admin("t1", T0 + 30, "key.created"),  # not a request
        ],
        [],
    )
    points = await store.usage.series(T0, T0 + 120, 60)
    assert [(p.tenant_id, p.start, p.requests, p.errors) for p in points] == [
        ("t1", T0, 2, 1),
        ("t1", T0 + 60, 2, 0),
        ("t2", T0, 1, 0),
    ]
    first = points[0]
    assert (first.prompt_tokens, first.completion_tokens) == (5, 7)
    assert (first.ttft_ms_avg, first.ttft_ms_max) == (10.0, 10.0)
    assert (points[1].ttft_ms_avg, points[1].ttft_ms_max) == (40.0, 50.0)
    only = await store.usage.series(T0, T0 + 120, 60, "t2")
    assert [(p.tenant_id, p.requests) for p in only] == [("t2", 1)]


async def test_usage_per_model_per_day_comes_from_the_audit(store: Store) -> None:
    day = 86400.0
    await store.usage.record(
        [
            request("t1", "k1", T0, prompt_tokens=5, completion_tokens=5),
            request("t1", "k1", T0 + 1, model="llama3.2:3b", prompt_tokens=1, completion_tokens=2),
            request("t1", "k1", T0 + 2, status=404, model=None),
            request("t1", "k2", T0 + day, prompt_tokens=3, completion_tokens=4),
            request("t2", "k3", T0, prompt_tokens=9, completion_tokens=9),
            admin("t1", T0, "key.created"),
        ],
        [],
    )
    rows = await store.usage.daily_by_model("t1", T0 - 10)
    day0, day1 = "2027-01-15", "2027-01-16"
    assert [(r.day, r.key_name, r.model, r.requests, r.errors) for r in rows] == [
        (day0, "ci", None, 1, 1),
        (day0, "ci", "llama3.2:3b", 1, 0),
        (day0, "ci", "qwen3:8b", 1, 0),
        (day1, "prod", "qwen3:8b", 1, 0),
    ]
    assert (rows[2].prompt_tokens, rows[2].completion_tokens) == (5, 5)
    assert [r.key_name for r in await store.usage.daily_by_model("t1", T0, "k2")] == ["prod"]
    assert await store.usage.daily_by_model("t1", T0 + 2 * day) == []


async def test_the_audit_is_filtered_and_paged(store: Store) -> None:
    await store.usage.record(
        [
            request("t1", "k1", T0 + 1, machine="gpu-1"),
            request("t1", "k1", T0 + 2, machine="gpu-2", status=429),
            request("t1", "k2", T0 + 2, machine="gpu-1", status=502),
            admin("t1", T0 + 3, "key.created"),
            request("t2", "k3", T0 + 4, machine="gpu-1"),
        ],
        [],
    )

    async def actions(**query: Any) -> list[tuple[float, str | None, int | None]]:
        events = await store.usage.audit_page("t1", AuditQuery(**query), 100)
        assert all(set(e) == {"id", *AUDIT_COLUMNS} for e in events)
        return [(e["at"] - T0, e["key_id"], e["status"]) for e in events]

    assert await actions() == [(3, None, None), (2, "k2", 502), (2, "k1", 429), (1, "k1", 200)]
    assert await actions(kind="request", machine="gpu-1") == [(2, "k2", 502), (1, "k1", 200)]
    assert await actions(status_min=400, status_max=499) == [(2, "k1", 429)]
    assert await actions(status_min=400) == [(2, "k2", 502), (2, "k1", 429)]
    assert await actions(key_id="k1", since=T0 + 2) == [(2, "k1", 429)]
    assert await actions(until=T0 + 2) == [(1, "k1", 200)]
    # Pages of two, on (at, id): events of the same second are neither lost nor repeated.
    first = await store.usage.audit_page("t1", AuditQuery(), 2)
    cursor = (first[-1]["at"], first[-1]["id"])
    second = await store.usage.audit_page("t1", AuditQuery(before=cursor), 2)
    third = await store.usage.audit_page(
        "t1", AuditQuery(before=(second[-1]["at"], second[-1]["id"])), 2
    )
    seen = [e["id"] for e in first + second + third]
    assert len(seen) == len(set(seen)) == 4
