"""Console sessions (edge/console/sessions.py): the admin key is posted once for an HttpOnly
``__Host-`` cookie; sessions live server-side as digests and end on inactivity, at their
lifetime, at sign-out and with their admin key; sign-in attempts are limited."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.console.sessions import COOKIE, IDLE_TIMEOUT, LIFETIME, SIGN_INS_PER_MINUTE
from tests.edge.console.conftest import HOST, Console


async def test_signing_in_sets_a_host_only_httponly_secure_strict_cookie(
    console: Console, tmp_path: Path
) -> None:
    reply = await console.call("POST", "/session", {"admin_key": console.operator})
    assert reply.status == 200
    raw = reply.headers["Set-Cookie"]
    cookie = reply.set_cookie[COOKIE]
    assert COOKIE.startswith("__Host-")
    assert cookie["httponly"] and cookie["secure"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
    assert not cookie["domain"] and "Domain" not in raw  # this host only
    assert not cookie["max-age"] and not cookie["expires"]  # it ends with the browser too
    body = reply.body
    assert body["signed_in"] is True
    assert body["principal"] == {"kind": "operator", "name": "operator", "tenant": None}
    assert len(body["csrf_token"]) == 64
    assert console.operator not in repr(body) and console.operator not in raw
    # The store keeps a digest of the session id, never the id.
    database = (tmp_path / "edge.db").read_bytes() + (tmp_path / "edge.db-wal").read_bytes()
    assert cookie.value.encode() not in database
    assert console.operator.encode() not in database


async def test_who_is_signed_in(console: Console) -> None:
    assert (await console.call("GET", "/session")).body == {"signed_in": False}
    session, csrf = await console.sign_in()
    reply = await console.call("GET", "/session", session=session)
    assert reply.body["signed_in"] is True
    assert reply.body["csrf_token"] == csrf
    assert reply.body["principal"]["kind"] == "operator"


async def test_a_tenant_admin_session_names_its_tenant(console: Console) -> None:
    secret = await console.admin_key("acme", "alice")
    session, _ = await console.sign_in(secret)
    principal = (await console.call("GET", "/session", session=session)).body["principal"]
    assert principal == {"kind": "tenant_admin", "name": "alice", "tenant": "acme"}


@pytest.mark.parametrize("secret", ["sk-lt-admin-wrong", "", 7, None, "x" * 201])
async def test_a_wrong_admin_key_gets_no_session(console: Console, secret: object) -> None:
    reply = await console.call("POST", "/session", {"admin_key": secret})
    assert reply.status in (400, 401)
    assert COOKIE not in reply.set_cookie


async def test_an_api_key_is_no_admin_key(console: Console) -> None:
    session, csrf = await console.sign_in()
    await console.call("POST", "/api/v1/tenants", {"slug": "acme"}, session=session, csrf=csrf)
    created = await console.call(
        "POST", "/api/v1/tenants/acme/keys", {"name": "k"}, session=session, csrf=csrf
    )
    reply = await console.call("POST", "/session", {"admin_key": created.body["secret"]})
    assert (reply.status, reply.code) == (401, "invalid_admin_key")


async def test_sign_in_takes_json_only(console: Console) -> None:
    response = await console.client.post(
        "/console/session",
        data={"admin_key": console.operator},  # a form post, as a cross-site form would send
        headers={"Host": HOST, "Origin": f"https://{HOST}"},
    )
    assert response.status == 415
    assert "Set-Cookie" not in response.headers


async def test_sign_in_attempts_are_limited_per_client(console: Console) -> None:
    for _ in range(SIGN_INS_PER_MINUTE):
        reply = await console.call("POST", "/session", {"admin_key": "sk-lt-admin-wrong"})
        assert reply.status == 401
    refused = await console.call("POST", "/session", {"admin_key": console.operator})
    assert (refused.status, refused.code) == (429, "too_many_sign_in_attempts")
    assert int(refused.headers["Retry-After"]) >= 1
    assert COOKIE not in refused.set_cookie  # not even the right key gets through now


async def test_a_session_ends_after_inactivity(console: Console) -> None:
    session, _ = await console.sign_in()
    console.clock.now += IDLE_TIMEOUT - 1
    assert (await console.call("GET", "/api/v1/tenants", session=session)).status == 200
    console.clock.now += IDLE_TIMEOUT - 1  # used a moment ago: still alive
    assert (await console.call("GET", "/api/v1/tenants", session=session)).status == 200
    console.clock.now += IDLE_TIMEOUT
    reply = await console.call("GET", "/api/v1/tenants", session=session)
    assert (reply.status, reply.code) == (401, "not_signed_in")
    console.clock.now -= IDLE_TIMEOUT  # gone for good, not merely refused while late
    assert (await console.call("GET", "/api/v1/tenants", session=session)).status == 401


async def test_a_session_ends_at_its_lifetime_however_busy(console: Console) -> None:
    session, _ = await console.sign_in()
    start = console.clock.now
    while console.clock.now < start + LIFETIME - IDLE_TIMEOUT:
        console.clock.now += IDLE_TIMEOUT / 2
        assert (await console.call("GET", "/api/v1/tenants", session=session)).status == 200
    console.clock.now = start + LIFETIME
    assert (await console.call("GET", "/api/v1/tenants", session=session)).status == 401


async def test_revoking_the_admin_key_ends_its_sessions_at_once(console: Console) -> None:
    secret = await console.admin_key("acme", "alice")
    alice, _ = await console.sign_in(secret)
    assert (await console.call("GET", "/api/v1/tenants/acme/keys", session=alice)).status == 200
    operator, csrf = await console.sign_in()
    revoked = await console.call(
        "DELETE", "/api/v1/tenants/acme/admin-keys/alice", session=operator, csrf=csrf
    )
    assert revoked.status == 200
    reply = await console.call("GET", "/api/v1/tenants/acme/keys", session=alice)
    assert (reply.status, reply.code) == (401, "not_signed_in")
    assert (await console.call("GET", "/session", session=alice)).body == {"signed_in": False}


async def test_signing_out_ends_the_session(console: Console) -> None:
    session, csrf = await console.sign_in()
    reply = await console.call("DELETE", "/session", session=session, csrf=csrf)
    assert reply.status == 200
    cleared = reply.set_cookie[COOKIE]
    assert cleared.value == "" and cleared["max-age"] == "0"
    assert (await console.call("GET", "/api/v1/tenants", session=session)).status == 401
    again = await console.call("DELETE", "/session", session=session, csrf=csrf)
    assert (again.status, again.code) == (401, "not_signed_in")


async def test_signing_in_again_replaces_the_session(console: Console) -> None:
    first, _ = await console.sign_in()
    reply = await console.call("POST", "/session", {"admin_key": console.operator}, session=first)
    second = reply.set_cookie[COOKIE].value
    assert second != first
    assert (await console.call("GET", "/api/v1/tenants", session=first)).status == 401
    assert (await console.call("GET", "/api/v1/tenants", session=second)).status == 200


async def test_a_tenant_admin_signs_in_only_on_its_own_tenants_host(console: Console) -> None:
    secret = await console.admin_key("acme", "alice")
    await console.admin_key("globex", "gina")
    elsewhere = await console.call(
        "POST",
        "/session",
        {"admin_key": secret},
        host="globex.example.test",
        origin="https://globex.example.test",
    )
    assert (elsewhere.status, elsewhere.code) == (401, "invalid_admin_key")
    nowhere = await console.call(
        "POST",
        "/session",
        {"admin_key": secret},
        host="nosuch.example.test",
        origin="https://nosuch.example.test",
    )
    assert nowhere.status == 401
    own = await console.call(
        "POST",
        "/session",
        {"admin_key": secret},
        host="acme.example.test",
        origin="https://acme.example.test",
    )
    assert own.status == 200
    operator = await console.call(
        "POST",
        "/session",
        {"admin_key": console.operator},
        host="globex.example.test",
        origin="https://globex.example.test",
    )
    assert operator.status == 200


async def test_a_tenant_admins_sign_in_and_out_are_audited(console: Console) -> None:
    secret = await console.admin_key("acme", "alice")
    session, csrf = await console.sign_in(secret)
    await console.call("DELETE", "/session", session=session, csrf=csrf)
    await console.ctx.recorder.flush()
    tenant = await console.ctx.store.tenants.by_slug("acme")
    assert tenant is not None
    events = await console.ctx.store.usage.audit_events(tenant.id, 0, None, 10)
    assert [(e["action"], e["actor"]) for e in reversed(events)] == [
        ("console.signed_in", "admin:alice"),
        ("console.signed_out", "admin:alice"),
    ]
