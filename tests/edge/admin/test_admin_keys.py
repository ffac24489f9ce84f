"""Tenant admin keys (``edge.admin.admin_keys``): create (operator only), list, revoke."""

from __future__ import annotations

from tests.edge.admin.conftest import AdminApi


async def test_the_operator_makes_a_tenant_admin_key(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("POST", "/tenants/acme/admin-keys", {"name": "alice"})
    assert answer.status == 201
    assert set(answer.body) == {"name", "tenant", "secret"}
    assert (answer.body["name"], answer.body["tenant"]) == ("alice", "acme")
    assert answer.body["secret"].startswith("sk-lt-admin-")
    listed = (await admin_api.ok("GET", "/tenants/acme/admin-keys"))["admin_keys"]
    assert [set(k) for k in listed] == [{"name", "created_at"}]
    assert listed[0]["name"] == "alice"
    assert (await admin_api.audit_trail("acme"))[-1] == ("admin_key.created", "alice", "operator")
    assert (await admin_api.ok("GET", "/tenants/acme/keys", key=answer.body["secret"])) == {
        "keys": []
    }


async def test_a_tenant_admin_key_makes_no_other(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    alice = await admin_api.tenant_admin_key("acme", "alice")
    answer = await admin_api.call("POST", "/tenants/acme/admin-keys", {"name": "bob"}, key=alice)
    assert answer.status == 403
    assert answer.error["message"] == "only the operator creates tenant admin keys"


async def test_a_taken_admin_key_name_is_409(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    await admin_api.tenant_admin_key("acme", "alice")
    answer = await admin_api.call("POST", "/tenants/acme/admin-keys", {"name": "alice"})
    assert answer.status == 409
    assert answer.error["code"] == "admin_key_exists"


async def test_a_tenant_admin_revokes_a_key_of_its_tenant(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    alice = await admin_api.tenant_admin_key("acme", "alice")
    await admin_api.tenant_admin_key("acme", "bob")
    revoked = await admin_api.ok("DELETE", "/tenants/acme/admin-keys/bob", key=alice)
    assert revoked == {"revoked": "bob"}
    listed = (await admin_api.ok("GET", "/tenants/acme/admin-keys"))["admin_keys"]
    assert [k["name"] for k in listed] == ["alice"]
    assert (await admin_api.audit_trail("acme"))[-1] == ("admin_key.revoked", "bob", "admin:alice")


async def test_revoking_an_unknown_admin_key_is_404(admin_api: AdminApi) -> None:
    await admin_api.tenant("acme")
    answer = await admin_api.call("DELETE", "/tenants/acme/admin-keys/nobody")
    assert answer.status == 404
    assert (answer.error["code"], answer.error["message"]) == (
        "admin_key_not_found",
        "no admin key 'nobody'",
    )
