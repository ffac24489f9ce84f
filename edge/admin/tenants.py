"""Tenants: create (operator only), list, and change their settings."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from edge import credentials
from edge.admin.access import admin_of, tenant_admin
from edge.bodies import read_json_object
from edge.context import CONTEXT, EdgeContext
from edge.errors import ApiError, bad_request
from edge.store import Conflict, Tenant

routes = web.RouteTableDef()

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")


@routes.post("/tenants")
async def create_tenant(request: web.Request) -> web.Response:
    ctx = request.config_dict[CONTEXT]
    admin = await admin_of(request)
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
        tenant = await ctx.store.tenants.create(credentials.new_id("t"), slug)
    except Conflict as exc:
        raise ApiError(409, "tenant_exists", str(exc)) from None
    ctx.recorder.admin(tenant.id, admin.actor, "tenant.created", slug)
    return web.json_response(await _tenant_view(ctx, tenant), status=201)


@routes.get("/tenants")
async def list_tenants(request: web.Request) -> web.Response:
    ctx = request.config_dict[CONTEXT]
    admin = await admin_of(request)
    tenants = [t for t in await ctx.store.tenants.all() if admin.tenant_id in (None, t.id)]
    return web.json_response({"tenants": [await _tenant_view(ctx, t) for t in tenants]})


async def _tenant_view(ctx: EdgeContext, tenant: Tenant) -> dict[str, Any]:
    return {
        "slug": tenant.slug,
        "url": ctx.config.tenant_url(tenant.slug),
        "api_base": ctx.config.tenant_url(tenant.slug) + "/v1",
        "created_at": tenant.created_at,
        "store_responses": await ctx.store.tenants.stores_responses(tenant.id),
    }


@routes.get("/tenants/{slug}")
async def get_tenant(request: web.Request) -> web.Response:
    admin = await tenant_admin(request)
    return web.json_response(await _tenant_view(admin.ctx, admin.tenant))


@routes.patch("/tenants/{slug}")
async def update_tenant(request: web.Request) -> web.Response:
    """Change a tenant's settings: ``store_responses`` turns the opt-in storage of Responses API
    responses on or off (off deletes what was stored)."""
    admin = await tenant_admin(request)
    body = await read_json_object(request)
    if "store_responses" not in body:
        raise bad_request("nothing to update: give store_responses", param="store_responses")
    enabled = body["store_responses"]
    if not isinstance(enabled, bool):
        raise bad_request("store_responses must be true or false", param="store_responses")
    deleted = await admin.ctx.store.tenants.set_store_responses(admin.tenant.id, enabled)
    admin.audit("tenant.updated", f"store_responses={'on' if enabled else 'off'}")
    view = await _tenant_view(admin.ctx, admin.tenant)
    view["deleted_responses"] = deleted
    return web.json_response(view)
