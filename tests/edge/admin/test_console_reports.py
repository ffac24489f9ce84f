"""What the admin API gained for the console: one tenant's view, request time series (one
tenant's and every managed tenant's), usage per key and model per day, CSV downloads, and the
audit's filters and pages (edge/admin/stats.py, reports.py)."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest

from edge.audit import RequestRecord
from tests.edge.admin.conftest import AdminApi


async def served(
    admin_api: AdminApi, slug: str, key_name: str, status: int = 200, model: str = "qwen3:8b"
) -> None:
    """One request of the key, filed as the public API files it (the key made if need be)."""
    tenant = await admin_api.ctx.store.tenants.by_slug(slug)
    assert tenant is not None
    key = await admin_api.ctx.store.keys.by_name(tenant.id, key_name)
    if key is None:
        await admin_api.ok("POST", f"/tenants/{slug}/keys", {"name": key_name})
        key = await admin_api.ctx.store.keys.by_name(tenant.id, key_name)
    assert key is not None
    record = RequestRecord("POST /v1/chat/completions", "127.0.0.1", "test")
    record.tenant_id, record.key_id, record.key_name = tenant.id, key.id, key_name
    record.model, record.machine = model, "gpu-1"
    admin_api.ctx.recorder.request(record, status)


async def test_one_tenants_view(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    view = await admin_api.ok("GET", "/tenants/acme")
    assert view["slug"] == "acme"
    assert view["api_base"] == "https://acme.example.test:8443/v1"
    assert view["store_responses"] is False


async def test_stats_count_requests_and_errors_per_tenant(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    await admin_api.tenant("globex")
    await served(admin_api, "acme", "k1")
    await served(admin_api, "acme", "k1", status=502)
    await served(admin_api, "globex", "k1")
    stats = await admin_api.ok("GET", "/stats")
    assert stats["bucket_seconds"] == 900  # 24 h in at most 200 buckets
    assert stats["since"] % 900 == 0
    by_slug = {t["slug"]: t["points"] for t in stats["tenants"]}
    assert [(p["requests"], p["errors"]) for p in by_slug["acme"]] == [(2, 1)]
    assert [p["requests"] for p in by_slug["globex"]] == [1]
    one = await admin_api.ok("GET", "/tenants/acme/stats", params={"bucket": "60"})
    assert [t["slug"] for t in one["tenants"]] == ["acme"]
    assert one["bucket_seconds"] == 60


async def test_a_tenant_admin_sees_only_its_own_stats(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    await admin_api.tenant("globex")
    own = await admin_api.tenant_admin_key("acme", "alice")
    stats = await admin_api.ok("GET", "/stats", key=own)
    assert [t["slug"] for t in stats["tenants"]] == ["acme"]
    assert (await admin_api.call("GET", "/tenants/globex/stats", key=own)).status == 403


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"bucket": "7"}, "bucket"),
        ({"bucket": "60", "since": "0"}, "bucket"),  # too many buckets
        ({"since": "2000", "until": "1000"}, "since"),
        ({"until": "nan"}, "until"),
    ],
)
async def test_stats_refuse_a_bad_window(
    admin_api: AdminApi, params: dict[str, str], param: str
) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("GET", "/tenants/acme/stats", params=params)
    assert (answer.status, answer.error["param"]) == (400, param)


async def test_usage_per_key_and_model_per_day(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    await served(admin_api, "acme", "k1")
    await served(admin_api, "acme", "k1", model="llama3.2:3b", status=400)
    await served(admin_api, "acme", "k2")
    usage = (await admin_api.ok("GET", "/tenants/acme/usage/models"))["usage"]
    assert [(u["key"], u["model"], u["requests"], u["errors"]) for u in usage] == [
        ("k1", "llama3.2:3b", 1, 1),
        ("k1", "qwen3:8b", 1, 0),
        ("k2", "qwen3:8b", 1, 0),
    ]
    only = await admin_api.ok("GET", "/tenants/acme/usage/models", params={"key": "k2"})
    assert [u["key"] for u in only["usage"]] == ["k2"]


@pytest.mark.parametrize("report", ["usage", "usage/models"])
async def test_usage_downloads_as_csv(admin_api: AdminApi, report: str) -> None:
    await admin_api.tenant("acme")
    await served(admin_api, "acme", "k1", model="=HYPERLINK(evil)")
    response = await admin_api.client.get(
        f"/admin/v1/tenants/acme/{report}",
        params={"format": "csv"},
        headers={"Authorization": f"Bearer {admin_api.operator}"},
    )
    assert response.status == 200
    assert response.content_type == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="acme-usage-by-')
    rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0][:2] == ["day", "key"]
    assert rows[1][1] == "k1"
    if report == "usage/models":
        assert rows[1][2] == "'=HYPERLINK(evil)"  # never a formula in a spreadsheet


async def test_usage_refuses_another_format(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("GET", "/tenants/acme/usage", params={"format": "xml"})
    assert (answer.status, answer.error["param"]) == (400, "format")


async def events(admin_api: AdminApi, **params: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = (await admin_api.ok("GET", "/tenants/acme/audit", params=params))[
        "events"
    ]
    return found


async def test_the_audit_filters_by_kind_status_machine_and_time(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    await served(admin_api, "acme", "k1")
    await served(admin_api, "acme", "k1", status=429)
    await served(admin_api, "acme", "k1", status=502)
    assert [e["status"] for e in await events(admin_api, kind="request")] == [502, 429, 200]
    assert {e["kind"] for e in await events(admin_api, kind="admin")} == {"admin"}
    assert [e["status"] for e in await events(admin_api, status="error")] == [502, 429]
    assert [e["status"] for e in await events(admin_api, status="4xx")] == [429]
    assert [e["status"] for e in await events(admin_api, status="200")] == [200]
    assert len(await events(admin_api, machine="gpu-1")) == 3
    assert await events(admin_api, machine="gpu-9") == []
    assert await events(admin_api, until=str(time.time() - 3600)) == []


async def test_the_audit_pages_with_a_cursor(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    for _ in range(5):
        await served(admin_api, "acme", "k1")
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await admin_api.ok("GET", "/tenants/acme/audit", params=params)
        seen += [e["id"] for e in page["events"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = [e["id"] for e in await events(admin_api)]
    assert seen == everything  # 5 requests and 2 admin events, each once, newest first
    assert len(everything) == 7 and pages == 4


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"status": "teapot"}, "status"),
        ({"status": "600"}, "status"),
        ({"kind": "everything"}, "kind"),
        ({"machine": "../x"}, "machine"),
        ({"cursor": "yesterday"}, "cursor"),
        ({"cursor": "1.5:x"}, "cursor"),
        ({"until": "-1"}, "until"),
    ],
)
async def test_the_audit_refuses_bad_filters(
    admin_api: AdminApi, params: dict[str, str], param: str
) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("GET", "/tenants/acme/audit", params=params)
    assert (answer.status, answer.error["param"]) == (400, param)
