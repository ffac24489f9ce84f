"""The web console (``/console/``): the admin API's pages for operators and tenant admins, in a
browser, served by the edge itself from files in this package (no CDN, no build step).

    /console/                         the pages (one HTML shell; the script draws each page)
    /console/assets/…                 the shell's script modules, style sheet and icon
    /console/session                  GET who is signed in, POST sign in, DELETE sign out
    /console/api/v1/…                 the admin API's own handlers (edge/admin), behind the
                                      session instead of an admin key

Security (README "Console"): sessions as ``sessions.py`` describes them; CSRF checks (Origin and
a per-session token) on every change; a strict Content-Security-Policy and the other headers on
every response, errors included; sign-in attempts limited per client network. A tenant admin
reaches only its own tenant, through the same authorization as the admin API (403 otherwise); on
a tenant's own host (``SLUG.DOMAIN``) only that tenant's admins (and the operator) sign in.
"""

from __future__ import annotations

import logging
from importlib import resources
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from edge.admin import create_admin_app
from edge.admin.access import AUTHENTICATED, tenant_admin
from edge.attempts import AttemptLimiter
from edge.auth import host_slug
from edge.bodies import read_json_object
from edge.console.sessions import (
    COOKIE,
    IDLE_TIMEOUT,
    SESSION,
    Session,
    check_csrf,
    check_origin,
    cookie_for,
    expire_cookie,
    load_session,
    open_session,
    sign_in_limiter,
)
from edge.context import CONTEXT, EdgeContext
from edge.errors import ApiError, bad_request
from edge.middleware import json_errors, openai_shape
from edge.store import AdminKey

__all__ = ["COOKIE", "PREFIX", "create_console_app"]

log = logging.getLogger(__name__)

PREFIX = "/console"
API = "/api/v1"  # the admin API's handlers, under the console

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        # No script may write HTML from a string (innerHTML and the like): the pages build
        # their DOM node by node, so DOM XSS has no sink to reach.
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}
HSTS = "max-age=31536000"

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PAGES = ("machines", "keys", "usage", "audit")
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}

LIMITER = web.AppKey("llmtunnel_console_sign_ins", AttemptLimiter)
ASSETS = web.AppKey("llmtunnel_console_assets", dict[str, tuple[bytes, str]])


def load_assets() -> dict[str, tuple[bytes, str]]:
    """Every file under ``static/``, by its path there: the only files the console serves
    (nothing is read from disk per request, so no request path can name another file)."""
    assets: dict[str, tuple[bytes, str]] = {}

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
                continue
            suffix = "." + entry.name.rsplit(".", 1)[-1]
            if suffix in _TYPES:
                assets[prefix + entry.name] = (entry.read_bytes(), _TYPES[suffix])

    walk(resources.files(__package__) / "static", "")
    return assets


# ---------------------------------------------------------------------------- middlewares


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.config_dict[CONTEXT]
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # a redirect: errors are JSON responses by now
        _secure(exc, ctx)
        raise
    _secure(response, ctx)
    return response


def _secure(response: web.StreamResponse, ctx: EdgeContext) -> None:
    response.headers.update(HEADERS)
    if ctx.config.public_scheme == "https" and ctx.config.tenant_hosts_resolve:
        response.headers["Strict-Transport-Security"] = HSTS


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request's session, if any; and on every change, the CSRF checks."""
    ctx = request.config_dict[CONTEXT]
    session = await load_session(ctx, request)
    if session is not None:
        request[SESSION] = session
    if request.method not in SAFE_METHODS:
        check_origin(request, ctx.config.public_scheme)
        if request.match_info.route.name != "sign_in":
            if session is None:
                raise _not_signed_in()
            check_csrf(request, session)
    return await handler(request)


