"""``POST /agent/pair``: an agent trades a one-time pairing code for a machine identity.

The agent sends the code and its Ed25519 public key; the code is spent atomically (single use),
the machine is recorded, and its id comes back. Attempts are limited per client address, so the
code's 78 bits cannot be searched online.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

from aiohttp import web

from edge import credentials
from edge.bodies import read_json_object
from edge.context import CONTEXT
from edge.errors import ApiError, bad_request
from edge.store import Conflict


class AttemptLimiter:
    """At most ``limit`` attempts a minute per client network: an IPv4 address, or an IPv6 /64
    (one host usually holds a whole /64, so single IPv6 addresses would be free to rotate).

    Each network has a bucket of ``limit`` attempts refilled continuously. The buckets live in
    an LRU map of at most ``max_networks`` entries, so each attempt costs O(1) however many
    addresses try; a network evicted from a full map starts over with a full bucket, which a
    caller could only bring about by owning ``max_networks`` other networks."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        max_networks: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._limit = limit
        self._rate = limit / window
        self._max_networks = max_networks
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # level, updated

    def check(self, address: str) -> None:
        now = self._clock()
        network = client_network(address)
        level, updated = self._buckets.pop(network, (float(self._limit), now))
        level = min(float(self._limit), level + (now - updated) * self._rate)
        if level < 1:
            self._buckets[network] = (level, now)
            retry = math.ceil((1 - level) / self._rate)
            raise ApiError(
                429,
                "too_many_pairing_attempts",
                f"too many pairing attempts from this address; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        self._buckets[network] = (level - 1, now)  # most recent last
        if len(self._buckets) > self._max_networks:
            self._buckets.popitem(last=False)

    @property
    def tracked(self) -> int:
        """How many networks have a bucket now (at most ``max_networks``)."""
        return len(self._buckets)


def client_network(address: str) -> str:
    """The unit attempts are counted by: the IPv4 address, the IPv6 /64, else the text."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else str(ip)


LIMITER = web.AppKey("pairing_limiter", AttemptLimiter)


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
