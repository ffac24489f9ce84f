"""One tenant admin's request can never wedge the store every tenant shares: numbers are
range-checked at the boundary, JSON is parsed strictly, and whatever goes wrong inside a
transaction rolls it back (the store's own test shows that part)."""

from __future__ import annotations

import pytest

from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e


async def test_a_number_past_64_bits_is_400_and_the_store_keeps_working(stack: Stack) -> None:
    await stack.tenant("acme")
    await stack.agent("acme", "gpu-1")
    kept = await stack.key("acme", "kept")
    async with stack.admin() as admin:
        refused = await admin.post(
            "/tenants/acme/keys", json={"name": "x", "rpm": 9223372036854775808}
        )
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "rpm"
        assert "out of range" in refused.json()["error"]["message"]
        # Everything that writes still does, for this tenant and any other.
        assert (await admin.post("/tenants", json={"slug": "other"})).status_code == 201
        created = await admin.post("/tenants/acme/keys", json={"name": "y", "rpm": 10})
        assert created.status_code == 201
        assert (await admin.delete("/tenants/acme/keys/kept")).status_code == 200
        assert (await admin.delete("/tenants/acme/machines/gpu-1")).status_code == 200
    # The revocation was committed: it holds after a restart.
    await stack.restart_edge()
    async with stack.http() as http:
        response = await http.get("/v1/models", headers={"Authorization": f"Bearer {kept}"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/tenants/acme/machines/pair", b'{"name": "m", "ttl_seconds": NaN}'),
        ("/tenants/acme/keys", b'{"name": "k", "expires_in_seconds": Infinity}'),
        ("/tenants/acme/keys/ci/rotate", b'{"grace_seconds": -Infinity}'),
    ],
)
async def test_non_finite_durations_are_refused(stack: Stack, path: str, body: bytes) -> None:
    await stack.tenant("acme")
    await stack.key("acme", "ci")
    async with stack.admin() as admin:
        response = await admin.post(
            path, content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert "finite number" in error["message"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"ttl_seconds": 8 * 86400}, "ttl_seconds"),  # past the 7-day maximum
        ({"ttl_seconds": 0}, "ttl_seconds"),
    ],
)
async def test_pairing_code_lifetimes_are_bounded(
    stack: Stack, fields: dict[str, object], param: str
) -> None:
    await stack.tenant("acme")
    async with stack.admin() as admin:
        response = await admin.post("/tenants/acme/machines/pair", json={"name": "m", **fields})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


@pytest.mark.parametrize("since", ["1e20", "nan", "inf", "-5", "soon"])
async def test_usage_and_audit_since_must_be_a_real_time(stack: Stack, since: str) -> None:
    await stack.tenant("acme")
    async with stack.admin() as admin:
        for path in ("/tenants/acme/usage", "/tenants/acme/audit"):
            response = await admin.get(path, params={"since": since})
            assert response.status_code == 400, path
            assert response.json()["error"]["param"] == "since"
