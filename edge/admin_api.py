"""The admin API the CLI talks to (``/admin/v1/…``), authenticated with an admin key.

The operator key manages every tenant; a tenant admin key only its own (403 otherwise).
"""

from __future__ import annotations

import re
import time
from typing import Any

from aiohttp import web

from edge import credentials
from edge.auth import authenticate_admin, authorize_tenant
from edge.context import CONTEXT, EdgeContext
from edge.errors import ApiError, bad_request, read_json_object
from edge.store import ApiKey, Conflict, Machine, Tenant
from protocol import ErrorCode

routes = web.RouteTableDef()

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


def _tenant(request: web.Request) -> tuple[EdgeContext, Tenant]:
    ctx = request.app[CONTEXT]
    admin = authenticate_admin(request)
    tenant = ctx.store.tenant_by_slug(request.match_info["slug"])
    if tenant is None:
        if admin.tenant_id is not None:
            raise ApiError(403, "forbidden", "This admin key does not manage that tenant")
        raise ApiError(404, "tenant_not_found", f"no tenant {request.match_info['slug']!r}")
    authorize_tenant(admin, tenant)
    return ctx, tenant


def _name(body: dict[str, Any], field: str = "name") -> str:
    value = body.get(field)
    if not isinstance(value, str) or not NAME.match(value):
        raise bad_request(
            f"{field} must be 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            param=field,
        )
    return value


def _positive_number(body: dict[str, Any], field: str) -> float | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise bad_request(f"{field} must be a positive number of seconds", param=field)
    return float(value)


@routes.post("/admin/v1/tenants")
async def create_tenant(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    admin = authenticate_admin(request)
    if admin.tenant_id is not None:
        raise ApiError(403, "forbidden", "only the operator creates tenants")
    body = await read_json_object(request)
    slug = body.get("slug")
    if not isinstance(slug, str) or not SLUG.match(slug):
        raise bad_request(
            "slug must be 1-32 lowercase letters, digits or '-', not starting or ending with '-'",
            param="slug",
        )
    try:
        tenant = ctx.store.create_tenant(credentials.new_id("t"), slug)
    except Conflict as exc:
        raise ApiError(409, "tenant_exists", str(exc)) from None
    return web.json_response(_tenant_view(ctx, tenant), status=201)


@routes.get("/admin/v1/tenants")
async def list_tenants(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    admin = authenticate_admin(request)
    tenants = [t for t in ctx.store.list_tenants() if admin.tenant_id in (None, t.id)]
    return web.json_response({"tenants": [_tenant_view(ctx, t) for t in tenants]})


def _tenant_view(ctx: EdgeContext, tenant: Tenant) -> dict[str, Any]:
    return {
        "slug": tenant.slug,
        "url": ctx.config.tenant_url(tenant.slug),
        "api_base": ctx.config.tenant_url(tenant.slug) + "/v1",
        "created_at": tenant.created_at,
    }


@routes.post("/admin/v1/tenants/{slug}/machines/pair")
async def pair_machine(request: web.Request) -> web.Response:
    ctx, tenant = _tenant(request)
    body = await read_json_object(request)
    name = _name(body)
    ttl = _positive_number(body, "ttl_seconds") or ctx.config.pairing_ttl
    code = credentials.new_pairing_code()
    expires_at = time.time() + ttl
    try:
        ctx.store.add_pairing_code(
            ctx.hasher.digest(credentials.normalize_pairing_code(code)), tenant.id, name, expires_at
        )
    except Conflict as exc:
        raise ApiError(409, "machine_exists", str(exc)) from None
    command = f"llmtunnel agent pair {code} --edge {ctx.config.tenant_url(tenant.slug)}"
    if ctx.config.agent_ca_file is not None:
        command += f" --ca-file {ctx.config.agent_ca_file}"
    return web.json_response(
        {"code": code, "machine": name, "expires_at": expires_at, "agent_command": command},
        status=201,
    )


@routes.get("/admin/v1/tenants/{slug}/machines")
async def list_machines(request: web.Request) -> web.Response:
    ctx, tenant = _tenant(request)
    return web.json_response(
        {"machines": [_machine_view(ctx, m) for m in ctx.store.list_machines(tenant.id)]}
    )


def _machine_view(ctx: EdgeContext, machine: Machine) -> dict[str, Any]:
    session = ctx.registry.session(machine.tenant_id, machine.id)
    view: dict[str, Any] = {
        "name": machine.name,
        "id": machine.id,
        "created_at": machine.created_at,
        "online": session is not None,
    }
    if session is not None:
        view.update(
            agent_version=session.agent_version,
            connected_at=session.connected_at,
            in_flight=session.in_flight,
            max_concurrency=session.max_concurrency,
            models=sorted(session.models),
        )
    return view


@routes.delete("/admin/v1/tenants/{slug}/machines/{name}")
async def revoke_machine(request: web.Request) -> web.Response:
    ctx, tenant = _tenant(request)
    machine = ctx.store.machine_by_name(tenant.id, request.match_info["name"])
    if machine is None:
        raise ApiError(404, "machine_not_found", f"no machine {request.match_info['name']!r}")
    ctx.store.revoke_machine(machine.id)
    session = ctx.registry.session(tenant.id, machine.id)
    if session is not None:
        await session.close(ErrorCode.MACHINE_REVOKED, "this machine was revoked by an admin")
    return web.json_response({"revoked": machine.name, "was_online": session is not None})


@routes.post("/admin/v1/tenants/{slug}/keys")
async def create_key(request: web.Request) -> web.Response:
    ctx, tenant = _tenant(request)
    body = await read_json_object(request)
    name = _name(body)
    expires_in = _positive_number(body, "expires_in_seconds")
    secret = credentials.new_api_key()
    try:
        key = ctx.store.add_api_key(
            credentials.new_id("k"),
            tenant.id,
            name,
            credentials.visible_prefix(secret),
            ctx.hasher.digest(secret),
            time.time() + expires_in if expires_in else None,
        )
    except Conflict as exc:
        raise ApiError(409, "key_exists", str(exc)) from None
    view = _key_view(key)
    view["secret"] = secret
    view["api_base"] = ctx.config.tenant_url(tenant.slug) + "/v1"
    return web.json_response(view, status=201)


@routes.get("/admin/v1/tenants/{slug}/keys")
async def list_keys(request: web.Request) -> web.Response:
    ctx, tenant = _tenant(request)
    return web.json_response({"keys": [_key_view(k) for k in ctx.store.list_api_keys(tenant.id)]})


def _key_view(key: ApiKey) -> dict[str, Any]:
    return {
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
    }


@routes.delete("/admin/v1/tenants/{slug}/keys/{name}")
async def revoke_key(request: web.Request) -> web.Response:
    ctx, tenant = _tenant(request)
    key = ctx.store.api_key_by_name(tenant.id, request.match_info["name"])
    if key is None:
        raise ApiError(404, "key_not_found", f"no key {request.match_info['name']!r}")
    ctx.store.revoke_api_key(key.id)
    return web.json_response({"revoked": key.name})
