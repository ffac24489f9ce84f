"""API keys (``edge.admin.keys``): create with limits, list, rotate, revoke."""

from __future__ import annotations

import time
from typing import Any

import pytest

from edge.admin.access import MAX_KEY_LIFETIME, MAX_MODEL_NAME, MAX_ROTATION_GRACE
from edge.admin.keys import DEFAULT_ROTATION_GRACE
from tests.edge.admin.conftest import AdminApi

VIEW = {
    "name",
    "prefix",
    "created_at",
    "expires_at",
    "last_used_at",
    "models",
    "budget_tokens",
    "budget_period",
    "rpm",
    "tpm",
    "machine",
}


async def test_a_key_is_created_with_its_limits_and_its_secret_shown_once(
    admin_api: AdminApi,
) -> None:
    await admin_api.tenant("acme")
    await admin_api.machine("acme", "gpu-1")
    body = {
        "name": "laptop",
        "models": [" qwen3:8b ", "llama3.2:3b"],
        "budget_tokens": 1000,
        "rpm": 60,
        "tpm": 10_000,
        "machine": "gpu-1",
        "expires_in_seconds": 3600,
    }
    answer = await admin_api.call("POST", "/tenants/acme/keys", body)
    assert answer.status == 201
    created = answer.body
    assert set(created) == VIEW | {"secret", "api_base"}
    assert created["secret"].startswith("sk-lt-")
    assert created["secret"].startswith(created["prefix"])
    assert created["api_base"] == "https://acme.example.test:8443/v1"
    assert created["models"] == ["qwen3:8b", "llama3.2:3b"]
    assert (created["budget_tokens"], created["budget_period"]) == (1000, "day")
    assert (created["rpm"], created["tpm"], created["machine"]) == (60, 10_000, "gpu-1")
    assert time.time() + 3590 < created["expires_at"] <= time.time() + 3600
    listed = (await admin_api.ok("GET", "/tenants/acme/keys"))["keys"]
    assert listed == [{k: v for k, v in created.items() if k in VIEW}]
    assert (await admin_api.audit_trail("acme"))[-1] == ("key.created", "laptop", "operator")


