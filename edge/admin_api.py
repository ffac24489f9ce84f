"""The admin API the CLI talks to (``/admin/v1/…``), authenticated with an admin key.

The operator key manages every tenant; a tenant admin key only its own (403 otherwise).
"""

from __future__ import annotations

import datetime
import math
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from edge import credentials
from edge.auth import authenticate_admin, authorize_tenant
from edge.bodies import read_json_object
from edge.context import CONTEXT, EdgeContext
from edge.errors import ApiError, bad_request
from edge.limits import PERIODS
from edge.store import AdminKey, ApiKey, Conflict, KeyLimits, Machine, Tenant
from protocol import ErrorCode

routes = web.RouteTableDef()

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
DEFAULT_ROTATION_GRACE = 24 * 3600.0
MAX_AUDIT_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class TenantAdmin:
    """An authorized admin request on one tenant."""

    ctx: EdgeContext
    tenant: Tenant
    admin: AdminKey

    def audit(self, action: str, subject: str) -> None:
        self.ctx.recorder.admin(self.tenant.id, self.admin.actor, action, subject)


async def _tenant(request: web.Request) -> TenantAdmin:
    ctx = request.config_dict[CONTEXT]
    admin = await authenticate_admin(request)
    tenant = await ctx.store.tenants.by_slug(request.match_info["slug"])
    if tenant is None:
        if admin.tenant_id is not None:
            # The same answer as for another tenant's slug: no probing which tenants exist.
            raise ApiError(403, "forbidden", "This admin key does not manage that tenant")
        raise ApiError(404, "tenant_not_found", f"no tenant {request.match_info['slug']!r}")
    authorize_tenant(admin, tenant)
    return TenantAdmin(ctx, tenant, admin)


def _name(body: dict[str, Any], field: str = "name") -> str:
    value = body.get(field)
    if not isinstance(value, str) or not NAME.match(value):
        raise bad_request(
            f"{field} must be 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            param=field,
        )
    return value


# Every number an admin sends is stored: each has a range that SQLite's 64-bit integers and the
# edge's arithmetic hold with room to spare, and that no real deployment comes near.
MAX_RPM = 1_000_000
MAX_TPM = 10**12
MAX_BUDGET_TOKENS = 10**15
MAX_KEY_LIFETIME = 100 * 365 * 86400.0  # a century
MAX_PAIRING_TTL = 7 * 86400.0
MAX_ROTATION_GRACE = 365 * 86400.0
MAX_SCOPED_MODELS = 256
MAX_MODEL_NAME = 256
MAX_UNIX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z, the last second datetime can name


def _seconds(
    body: dict[str, Any], field: str, maximum: float, *, zero_allowed: bool = False
) -> float | None:
    """A duration in seconds, at most ``maximum`` and above 0 (or 0 itself when
    ``zero_allowed``); ``None`` when absent."""
    value = body.get(field)
    if value is None:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not (0 <= value <= maximum and (value > 0 or zero_allowed)):
        low = "0" if zero_allowed else "more than 0"
        raise bad_request(
            f"{field} must be a number of seconds, {low} and at most {maximum:,.0f}", param=field
        )
    return float(value)


def _whole_number(body: dict[str, Any], field: str, maximum: int) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise bad_request(f"{field} must be a whole number from 1 to {maximum:,}", param=field)
    return value


