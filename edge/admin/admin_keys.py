"""Tenant admin keys: keys that manage one tenant only (machines, keys, usage, audit)."""

from __future__ import annotations

from aiohttp import web

from edge import credentials
from edge.admin.access import name_field, tenant_admin
from edge.bodies import read_json_object
from edge.errors import ApiError
from edge.store import Conflict

routes = web.RouteTableDef()


@routes.post("/tenants/{slug}/admin-keys")
async def create_tenant_admin_key(request: web.Request) -> web.Response:
    """A key that manages this tenant only (machines, keys, usage, audit); operator only."""
    admin = await tenant_admin(request)
    if admin.admin.tenant_id is not None:
        raise ApiError(403, "forbidden", "only the operator creates tenant admin keys")
    name = name_field(await read_json_object(request))
    secret = credentials.new_api_key(credentials.ADMIN_KEY_PREFIX)
    try:
        await admin.ctx.store.admin_keys.add(
            credentials.new_id("a"), admin.tenant.id, admin.ctx.hasher.digest(secret), name
        )
    except Conflict as exc:
        raise ApiError(409, "admin_key_exists", str(exc)) from None
    admin.audit("admin_key.created", name)
    view = {"name": name, "tenant": admin.tenant.slug, "secret": secret}
    return web.json_response(view, status=201)


@routes.get("/tenants/{slug}/admin-keys")
async def list_tenant_admin_keys(request: web.Request) -> web.Response:
    admin = await tenant_admin(request)
    keys = await admin.ctx.store.admin_keys.of_tenant(admin.tenant.id)
    return web.json_response(
        {"admin_keys": [{"name": k.name, "created_at": k.created_at} for k in keys]}
    )


@routes.delete("/tenants/{slug}/admin-keys/{name}")
async def revoke_tenant_admin_key(request: web.Request) -> web.Response:
    admin = await tenant_admin(request)
    name = request.match_info["name"]
    if not await admin.ctx.store.admin_keys.revoke(admin.tenant.id, name):
        raise ApiError(404, "admin_key_not_found", f"no admin key {name!r}")
    admin.audit("admin_key.revoked", name)
    return web.json_response({"revoked": name})
