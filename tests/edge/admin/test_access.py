"""Who may act on a tenant (``edge.admin.access``): the operator on every tenant, a tenant admin
on its own only, and nobody without an admin key, over every route of the admin API."""

from __future__ import annotations

from typing import Any

import pytest

from edge.admin.access import name_field, seconds_field, whole_number_field
from edge.errors import ApiError
from tests.edge.admin.conftest import AdminApi

# Every route that names a tenant, with a body that would succeed there, and its status then.
TENANT_ROUTES: list[tuple[str, str, dict[str, Any] | None, int]] = [
    ("GET", "/tenants/{slug}", None, 200),
    ("PATCH", "/tenants/{slug}", {"store_responses": True}, 200),
    ("POST", "/tenants/{slug}/machines/pair", {"name": "gpu-2"}, 201),
    ("GET", "/tenants/{slug}/machines", None, 200),
    ("DELETE", "/tenants/{slug}/machines/gpu-1", None, 200),
    ("POST", "/tenants/{slug}/keys", {"name": "k2"}, 201),
    ("GET", "/tenants/{slug}/keys", None, 200),
    ("POST", "/tenants/{slug}/keys/k1/rotate", {}, 200),
    ("DELETE", "/tenants/{slug}/keys/k1", None, 200),
    ("GET", "/tenants/{slug}/usage", None, 200),
    ("GET", "/tenants/{slug}/usage/models", None, 200),
    ("GET", "/tenants/{slug}/stats", None, 200),
    ("GET", "/tenants/{slug}/audit", None, 200),
    ("POST", "/tenants/{slug}/admin-keys", {"name": "bob"}, 201),
    ("GET", "/tenants/{slug}/admin-keys", None, 200),
    ("DELETE", "/tenants/{slug}/admin-keys/owner", None, 200),
    ("GET", "/tenants/{slug}/aliases", None, 200),
    ("PUT", "/tenants/{slug}/aliases/fast", {"model": "llama3.2:3b"}, 200),
    ("DELETE", "/tenants/{slug}/aliases/fast", None, 200),
]
ROUTES = [
    ("POST", "/tenants", {"slug": "initech"}),
    ("GET", "/tenants", None),
    ("GET", "/stats", None),
    *((method, path, body) for method, path, body, _ in TENANT_ROUTES),
]
FORBIDDEN = {
    "message": "This admin key does not manage that tenant",
    "type": "permission_error",
    "param": None,
    "code": "forbidden",
}


def route_id(route: tuple[Any, ...]) -> str:
    return f"{route[0]} {route[1]}"


async def furnish(api: AdminApi, slug: str) -> str:
    """A tenant with one of everything the routes touch; returns its admin key ``owner``."""
    await api.tenant(slug)
    await api.machine(slug, "gpu-1")
    await api.ok("POST", f"/tenants/{slug}/keys", {"name": "k1"})
    await api.ok("PUT", f"/tenants/{slug}/aliases/fast", {"model": "qwen3:8b"})
    return await api.tenant_admin_key(slug, "owner")


