"""``POST /agent/pair``: an agent trades a one-time pairing code for a machine identity.

The agent sends the code and its Ed25519 public key; the code is spent atomically (single use),
the machine is recorded, and its id comes back. Attempts are limited per client address, so the
code's 78 bits cannot be searched online.
"""

from __future__ import annotations

import base64
import binascii

from aiohttp import web

from edge import credentials
from edge.attempts import AttemptLimiter
from edge.bodies import read_json_object
from edge.context import CONTEXT
from edge.errors import ApiError, bad_request
from edge.store import Conflict

LIMITER = web.AppKey("pairing_limiter", AttemptLimiter)


def pairing_limiter(attempts_per_minute: int) -> AttemptLimiter:
    """The pairing attempts allowed per client network (edge/attempts.py)."""
    return AttemptLimiter(attempts_per_minute, "too_many_pairing_attempts", "pairing attempts")


async def pair(request: web.Request) -> web.Response:
    ctx = request.config_dict[CONTEXT]
    request.app[LIMITER].check(request.remote or "unknown")
    body = await read_json_object(request)
    code, public_key = body.get("code"), body.get("public_key")
    if not isinstance(code, str) or not isinstance(public_key, str):
        raise bad_request("send {code, public_key}: the pairing code and a base64 Ed25519 key")
    try:
        key_bytes = base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError):
        key_bytes = b""
    if len(key_bytes) != 32:
        raise bad_request("public_key must be a base64 raw Ed25519 public key (32 bytes)")
    digest = ctx.hasher.digest(credentials.normalize_pairing_code(code))
    try:
        machine = await ctx.store.machines.redeem_pairing_code(
            digest, credentials.new_id("m"), key_bytes
        )
    except Conflict as exc:
        raise ApiError(409, "machine_exists", str(exc)) from None
    if machine is None:
        raise ApiError(
            401, "invalid_pairing_code", "the pairing code is wrong, expired or already used"
        )
    tenant = await ctx.store.tenants.by_id(machine.tenant_id)
    assert tenant is not None
    ctx.recorder.admin(tenant.id, "agent", "machine.paired", machine.name)
    return web.json_response(
        {"machine_id": machine.id, "machine_name": machine.name, "tenant": tenant.slug},
        status=201,
    )