@web.middleware
async def _session_admin(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The admin API's handlers act as the session's admin key (never a key the request
    carries: the console's API takes sessions only)."""
    session = request.get(SESSION)
    if session is None:
        raise _not_signed_in()
    request[AUTHENTICATED] = session.admin
    return await handler(request)


def _not_signed_in() -> ApiError:
    return ApiError(401, "not_signed_in", "sign in to the console first")


# ---------------------------------------------------------------------------- sessions


async def _principal(ctx: EdgeContext, session: Session) -> dict[str, Any]:
    admin = session.admin
    tenant = await ctx.store.tenants.by_id(admin.tenant_id) if admin.tenant_id else None
    return {
        "principal": {
            "kind": "operator" if admin.tenant_id is None else "tenant_admin",
            "name": admin.name or "operator",
            "tenant": tenant.slug if tenant else None,
        },
        "csrf_token": session.csrf_token,
        "expires_at": session.expires_at,
        "idle_timeout_seconds": IDLE_TIMEOUT,
        "api_base": ctx.config.base_url,
    }


async def _who(request: web.Request) -> web.Response:
    """Who is signed in, and the session's CSRF token (``signed_in`` false: nobody)."""
    session = request.get(SESSION)
    if session is None:
        return web.json_response({"signed_in": False})
    return web.json_response(
        {"signed_in": True, **await _principal(request.config_dict[CONTEXT], session)}
    )


async def _sign_in(request: web.Request) -> web.Response:
    """Trade an admin key for a session. The key is read, hashed and forgotten; a wrong one,
    and a tenant admin's on another tenant's host, get the same 401."""
    ctx = request.config_dict[CONTEXT]
    request.app[LIMITER].check(request.remote)
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "sign in with a JSON body")
    secret = (await read_json_object(request)).get("admin_key")
    if not isinstance(secret, str) or not 0 < len(secret) <= 200:
        raise bad_request("admin_key must be an admin key", param="admin_key")
    admin = await ctx.store.admin_keys.by_hash(ctx.hasher.digest(secret.strip()))
    if admin is None or not await _may_sign_in_here(ctx, admin, request.host):
        log.warning("console: a sign-in was refused (from %s)", request.remote)
        raise ApiError(401, "invalid_admin_key", "Missing or incorrect admin key")
    old = request.get(SESSION)
    if old is not None:  # a new sign-in replaces the session the browser had
        await ctx.store.sessions.delete(old.session_hash)
    session_id, session = await open_session(ctx, admin)
    _audit(ctx, admin, "console.signed_in", request)
    response = web.json_response({"signed_in": True, **await _principal(ctx, session)})
    cookie_for(response, session_id)
    return response


async def _may_sign_in_here(ctx: EdgeContext, admin: AdminKey, host: str) -> bool:
    """On a tenant's own host, only its admins and the operator sign in."""
    slug = host_slug(host, ctx.config.domain)
    if slug is None or admin.tenant_id is None:
        return True
    tenant = await ctx.store.tenants.by_slug(slug)
    return tenant is not None and tenant.id == admin.tenant_id


async def _sign_out(request: web.Request) -> web.Response:
    ctx = request.config_dict[CONTEXT]
    session = request[SESSION]  # the guard let no change through without one
    await ctx.store.sessions.delete(session.session_hash)
    _audit(ctx, session.admin, "console.signed_out", request)
    response = web.json_response({"signed_out": True})
    expire_cookie(response)
    return response


def _audit(ctx: EdgeContext, admin: AdminKey, action: str, request: web.Request) -> None:
    """A tenant admin's sign-in and sign-out are audited under its tenant; the operator's,
    which belong to no tenant, are logged."""
    if admin.tenant_id is not None:
        ctx.recorder.admin(admin.tenant_id, admin.actor, action, f"from {request.remote}")
    else:
        log.info("console: %s (operator) from %s", action, request.remote)


# ---------------------------------------------------------------------------- pages


async def _page(request: web.Request) -> web.Response:
    """The shell every page is drawn in. A signed-in admin asking for a tenant's page it may
    not manage gets it with the admin API's status (403; the operator: 404 for no tenant)."""
    status = 200
    session = request.get(SESSION)
    if session is not None and "slug" in request.match_info:
        request[AUTHENTICATED] = session.admin
        try:
            await tenant_admin(request)
        except ApiError as exc:
            status = exc.status
    body, content_type = request.app[ASSETS]["index.html"]
    return web.Response(body=body, status=status, content_type=content_type, charset="utf-8")


async def _asset(request: web.Request) -> web.Response:
    found = request.app[ASSETS].get(request.match_info["path"])
    if found is None or found[1] == "text/html":
        raise web.HTTPNotFound()
    body, content_type = found
    charset = None if content_type.startswith("image/") else "utf-8"
    return web.Response(body=body, content_type=content_type, charset=charset)


async def _to_slash(request: web.Request) -> web.Response:
    raise web.HTTPFound(PREFIX + "/")


def create_console_app() -> web.Application:
    """The ``/console`` sub-application; mount it in an application that holds ``CONTEXT``
    (and ``LANE``), as the edge does (edge/app.py)."""
    app = web.Application(middlewares=[_headers, json_errors(openai_shape), _guard])
    app[LIMITER] = sign_in_limiter()
    app[ASSETS] = load_assets()
    app.router.add_get("", _to_slash)
    app.router.add_get("/", _page)
    app.router.add_get("/tenants/{slug}", _page)
    app.router.add_get("/tenants/{slug}/{page:(" + "|".join(PAGES) + ")}", _page)
    app.router.add_get("/assets/{path:.+}", _asset)
    app.router.add_get("/session", _who)
    app.router.add_post("/session", _sign_in, name="sign_in")
    app.router.add_delete("/session", _sign_out)
    app.add_subapp(API, create_admin_app(authentication=[_session_admin]))
    return app