async def _key_limits(admin: TenantAdmin, body: dict[str, Any]) -> KeyLimits:
    models = body.get("models")
    if models is not None and (
        not isinstance(models, list)
        or not 0 < len(models) <= MAX_SCOPED_MODELS
        or not all(isinstance(m, str) and 0 < len(m.strip()) <= MAX_MODEL_NAME for m in models)
    ):
        raise bad_request(
            f"models must be a list of 1 to {MAX_SCOPED_MODELS} model names "
            f"of at most {MAX_MODEL_NAME} characters",
            param="models",
        )
    budget = _whole_number(body, "budget_tokens", MAX_BUDGET_TOKENS)
    period = body.get("budget_period", "day" if budget else None)
    if budget is not None and period not in PERIODS:
        raise bad_request(
            f"budget_period must be one of {', '.join(PERIODS)}", param="budget_period"
        )
    if budget is None and body.get("budget_period") is not None:
        raise bad_request("budget_period needs budget_tokens", param="budget_period")
    machine_id = None
    if body.get("machine") is not None:
        name = _name(body, "machine")
        machine = await admin.ctx.store.machines.by_name(admin.tenant.id, name)
        if machine is None:
            raise ApiError(404, "machine_not_found", f"no machine {name!r}", param="machine")
        machine_id = machine.id
    return KeyLimits(
        models=tuple(m.strip() for m in models) if models is not None else None,
        budget_tokens=budget,
        budget_period=period if budget is not None else None,
        rpm=_whole_number(body, "rpm", MAX_RPM),
        tpm=_whole_number(body, "tpm", MAX_TPM),
        machine_id=machine_id,
    )


@routes.post("/admin/v1/tenants")
async def create_tenant(request: web.Request) -> web.Response:
    ctx = request.config_dict[CONTEXT]
    admin = await authenticate_admin(request)
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


@routes.get("/admin/v1/tenants")
async def list_tenants(request: web.Request) -> web.Response:
    ctx = request.config_dict[CONTEXT]
    admin = await authenticate_admin(request)
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


@routes.patch("/admin/v1/tenants/{slug}")
async def update_tenant(request: web.Request) -> web.Response:
    """Change a tenant's settings: ``store_responses`` turns the opt-in storage of Responses API
    responses on or off (off deletes what was stored)."""
    admin = await _tenant(request)
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


@routes.post("/admin/v1/tenants/{slug}/machines/pair")
async def pair_machine(request: web.Request) -> web.Response:
    admin = await _tenant(request)
    ctx, tenant = admin.ctx, admin.tenant
    body = await read_json_object(request)
    name = _name(body)
    ttl = _seconds(body, "ttl_seconds", MAX_PAIRING_TTL) or ctx.config.pairing_ttl
    code = credentials.new_pairing_code()
    expires_at = time.time() + ttl
    try:
        await ctx.store.machines.add_pairing_code(
            ctx.hasher.digest(credentials.normalize_pairing_code(code)), tenant.id, name, expires_at
        )
    except Conflict as exc:
        raise ApiError(409, "machine_exists", str(exc)) from None
    admin.audit("machine.pairing_code_created", name)
    command = f"llmtunnel agent pair {code} --edge {ctx.config.tenant_url(tenant.slug)}"
    if ctx.config.agent_ca_file is not None:
        command += f" --ca-file {ctx.config.agent_ca_file}"
    return web.json_response(
        {"code": code, "machine": name, "expires_at": expires_at, "agent_command": command},
        status=201,
    )