async def snapshot(api: AdminApi, slug: str) -> list[Any]:
    return [
        await api.ok("GET", "/tenants"),
        await api.ok("GET", f"/tenants/{slug}/machines"),
        await api.ok("GET", f"/tenants/{slug}/keys"),
        await api.ok("GET", f"/tenants/{slug}/aliases"),
        await api.ok("GET", f"/tenants/{slug}/admin-keys"),
        await api.audit_trail(slug),
    ]


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=route_id)
async def test_the_operator_manages_every_tenant(
    admin_api: AdminApi, route: tuple[str, str, dict[str, Any] | None, int]
) -> None:
    method, path, body, status = route
    await furnish(admin_api, "acme")
    answer = await admin_api.call(method, path.format(slug="acme"), body)
    assert answer.status == status, answer


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=route_id)
async def test_a_tenant_admin_manages_its_own_tenant(
    admin_api: AdminApi, route: tuple[str, str, dict[str, Any] | None, int]
) -> None:
    method, path, body, status = route
    own = await furnish(admin_api, "acme")
    if path.endswith("/admin-keys") and method == "POST":
        status = 403  # only the operator makes tenant admin keys
    answer = await admin_api.call(method, path.format(slug="acme"), body, key=own)
    assert answer.status == status, answer


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=route_id)
async def test_a_tenant_admin_is_refused_on_another_tenant_and_changes_nothing(
    admin_api: AdminApi, route: tuple[str, str, dict[str, Any] | None, int]
) -> None:
    method, path, body, _ = route
    own = await furnish(admin_api, "acme")
    await furnish(admin_api, "globex")
    before = await snapshot(admin_api, "globex")
    answer = await admin_api.call(method, path.format(slug="globex"), body, key=own)
    assert answer.status == 403
    assert answer.error == FORBIDDEN
    assert await snapshot(admin_api, "globex") == before


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=route_id)
async def test_a_tenant_admin_cannot_probe_which_tenants_exist(
    admin_api: AdminApi, route: tuple[str, str, dict[str, Any] | None, int]
) -> None:
    method, path, body, _ = route
    own = await furnish(admin_api, "acme")
    answer = await admin_api.call(method, path.format(slug="no-such"), body, key=own)
    assert answer.status == 403
    assert answer.error == FORBIDDEN  # word for word as for a tenant that exists


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=route_id)
async def test_the_operator_is_told_a_tenant_does_not_exist(
    admin_api: AdminApi, route: tuple[str, str, dict[str, Any] | None, int]
) -> None:
    method, path, body, _ = route
    answer = await admin_api.call(method, path.format(slug="no-such"), body)
    assert answer.status == 404
    assert answer.error["code"] == "tenant_not_found"
    assert answer.error["message"] == "no tenant 'no-such'"


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
@pytest.mark.parametrize("key", [None, "sk-lt-admin-wrong", "api-key"])
async def test_every_route_needs_an_admin_key(
    admin_api: AdminApi, route: tuple[str, str, dict[str, Any] | None], key: str | None
) -> None:
    method, path, body = route
    await furnish(admin_api, "acme")
    if key == "api-key":  # a tenant's API key is no admin key
        key = (await admin_api.ok("POST", "/tenants/acme/keys", {"name": "client"}))["secret"]
    before = await snapshot(admin_api, "acme")
    answer = await admin_api.call(method, path.format(slug="acme"), body, key=key)
    assert answer.status == 401
    assert answer.error["code"] == "invalid_admin_key"
    assert await snapshot(admin_api, "acme") == before


async def test_a_revoked_tenant_admin_key_is_refused_at_once(admin_api: AdminApi) -> None:
    own = await furnish(admin_api, "acme")
    await admin_api.ok("DELETE", "/tenants/acme/admin-keys/owner")
    answer = await admin_api.call("GET", "/tenants/acme/keys", key=own)
    assert answer.status == 401


@pytest.mark.parametrize(
    "value", ["", "-lead", "a" * 64, "has space", "ünïcode", 7, None, True, ["k"]]
)
def test_a_name_is_63_plain_characters(value: Any) -> None:
    with pytest.raises(ApiError) as caught:
        name_field({"machine": value}, "machine")
    assert (caught.value.status, caught.value.param) == (400, "machine")
    assert name_field({"name": "gpu-1.a_b"}) == "gpu-1.a_b"


def test_seconds_are_a_number_in_range() -> None:
    assert seconds_field({}, "ttl", 60) is None
    assert seconds_field({"ttl": 60}, "ttl", 60) == 60.0
    assert seconds_field({"ttl": 0}, "ttl", 60, zero_allowed=True) == 0.0
    for value in (0, -1, 60.5, True, "5", float("nan"), float("inf")):
        with pytest.raises(ApiError) as caught:
            seconds_field({"ttl": value}, "ttl", 60)
        assert caught.value.param == "ttl"
        assert caught.value.message == "ttl must be a number of seconds, more than 0 and at most 60"


def test_whole_numbers_are_whole_and_in_range() -> None:
    assert whole_number_field({}, "rpm", 10) is None
    assert whole_number_field({"rpm": 10}, "rpm", 10) == 10
    for value in (0, 11, 1.0, True, "3", 2**64):
        with pytest.raises(ApiError) as caught:
            whole_number_field({"rpm": value}, "rpm", 10)
        assert caught.value.message == "rpm must be a whole number from 1 to 10"
