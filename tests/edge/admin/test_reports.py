"""Usage and audit (``edge.admin.reports``)."""

from __future__ import annotations

import datetime
import time

import pytest

from edge.audit import RequestRecord
from edge.store import ApiKey
from tests.edge.admin.conftest import AdminApi


async def served(admin_api: AdminApi, slug: str, name: str) -> ApiKey:
    """A key that has served one request (as the public API records it)."""
    await admin_api.ok("POST", f"/tenants/{slug}/keys", {"name": name})
    tenant = await admin_api.ctx.store.tenants.by_slug(slug)
    assert tenant is not None
    key = await admin_api.ctx.store.keys.by_name(tenant.id, name)
    assert key is not None
    record = RequestRecord("POST /v1/chat/completions", "127.0.0.1", "test")
    record.tenant_id, record.key_id, record.key_name = tenant.id, key.id, name
    admin_api.ctx.recorder.request(record, 200)  # not flushed: the admin API flushes first
    return key


async def test_usage_counts_requests_per_key_per_day(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    await served(admin_api, "acme", "k1")
    await served(admin_api, "acme", "k2")
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    usage = await admin_api.ok("GET", "/tenants/acme/usage")
    thirty_days_ago = time.time() - 30 * 86400
    assert usage["since"] == (
        datetime.datetime.fromtimestamp(thirty_days_ago, datetime.UTC).date().isoformat()
    )
    assert usage["usage"] == [
        {"key": k, "day": today, "requests": 1, "prompt_tokens": 0, "completion_tokens": 0}
        for k in ("k1", "k2")
    ]
    only = await admin_api.ok("GET", "/tenants/acme/usage", params={"key": "k2"})
    assert [row["key"] for row in only["usage"]] == ["k2"]
    later = await admin_api.ok(
        "GET", "/tenants/acme/usage", params={"since": str(time.time() + 2 * 86400)}
    )
    assert later["usage"] == []


async def test_audit_lists_requests_and_admin_actions_newest_first(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    key = await served(admin_api, "acme", "k1")
    events = (await admin_api.ok("GET", "/tenants/acme/audit"))["events"]
    assert [(e["kind"], e["action"]) for e in events] == [
        ("request", "POST /v1/chat/completions"),
        ("admin", "key.created"),
        ("admin", "tenant.created"),
    ]
    assert all("tenant_id" not in e for e in events)
    assert events[0]["key_id"] == key.id and events[0]["status"] == 200
    limited = await admin_api.ok("GET", "/tenants/acme/audit", params={"limit": "1"})
    assert len(limited["events"]) == 1
    by_key = await admin_api.ok("GET", "/tenants/acme/audit", params={"key": "k1"})
    assert [e["kind"] for e in by_key["events"]] == ["request"]


@pytest.mark.parametrize("report", ["usage", "audit"])
@pytest.mark.parametrize("since", ["-1", "nan", "inf", "yesterday", "1e300", "253402300800"])
async def test_since_must_be_a_real_time(admin_api: AdminApi, report: str, since: str) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("GET", f"/tenants/acme/{report}", params={"since": since})
    assert answer.status == 400
    assert answer.error["param"] == "since"
    assert answer.error["message"] == (
        "since must be a Unix time in seconds, from 0 to 253402300799"
    )


@pytest.mark.parametrize("limit", ["0", "10001", "ten", "1.5", ""])
async def test_the_audit_limit_is_1_to_10000(admin_api: AdminApi, limit: str) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("GET", "/tenants/acme/audit", params={"limit": limit})
    assert answer.status == 400
    assert (answer.error["param"], answer.error["message"]) == ("limit", "limit must be 1 to 10000")


@pytest.mark.parametrize("report", ["usage", "audit"])
async def test_filtering_on_an_unknown_key_is_404(admin_api: AdminApi, report: str) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("GET", f"/tenants/acme/{report}", params={"key": "k9"})
    assert answer.status == 404
    assert answer.error["code"] == "key_not_found"
