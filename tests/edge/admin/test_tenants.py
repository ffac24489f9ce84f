"""Tenants (``edge.admin.tenants``): create, list, update."""

from __future__ import annotations

from typing import Any

import pytest

from tests.edge.admin.conftest import AdminApi


async def test_a_created_tenant_is_listed_with_its_urls(admin_api: AdminApi) -> None:
    answer = await admin_api.call("POST", "/tenants", {"slug": "acme"})
    assert answer.status == 201
    created = answer.body
    assert set(created) == {"slug", "url", "api_base", "created_at", "store_responses"}
    assert created["url"] == "https://acme.example.test:8443"
    assert created["api_base"] == "https://acme.example.test:8443/v1"
    assert created["store_responses"] is False
    assert await admin_api.ok("GET", "/tenants") == {"tenants": [created]}
    assert await admin_api.audit_trail("acme") == [("tenant.created", "acme", "operator")]


async def test_a_taken_slug_is_409(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("POST", "/tenants", {"slug": "acme"})
    assert answer.status == 409
    assert answer.error["code"] == "tenant_exists"


@pytest.mark.parametrize("slug", ["", "-acme", "acme-", "Acme", "a" * 33, "a_b", 5, None])
async def test_a_bad_slug_is_400(admin_api: AdminApi, slug: Any) -> None:
    answer = await admin_api.call("POST", "/tenants", {"slug": slug})
    assert answer.status == 400
    assert answer.error["param"] == "slug"
    assert await admin_api.ok("GET", "/tenants") == {"tenants": []}


async def test_only_the_operator_creates_tenants_and_a_tenant_admin_lists_its_own(
    admin_api: AdminApi,
) -> None:
    await admin_api.tenant("acme")
    await admin_api.tenant("globex")
    alice = await admin_api.tenant_admin_key("acme", "alice")
    refused = await admin_api.call("POST", "/tenants", {"slug": "mine"}, key=alice)
    assert refused.status == 403
    assert refused.error["message"] == "only the operator creates tenants"
    listed = await admin_api.ok("GET", "/tenants", key=alice)
    assert [t["slug"] for t in listed["tenants"]] == ["acme"]
    everything = await admin_api.ok("GET", "/tenants")
    assert [t["slug"] for t in everything["tenants"]] == ["acme", "globex"]


async def test_store_responses_is_switched_on_and_off(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    on = await admin_api.ok("PATCH", "/tenants/acme", {"store_responses": True})
    assert on["store_responses"] is True and on["deleted_responses"] == 0
    off = await admin_api.ok("PATCH", "/tenants/acme", {"store_responses": False})
    assert off["store_responses"] is False
    assert (await admin_api.audit_trail("acme"))[1:] == [
        ("tenant.updated", "store_responses=on", "operator"),
        ("tenant.updated", "store_responses=off", "operator"),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "nothing to update: give store_responses"),
        ({"store_responses": "yes"}, "store_responses must be true or false"),
        ({"store_responses": None}, "store_responses must be true or false"),
    ],
)
async def test_a_bad_update_is_400(admin_api: AdminApi, body: Any, message: str) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("PATCH", "/tenants/acme", body)
    assert answer.status == 400
    assert (answer.error["param"], answer.error["message"]) == ("store_responses", message)


@pytest.mark.parametrize("body", [b"[]", b"{", b'{"slug": "a"} x'])
async def test_a_body_that_is_no_json_object_is_400(admin_api: AdminApi, body: bytes) -> None:
    answer = await admin_api.call("POST", "/tenants", data=body)
    assert answer.status == 400
    assert answer.error["code"] == "invalid_json"
