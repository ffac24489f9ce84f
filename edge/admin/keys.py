"""A tenant's API keys: create (with their limits), list, rotate, revoke."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge import credentials
from edge.admin.access import (
    MAX_BUDGET_TOKENS,
    MAX_KEY_LIFETIME,
    MAX_MODEL_NAME,
    MAX_ROTATION_GRACE,
    MAX_RPM,
    MAX_SCOPED_MODELS,
    MAX_TPM,
    TenantAdmin,
    is_model_name,
    live_key,
    name_field,
    seconds_field,
    tenant_admin,
    whole_number_field,
)
from edge.bodies import read_json_object
from edge.context import EdgeContext
from edge.errors import ApiError, bad_request
from edge.limits import PERIODS
from edge.store import ApiKey, Conflict, KeyLimits

routes = web.RouteTableDef()

DEFAULT_ROTATION_GRACE = 24 * 3600.0


async def _key_limits(admin: TenantAdmin, body: dict[str, Any]) -> KeyLimits:
    models = body.get("models")
    if models is not None and (
        not isinstance(models, list)
        or not 0 < len(models) <= MAX_SCOPED_MODELS
        or not all(is_model_name(m) for m in models)
    ):
        raise bad_request(
            f"models must be a list of 1 to {MAX_SCOPED_MODELS} model names "
            f"of at most {MAX_MODEL_NAME} printable characters",
            param="models",
        )
    budget = whole_number_field(body, "budget_tokens", MAX_BUDGET_TOKENS)
    period = body.get("budget_period", "day" if budget else None)
    if budget is not None and period not in PERIODS:
        raise bad_request(
            f"budget_period must be one of {', '.join(PERIODS)}", param="budget_period"
        )
    if budget is None and body.get("budget_period") is not None:
        raise bad_request("budget_period needs budget_tokens", param="budget_period")
    machine_id = None
    if body.get("machine") is not None:
        name = name_field(body, "machine")
        machine = await admin.ctx.store.machines.by_name(admin.tenant.id, name)
        if machine is None:
            raise ApiError(404, "machine_not_found", f"no machine {name!r}", param="machine")
        machine_id = machine.id
    return KeyLimits(
        models=tuple(m.strip() for m in models) if models is not None else None,
        budget_tokens=budget,
        budget_period=period if budget is not None else None,
        rpm=whole_number_field(body, "rpm", MAX_RPM),
        tpm=whole_number_field(body, "tpm", MAX_TPM),
        machine_id=machine_id,
    )


@routes.post("/tenants/{slug}/keys")
async def create_key(request: web.Request) -> web.Response:
    admin = await tenant_admin(request)
    ctx, tenant = admin.ctx, admin.tenant
    body = await read_json_object(request)
    name = name_field(body)
    expires_in = seconds_field(body, "expires_in_seconds", MAX_KEY_LIFETIME)
    limits = await _key_limits(admin, body)
    secret = credentials.new_api_key()
    try:
        key = await ctx.store.keys.add(
            credentials.new_id("k"),
            tenant.id,
            name,
            credentials.visible_prefix(secret),
            ctx.hasher.digest(secret),
            ctx.clock() + expires_in if expires_in else None,
            limits,
        )
    except Conflict as exc:
        raise ApiError(409, "key_exists", str(exc)) from None
    admin.audit("key.created", name)
    view = await _key_view(ctx, key)
    view["secret"] = secret
    view["api_base"] = ctx.config.tenant_url(tenant.slug) + "/v1"
    return web.json_response(view, status=201)


@routes.get("/tenants/{slug}/keys")
async def list_keys(request: web.Request) -> web.Response:
    admin = await tenant_admin(request)
    keys = await admin.ctx.store.keys.of_tenant(admin.tenant.id)
    return web.json_response({"keys": [await _key_view(admin.ctx, k) for k in keys]})


async def _key_view(ctx: EdgeContext, key: ApiKey) -> dict[str, Any]:
    limits = key.limits
    machine = await ctx.store.machines.by_id(limits.machine_id) if limits.machine_id else None
    return {
        "name": key.name,
        "prefix": key.prefix,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "last_used_at": key.last_used_at,
        "models": list(limits.models) if limits.models is not None else None,
        "budget_tokens": limits.budget_tokens,
        "budget_period": limits.budget_period,
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "machine": machine.name if machine else None,
    }


@routes.post("/tenants/{slug}/keys/{name}/rotate")
async def rotate_key(request: web.Request) -> web.Response:
    """A new secret for the key; the old one keeps working for ``grace_seconds`` (0: not at
    all), so that clients can be moved over without an outage."""
    admin = await tenant_admin(request)
    key = await live_key(admin, request.match_info["name"])
    body = await read_json_object(request)
    grace = seconds_field(body, "grace_seconds", MAX_ROTATION_GRACE, zero_allowed=True)
    if grace is None:
        grace = DEFAULT_ROTATION_GRACE
    secret = credentials.new_api_key()
    grace_until = admin.ctx.clock() + grace
    await admin.ctx.store.keys.rotate(
        key.id, credentials.visible_prefix(secret), admin.ctx.hasher.digest(secret), grace_until
    )
    admin.audit("key.rotated", key.name)
    return web.json_response(
        {
            "name": key.name,
            "secret": secret,
            "prefix": credentials.visible_prefix(secret),
            "previous_secret_valid_until": grace_until,
        }
    )


@routes.delete("/tenants/{slug}/keys/{name}")
async def revoke_key(request: web.Request) -> web.Response:
    admin = await tenant_admin(request)
    key = await live_key(admin, request.match_info["name"])
    await admin.ctx.store.keys.revoke(key.id)
    admin.audit("key.revoked", key.name)
    return web.json_response({"revoked": key.name})