@routes.get("/admin/v1/tenants/{slug}/machines")
async def list_machines(request: web.Request) -> web.Response:
    admin = await _tenant(request)
    ctx, tenant = admin.ctx, admin.tenant
    return web.json_response(
        {"machines": [_machine_view(ctx, m) for m in await ctx.store.machines.of_tenant(tenant.id)]}
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
    """Revoke a machine: its tunnel closes at once, and keys bound to it are revoked with it."""
    admin = await _tenant(request)
    ctx, tenant = admin.ctx, admin.tenant
    machine = await ctx.store.machines.by_name(tenant.id, request.match_info["name"])
    if machine is None:
        raise ApiError(404, "machine_not_found", f"no machine {request.match_info['name']!r}")
    bound_keys = await ctx.store.machines.revoke(machine.id)
    admin.audit("machine.revoked", machine.name)
    for key_name in bound_keys:
        admin.audit("key.revoked", key_name)
    session = ctx.registry.session(tenant.id, machine.id)
    if session is not None:
        await session.close(ErrorCode.MACHINE_REVOKED, "this machine was revoked by an admin")
    return web.json_response(
        {"revoked": machine.name, "was_online": session is not None, "revoked_keys": bound_keys}
    )


@routes.post("/admin/v1/tenants/{slug}/keys")
async def create_key(request: web.Request) -> web.Response:
    admin = await _tenant(request)
    ctx, tenant = admin.ctx, admin.tenant
    body = await read_json_object(request)
    name = _name(body)
    expires_in = _seconds(body, "expires_in_seconds", MAX_KEY_LIFETIME)
    limits = await _key_limits(admin, body)
    secret = credentials.new_api_key()
    try:
        key = await ctx.store.keys.add(
            credentials.new_id("k"),
            tenant.id,
            name,
            credentials.visible_prefix(secret),
            ctx.hasher.digest(secret),
            time.time() + expires_in if expires_in else None,
            limits,
        )
    except Conflict as exc:
        raise ApiError(409, "key_exists", str(exc)) from None
    admin.audit("key.created", name)
    view = await _key_view(ctx, key)
    view["secret"] = secret
    view["api_base"] = ctx.config.tenant_url(tenant.slug) + "/v1"
    return web.json_response(view, status=201)


@routes.get("/admin/v1/tenants/{slug}/keys")
async def list_keys(request: web.Request) -> web.Response:
    admin = await _tenant(request)
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


async def _live_key(admin: TenantAdmin, name: str) -> ApiKey:
    key = await admin.ctx.store.keys.by_name(admin.tenant.id, name)
    if key is None:
        raise ApiError(404, "key_not_found", f"no key {name!r}")
    return key


@routes.post("/admin/v1/tenants/{slug}/keys/{name}/rotate")
async def rotate_key(request: web.Request) -> web.Response:
    """A new secret for the key; the old one keeps working for ``grace_seconds`` (0: not at
    all), so that clients can be moved over without an outage."""
    admin = await _tenant(request)
    key = await _live_key(admin, request.match_info["name"])
    body = await read_json_object(request)
    grace = _seconds(body, "grace_seconds", MAX_ROTATION_GRACE, zero_allowed=True)
    if grace is None:
        grace = DEFAULT_ROTATION_GRACE
    secret = credentials.new_api_key()
    grace_until = time.time() + grace
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


@routes.delete("/admin/v1/tenants/{slug}/keys/{name}")
async def revoke_key(request: web.Request) -> web.Response:
    admin = await _tenant(request)
    key = await _live_key(admin, request.match_info["name"])
    await admin.ctx.store.keys.revoke(key.id)
    admin.audit("key.revoked", key.name)
    return web.json_response({"revoked": key.name})


# ---------------------------------------------------------------------- usage and audit


def _since(request: web.Request, default_age: float) -> float:
    raw = request.query.get("since")
    if raw is None:
        return time.time() - default_age
    try:
        since = float(raw)
    except ValueError:
        since = math.nan
    if not 0 <= since <= MAX_UNIX_TIME:  # also refuses nan and inf
        raise bad_request(
            f"since must be a Unix time in seconds, from 0 to {MAX_UNIX_TIME:.0f}", param="since"
        )
    return since


async def _key_filter(admin: TenantAdmin, request: web.Request) -> str | None:
    name = request.query.get("key")
    return (await _live_key(admin, name)).id if name is not None else None


@routes.get("/admin/v1/tenants/{slug}/usage")
async def usage(request: web.Request) -> web.Response:
    """Requests and tokens per key per UTC day (default: the last 30 days)."""
    admin = await _tenant(request)
    since = _since(request, 30 * 86400)
    day = datetime.datetime.fromtimestamp(since, datetime.UTC).date().isoformat()
    await admin.ctx.recorder.flush()  # include requests that ended in the last second
    rows = await admin.ctx.store.usage.daily(
        admin.tenant.id, day, await _key_filter(admin, request)
    )
    return web.json_response(
        {
            "since": day,
            "usage": [
                {
                    "key": r.key_name,
                    "day": r.day,
                    "requests": r.requests,
                    "prompt_tokens": r.prompt_tokens,
                    "completion_tokens": r.completion_tokens,
                }
                for r in rows
            ],
        }
    )


@routes.get("/admin/v1/tenants/{slug}/audit")
async def audit(request: web.Request) -> web.Response:
    """Audit events, newest first: every API request and admin action (default: the last 7
    days, at most 100; ``limit`` up to 10,000)."""
    admin = await _tenant(request)
    since = _since(request, 7 * 86400)
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_AUDIT_LIMIT:
        raise bad_request(f"limit must be 1 to {MAX_AUDIT_LIMIT}", param="limit")
    await admin.ctx.recorder.flush()
    events = await admin.ctx.store.usage.audit_events(
        admin.tenant.id, since, await _key_filter(admin, request), limit
    )
    for event in events:
        del event["tenant_id"]
    return web.json_response({"events": events})


# ---------------------------------------------------------------------- tenant admin keys


@routes.post("/admin/v1/tenants/{slug}/admin-keys")
async def create_tenant_admin_key(request: web.Request) -> web.Response:
    """A key that manages this tenant only (machines, keys, usage, audit); operator only."""
    admin = await _tenant(request)
    if admin.admin.tenant_id is not None:
        raise ApiError(403, "forbidden", "only the operator creates tenant admin keys")
    name = _name(await read_json_object(request))
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


@routes.get("/admin/v1/tenants/{slug}/admin-keys")
async def list_tenant_admin_keys(request: web.Request) -> web.Response:
    admin = await _tenant(request)
    keys = await admin.ctx.store.admin_keys.of_tenant(admin.tenant.id)
    return web.json_response(
        {"admin_keys": [{"name": k.name, "created_at": k.created_at} for k in keys]}
    )


@routes.delete("/admin/v1/tenants/{slug}/admin-keys/{name}")
async def revoke_tenant_admin_key(request: web.Request) -> web.Response:
    admin = await _tenant(request)
    name = request.match_info["name"]
    if not await admin.ctx.store.admin_keys.revoke(admin.tenant.id, name):
        raise ApiError(404, "admin_key_not_found", f"no admin key {name!r}")
    admin.audit("admin_key.revoked", name)
    return web.json_response({"revoked": name})


# ---------------------------------------------------------------------- model aliases

ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")


@routes.get("/admin/v1/tenants/{slug}/aliases")
async def list_aliases(request: web.Request) -> web.Response:
    admin = await _tenant(request)
    return web.json_response({"aliases": await admin.ctx.store.aliases.of_tenant(admin.tenant.id)})


@routes.put("/admin/v1/tenants/{slug}/aliases/{alias:.+}")
async def set_alias(request: web.Request) -> web.Response:
    """Let clients call ``model`` by another name (an alias wins over a model of its name)."""
    admin = await _tenant(request)
    alias = request.match_info["alias"]
    if not ALIAS.match(alias):
        raise bad_request(
            "an alias is 1-128 letters, digits or . _ : / @ -, starting with a letter or digit",
            param="alias",
        )
    model = (await read_json_object(request)).get("model")
    if not isinstance(model, str) or not 0 < len(model.strip()) <= MAX_MODEL_NAME:
        raise bad_request(
            f"model must name the model the alias stands for ({MAX_MODEL_NAME} characters at most)",
            param="model",
        )
    await admin.ctx.store.aliases.set(admin.tenant.id, alias, model.strip())
    admin.audit("alias.set", f"{alias} -> {model.strip()}")
    return web.json_response({"alias": alias, "model": model.strip()})


@routes.delete("/admin/v1/tenants/{slug}/aliases/{alias:.+}")
async def delete_alias(request: web.Request) -> web.Response:
    admin = await _tenant(request)
    alias = request.match_info["alias"]
    if not await admin.ctx.store.aliases.delete(admin.tenant.id, alias):
        raise ApiError(404, "alias_not_found", f"no alias {alias!r}")
    admin.audit("alias.deleted", alias)
    return web.json_response({"deleted": alias})
