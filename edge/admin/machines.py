"""Machines: pairing codes for new ones, the list with who is online, revocation."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge import credentials
from edge.admin.access import MAX_PAIRING_TTL, name_field, seconds_field, tenant_admin
from edge.bodies import read_json_object
from edge.context import EdgeContext
from edge.errors import ApiError
from edge.store import Conflict, Machine
from protocol import ErrorCode

routes = web.RouteTableDef()


@routes.post("/tenants/{slug}/machines/pair")
async def pair_machine(request: web.Request) -> web.Response:
    admin = await tenant_admin(request)
    ctx, tenant = admin.ctx, admin.tenant
    body = await read_json_object(request)
    name = name_field(body)
    ttl = seconds_field(body, "ttl_seconds", MAX_PAIRING_TTL) or ctx.config.pairing_ttl
    code = credentials.new_pairing_code()
    expires_at = ctx.clock() + ttl
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


@routes.get("/tenants/{slug}/machines")
async def list_machines(request: web.Request) -> web.Response:
    admin = await tenant_admin(request)
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
        "degraded": session.backend_down if session is not None else None,
    }
    if session is not None:
        view.update(
            agent_version=session.agent_version,
            connected_at=session.connected_at,
            in_flight=session.in_flight,
            max_concurrency=session.max_concurrency,
            models=sorted(session.models),
            model_details=[_model_view(session.models[name]) for name in sorted(session.models)],
            rtt_ms=round(session.rtt * 1000, 1) if session.rtt is not None else None,
        )
    return view


_MODEL_FIELDS = (
    "name",
    "capabilities",
    "context_length",
    "family",
    "parameter_size",
    "quantization",
)


def _model_view(model: dict[str, Any]) -> dict[str, Any]:
    """What the machine's agent says of one model (checked at the tunnel, PROTOCOL.md §5)."""
    return {field: model.get(field) for field in _MODEL_FIELDS}


@routes.delete("/tenants/{slug}/machines/{name}")
async def revoke_machine(request: web.Request) -> web.Response:
    """Revoke a machine: its tunnel closes at once, and keys bound to it are revoked with it."""
    admin = await tenant_admin(request)
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