async def test_a_key_without_limits_has_none(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    created = await admin_api.ok("POST", "/tenants/acme/keys", {"name": "k1"})
    assert {k: created[k] for k in VIEW - {"name", "prefix", "created_at"}} == dict.fromkeys(
        VIEW - {"name", "prefix", "created_at"}
    )


async def test_a_taken_key_name_is_409(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    await admin_api.ok("POST", "/tenants/acme/keys", {"name": "k1"})
    answer = await admin_api.call("POST", "/tenants/acme/keys", {"name": "k1"})
    assert answer.status == 409
    assert answer.error["code"] == "key_exists"


@pytest.mark.parametrize(
    ("limits", "param"),
    [
        ({"name": "bad name"}, "name"),
        ({"expires_in_seconds": 0}, "expires_in_seconds"),
        ({"expires_in_seconds": MAX_KEY_LIFETIME + 1}, "expires_in_seconds"),
        ({"models": []}, "models"),
        ({"models": "qwen3:8b"}, "models"),
        ({"models": [" "]}, "models"),
        ({"models": ["m" * (MAX_MODEL_NAME + 1)]}, "models"),
        ({"models": ["qwen3\x00:8b"]}, "models"),  # PostgreSQL refuses NUL: refused for both
        ({"budget_tokens": 0}, "budget_tokens"),
        ({"budget_tokens": 10, "budget_period": "fortnight"}, "budget_period"),
        ({"budget_period": "day"}, "budget_period"),
        ({"rpm": 1.5}, "rpm"),
        ({"tpm": -1}, "tpm"),
        ({"machine": "bad name"}, "machine"),
    ],
)
async def test_bad_limits_are_400_naming_the_field(
    admin_api: AdminApi, limits: dict[str, Any], param: str
) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("POST", "/tenants/acme/keys", {"name": "k1", **limits})
    assert answer.status == 400
    assert answer.error["param"] == param
    assert await admin_api.ok("GET", "/tenants/acme/keys") == {"keys": []}


async def test_binding_to_an_unknown_machine_is_404(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("POST", "/tenants/acme/keys", {"name": "k1", "machine": "gpu-9"})
    assert answer.status == 404
    assert (answer.error["code"], answer.error["param"]) == ("machine_not_found", "machine")


async def test_rotation_gives_a_new_secret_and_keeps_the_old_for_the_grace(
    admin_api: AdminApi,
) -> None:
    await admin_api.tenant("acme")
    old = (await admin_api.ok("POST", "/tenants/acme/keys", {"name": "k1"}))["secret"]
    rotated = await admin_api.ok("POST", "/tenants/acme/keys/k1/rotate", {"grace_seconds": 60})
    assert set(rotated) == {"name", "secret", "prefix", "previous_secret_valid_until"}
    assert rotated["name"] == "k1" and rotated["secret"] != old
    assert rotated["secret"].startswith(rotated["prefix"])
    assert time.time() + 55 < rotated["previous_secret_valid_until"] <= time.time() + 60
    keys = admin_api.ctx.store.keys
    now = time.time()
    assert await keys.by_hash(admin_api.ctx.hasher.digest(old), now + 30) is not None
    assert await keys.by_hash(admin_api.ctx.hasher.digest(old), now + 90) is None
    assert await keys.by_hash(admin_api.ctx.hasher.digest(rotated["secret"]), now) is not None
    assert (await admin_api.audit_trail("acme"))[-1] == ("key.rotated", "k1", "operator")


async def test_rotation_grace_defaults_to_a_day_and_may_be_zero(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    await admin_api.ok("POST", "/tenants/acme/keys", {"name": "k1"})
    default = await admin_api.ok("POST", "/tenants/acme/keys/k1/rotate", {})
    until = default["previous_secret_valid_until"]
    assert time.time() + DEFAULT_ROTATION_GRACE - 10 < until <= time.time() + DEFAULT_ROTATION_GRACE
    at_once = await admin_api.ok("POST", "/tenants/acme/keys/k1/rotate", {"grace_seconds": 0})
    assert at_once["previous_secret_valid_until"] <= time.time()


@pytest.mark.parametrize("grace", [-1, MAX_ROTATION_GRACE + 1, "60", False])
async def test_a_grace_out_of_range_is_400(admin_api: AdminApi, grace: object) -> None:
    await admin_api.tenant("acme")
    await admin_api.ok("POST", "/tenants/acme/keys", {"name": "k1"})
    answer = await admin_api.call("POST", "/tenants/acme/keys/k1/rotate", {"grace_seconds": grace})
    assert answer.status == 400
    assert answer.error["param"] == "grace_seconds"


async def test_a_revoked_key_is_gone(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    secret = (await admin_api.ok("POST", "/tenants/acme/keys", {"name": "k1"}))["secret"]
    assert await admin_api.ok("DELETE", "/tenants/acme/keys/k1") == {"revoked": "k1"}
    assert await admin_api.ok("GET", "/tenants/acme/keys") == {"keys": []}
    key = await admin_api.ctx.store.keys.by_hash(admin_api.ctx.hasher.digest(secret))
    assert key is not None and key.revoked_at is not None
    assert (await admin_api.audit_trail("acme"))[-1] == ("key.revoked", "k1", "operator")


@pytest.mark.parametrize(("method", "path"), [("DELETE", ""), ("POST", "/rotate")])
async def test_an_unknown_key_is_404(admin_api: AdminApi, method: str, path: str) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call(method, f"/tenants/acme/keys/k9{path}", {})
    assert answer.status == 404
    assert (answer.error["code"], answer.error["message"]) == ("key_not_found", "no key 'k9'")
