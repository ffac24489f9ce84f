"""The console's defences: CSRF (Origin and a per-session token) on every change, the security
headers on every response, only its own files served, and the admin API's own authorization,
tenant isolation included, behind the session."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request

from edge import credentials
from edge.console import CONTENT_SECURITY_POLICY
from edge.console.sessions import check_origin
from edge.errors import ApiError
from tests.edge.admin.test_access import FORBIDDEN, TENANT_ROUTES, route_id
from tests.edge.console.conftest import HOST, Console

CHANGE = ("POST", "/api/v1/tenants", {"slug": "acme"})


async def test_a_change_with_the_token_and_origin_goes_through(console: Console) -> None:
    session, csrf = await console.sign_in()
    reply = await console.call(*CHANGE, session=session, csrf=csrf)
    assert reply.status == 201


@pytest.mark.parametrize("token", [None, "", "0" * 64, "other-session"])
async def test_a_change_without_the_sessions_csrf_token_is_refused(
    console: Console, token: str | None
) -> None:
    session, csrf = await console.sign_in()
    if token == "other-session":
        _, token = await console.sign_in()
        session, csrf = await console.sign_in()  # (the first sign-in's session was replaced)
        assert token != csrf
    reply = await console.call(*CHANGE, session=session, csrf=token)
    assert (reply.status, reply.code) == (403, "csrf_token_invalid")
    assert (await console.call("GET", "/api/v1/tenants", session=session)).body["tenants"] == []


@pytest.mark.parametrize(
    "origin",
    [None, "https://evil.example", "http://example.test", "https://acme.example.test", "null"],
)
async def test_a_change_from_another_origin_is_refused(
    console: Console, origin: str | None
) -> None:
    session, csrf = await console.sign_in()
    reply = await console.call(*CHANGE, session=session, csrf=csrf, origin=origin)
    assert (reply.status, reply.code) == (403, "origin_not_allowed")
    signing_in = await console.call(
        "POST", "/session", {"admin_key": console.operator}, origin=origin
    )
    assert (signing_in.status, signing_in.code) == (403, "origin_not_allowed")


async def test_a_change_the_browser_calls_cross_site_is_refused(console: Console) -> None:
    session, csrf = await console.sign_in()
    reply = await console.call(
        *CHANGE, session=session, csrf=csrf, headers={"Sec-Fetch-Site": "same-site"}
    )
    assert reply.status == 403


async def test_a_change_without_a_session_is_401(console: Console) -> None:
    reply = await console.call(*CHANGE)
    assert (reply.status, reply.code) == (401, "not_signed_in")


async def test_the_console_api_takes_sessions_not_admin_keys(console: Console) -> None:
    bearer = {"Authorization": f"Bearer {console.operator}"}
    reply = await console.call("GET", "/api/v1/tenants", headers=bearer)
    assert (reply.status, reply.code) == (401, "not_signed_in")


async def test_a_console_session_is_no_admin_key_on_the_admin_api(console: Console) -> None:
    session, _ = await console.sign_in()
    response = await console.client.get(
        "/admin/v1/tenants", headers={"Host": HOST, "Cookie": f"__Host-llmtunnel-console={session}"}
    )
    assert response.status == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/tenants/acme/keys"),
        ("GET", "/assets/js/app.js"),
        ("GET", "/assets/console.css"),
        ("GET", "/session"),
        ("POST", "/session"),
        ("GET", "/api/v1/tenants"),
        ("GET", "/nothing"),
        ("GET", "/assets/nothing.js"),
        ("POST", "/api/v1/tenants"),
    ],
)
async def test_every_response_carries_the_security_headers(
    console: Console, method: str, path: str
) -> None:
    reply = await console.call(method, path, {} if method == "POST" else None)
    headers = reply.headers
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "require-trusted-types-for 'script'",
    ):
        assert directive in headers["Content-Security-Policy"]
    assert (
        "unsafe-inline" not in CONTENT_SECURITY_POLICY
        and "unsafe-eval" not in CONTENT_SECURITY_POLICY
    )
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert "Strict-Transport-Security" in headers  # https on a real domain


async def test_the_shell_and_assets_have_no_inline_script_or_style(console: Console) -> None:
    shell = (await console.call("GET", "/")).body.decode()
    assert "<script" in shell and 'src="/console/assets/js/app.js"' in shell
    for inline in ("<style", "style=", "onload=", "onclick=", "javascript:"):
        assert inline not in shell
    assert "<script>" not in shell.replace('type="module" src', "")


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("js/app.js", "text/javascript"),
        ("js/pages/keys.js", "text/javascript"),
        ("console.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ],
)
async def test_assets_are_served_from_the_package(
    console: Console, path: str, content_type: str
) -> None:
    reply = await console.call("GET", f"/assets/{path}")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith(content_type)
    assert len(reply.body) > 100


@pytest.mark.parametrize(
    "path",
    [
        "../__init__.py",
        "..%2F__init__.py",
        "js/../../sessions.py",
        "index.html",
        "nothing.js",
        "js",
    ],
)
async def test_no_other_file_is_served(console: Console, path: str) -> None:
    reply = await console.call("GET", f"/assets/{path}")
    assert reply.status == 404


async def test_the_console_root_without_a_slash_redirects(console: Console) -> None:
    response = await console.client.get("/console", headers={"Host": HOST}, allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/console/"
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_pages_are_the_shell_with_the_admin_apis_status(console: Console) -> None:
    secret = await console.admin_key("acme", "alice")
    await console.admin_key("globex", "gina")
    alice, _ = await console.sign_in(secret)
    operator, _ = await console.sign_in()
    for page in ("", "/machines", "/keys", "/usage", "/audit"):
        own = await console.call("GET", f"/tenants/acme{page}", session=alice)
        other = await console.call("GET", f"/tenants/globex{page}", session=alice)
        missing = await console.call("GET", f"/tenants/nosuch{page}", session=alice)
        assert (own.status, other.status, missing.status) == (200, 403, 403)
        assert other.body == own.body  # the same shell; the page says Forbidden
        assert (await console.call("GET", f"/tenants/nosuch{page}", session=operator)).status == 404
        assert (await console.call("GET", f"/tenants/globex{page}")).status == 200  # sign-in


async def furnish(console: Console, slug: str, operator: str, csrf: str) -> str:
    """What the admin API's access tests furnish, through the console; returns the secret of
    the tenant admin key ``owner``."""

    async def ok(method: str, path: str, body: Any) -> Any:
        reply = await console.call(method, "/api/v1" + path, body, session=operator, csrf=csrf)
        assert reply.status in (200, 201), reply
        return reply.body

    await ok("POST", "/tenants", {"slug": slug})
    code = (await ok("POST", f"/tenants/{slug}/machines/pair", {"name": "gpu-1"}))["code"]
    digest = console.ctx.hasher.digest(credentials.normalize_pairing_code(code))
    assert await console.ctx.store.machines.redeem_pairing_code(
        digest, credentials.new_id("m"), b"k" * 32
    )
    await ok("POST", f"/tenants/{slug}/keys", {"name": "k1"})
    await ok("PUT", f"/tenants/{slug}/aliases/fast", {"model": "qwen3:8b"})
    secret: str = (await ok("POST", f"/tenants/{slug}/admin-keys", {"name": "owner"}))["secret"]
    return secret


async def snapshot(console: Console, slug: str, operator: str) -> list[Any]:
    paths = ["/tenants", f"/tenants/{slug}/machines", f"/tenants/{slug}/keys"]
    paths += [f"/tenants/{slug}/aliases", f"/tenants/{slug}/admin-keys"]
    return [(await console.call("GET", "/api/v1" + p, session=operator)).body for p in paths]


@pytest.mark.parametrize("route", TENANT_ROUTES, ids=route_id)
async def test_a_tenant_admin_session_is_refused_on_another_tenant_and_changes_nothing(
    console: Console, route: tuple[str, str, dict[str, Any] | None, int]
) -> None:
    method, path, body, _ = route
    operator, operator_csrf = await console.sign_in()
    own = await furnish(console, "acme", operator, operator_csrf)
    await furnish(console, "globex", operator, operator_csrf)
    before = await snapshot(console, "globex", operator)
    session, csrf = await console.sign_in(own)
    reply = await console.call(
        method, "/api/v1" + path.format(slug="globex"), body, session=session, csrf=csrf
    )
    assert reply.status == 403
    assert reply.body == {"error": FORBIDDEN}
    assert await snapshot(console, "globex", operator) == before
    own_reply = await console.call(
        method, "/api/v1" + path.format(slug="acme"), body, session=session, csrf=csrf
    )
    forbidden_to_all_tenant_admins = path.endswith("/admin-keys") and method == "POST"
    assert own_reply.status == (403 if forbidden_to_all_tenant_admins else route[3]), own_reply


@pytest.mark.parametrize("path", ["/tenants", "/stats"])
async def test_a_tenant_admin_session_lists_only_its_own_tenant(
    console: Console, path: str
) -> None:
    secret = await console.admin_key("acme", "alice")
    await console.admin_key("globex", "gina")
    session, _ = await console.sign_in(secret)
    reply = await console.call("GET", "/api/v1" + path, session=session)
    assert [t["slug"] for t in reply.body["tenants"]] == ["acme"]


@pytest.mark.parametrize(
    ("scheme", "origin", "allowed"),
    [
        ("https", "https://example.test:8443", True),
        ("https", "http://example.test:8443", False),
        ("http", "http://example.test:8443", True),  # --plain-http on loopback
        ("http", "https://example.test:8443", True),  # --plain-http behind a TLS proxy
        ("http", "http://example.test", False),  # another port is another origin
    ],
)
def test_the_origin_must_be_this_host(scheme: str, origin: str, allowed: bool) -> None:
    request = make_mocked_request(
        "POST", "/console/session", headers={"Host": "example.test:8443", "Origin": origin}
    )
    if allowed:
        check_origin(request, scheme)
    else:
        with pytest.raises(ApiError):
            check_origin(request, scheme)
