"""``POST /agent/pair``: an agent trades a one-time pairing code for a machine identity.

The agent sends the code and its Ed25519 public key; the code is spent atomically (single use),
the machine is recorded, and its id comes back. Attempts are limited per client address, so the
code's 78 bits cannot be searched online.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections import deque

from aiohttp import web

from edge import credentials
from edge.context import CONTEXT
from edge.errors import ApiError, bad_request, read_json_object
from edge.store import Conflict

routes = web.RouteTableDef()


class AttemptLimiter:
    """At most ``limit`` attempts per address in any 60-second window."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self._limit = limit
        self._window = window
        self._attempts: dict[str, deque[float]] = {}

    def check(self, address: str) -> None:
        now = time.monotonic()
        attempts = self._attempts.setdefault(address, deque())
        while attempts and attempts[0] <= now - self._window:
            attempts.popleft()
        if len(attempts) >= self._limit:
            retry = int(attempts[0] + self._window - now) + 1
            raise ApiError(
                429,
                "too_many_pairing_attempts",
                f"too many pairing attempts from this address; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        attempts.append(now)
        if len(self._attempts) > 10_000:  # forget idle addresses so the map stays bounded
            self._attempts = {a: q for a, q in self._attempts.items() if q and q[-1] > now - 60}


LIMITER = web.AppKey("pairing_limiter", AttemptLimiter)


@routes.post("/agent/pair")
async def pair(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
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
        machine = ctx.store.redeem_pairing_code(digest, credentials.new_id("m"), key_bytes)
    except Conflict as exc:
        raise ApiError(409, "machine_exists", str(exc)) from None
    if machine is None:
        raise ApiError(
            401, "invalid_pairing_code", "the pairing code is wrong, expired or already used"
        )
    tenant = ctx.store.tenant_by_id(machine.tenant_id)
    assert tenant is not None
    ctx.recorder.admin(tenant.id, "agent", "machine.paired", machine.name)
    return web.json_response(
        {"machine_id": machine.id, "machine_name": machine.name, "tenant": tenant.slug},
        status=201,
    )
