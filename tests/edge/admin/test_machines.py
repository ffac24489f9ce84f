"""Machines (``edge.admin.machines``): pair, list, revoke."""

from __future__ import annotations

import time

import pytest

from edge.admin.access import MAX_PAIRING_TTL
from tests.edge.admin.conftest import AdminApi


async def test_pairing_gives_a_code_and_the_command_to_run(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call(
        "POST", "/tenants/acme/machines/pair", {"name": "gpu-1", "ttl_seconds": 60}
    )
    assert answer.status == 201
    pairing = answer.body
    assert set(pairing) == {"code", "machine", "expires_at", "agent_command"}
    assert pairing["machine"] == "gpu-1"
    assert time.time() + 55 < pairing["expires_at"] <= time.time() + 60
    assert pairing["agent_command"] == (
        f"llmtunnel agent pair {pairing['code']} --edge https://acme.example.test:8443"
    )
    assert await admin_api.audit_trail("acme") == [
        ("tenant.created", "acme", "operator"),
        ("machine.pairing_code_created", "gpu-1", "operator"),
    ]


async def test_a_code_lives_the_configured_time_by_default(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    pairing = await admin_api.ok("POST", "/tenants/acme/machines/pair", {"name": "gpu-1"})
    ttl = admin_api.ctx.config.pairing_ttl
    assert time.time() + ttl - 5 < pairing["expires_at"] <= time.time() + ttl


@pytest.mark.parametrize("ttl", [0, -1, MAX_PAIRING_TTL + 1, "60", True])
async def test_a_pairing_ttl_out_of_range_is_400(admin_api: AdminApi, ttl: object) -> None:
    await admin_api.tenant("acme")
    body = {"name": "gpu-1", "ttl_seconds": ttl}
    answer = await admin_api.call("POST", "/tenants/acme/machines/pair", body)
    assert answer.status == 400
    assert answer.error["param"] == "ttl_seconds"


async def test_a_live_machines_name_is_taken(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    await admin_api.machine("acme", "gpu-1")
    answer = await admin_api.call("POST", "/tenants/acme/machines/pair", {"name": "gpu-1"})
    assert answer.status == 409
    assert answer.error["code"] == "machine_exists"


async def test_machines_are_listed_offline_without_an_agent(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    machine = await admin_api.machine("acme", "gpu-1")
    listed = await admin_api.ok("GET", "/tenants/acme/machines")
    assert listed == {
        "machines": [
            {
                "name": "gpu-1",
                "id": machine.id,
                "created_at": machine.created_at,
                "online": False,
                "degraded": None,
            }
        ]
    }


async def test_revoking_a_machine_revokes_the_keys_bound_to_it(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    await admin_api.machine("acme", "gpu-1")
    await admin_api.ok("POST", "/tenants/acme/keys", {"name": "bound", "machine": "gpu-1"})
    await admin_api.ok("POST", "/tenants/acme/keys", {"name": "free"})
    revoked = await admin_api.ok("DELETE", "/tenants/acme/machines/gpu-1")
    assert revoked == {"revoked": "gpu-1", "was_online": False, "revoked_keys": ["bound"]}
    assert await admin_api.ok("GET", "/tenants/acme/machines") == {"machines": []}
    keys = await admin_api.ok("GET", "/tenants/acme/keys")
    assert [k["name"] for k in keys["keys"]] == ["free"]
    assert (await admin_api.audit_trail("acme"))[-2:] == [
        ("machine.revoked", "gpu-1", "operator"),
        ("key.revoked", "bound", "operator"),
    ]


async def test_revoking_an_unknown_machine_is_404(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("DELETE", "/tenants/acme/machines/gpu-9")
    assert answer.status == 404
    assert (answer.error["code"], answer.error["message"]) == (
        "machine_not_found",
        "no machine 'gpu-9'",
    )
