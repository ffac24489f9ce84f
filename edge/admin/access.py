"""What the admin API's resources share: who may act on a tenant (``TenantAdmin``), and the
validators and ranges of what an admin sends.

An admin is authenticated by the admin key the request carries (``Authorization: Bearer``), or
by whoever mounted the handlers beforehand: the console (edge/console) serves these same
handlers to a signed-in session and sets ``AUTHENTICATED`` before they run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from edge.auth import authenticate_admin, authorize_tenant
from edge.context import CONTEXT, EdgeContext
from edge.errors import ApiError, bad_request
from edge.store import AdminKey, ApiKey, Tenant

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")

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


# Set on a request by an application that mounts the admin handlers behind its own
# authentication (the console's session); a request's own storage, which no client can write.
AUTHENTICATED = web.RequestKey("llmtunnel_authenticated_admin", AdminKey)


async def admin_of(request: web.Request) -> AdminKey:
    """The admin the request acts as: the one the mounting application authenticated, or the
    one its admin key names (401 without a valid one)."""
    admin = request.get(AUTHENTICATED)
    return admin if admin is not None else await authenticate_admin(request)


@dataclass(frozen=True, slots=True)
class TenantAdmin:
    """An authorized admin request on one tenant."""

    ctx: EdgeContext
    tenant: Tenant
    admin: AdminKey

    def audit(self, action: str, subject: str) -> None:
        self.ctx.recorder.admin(self.tenant.id, self.admin.actor, action, subject)


async def tenant_admin(request: web.Request) -> TenantAdmin:
    """The admin key of the request, authorized on the tenant its path names (``{slug}``):
    401 without a valid admin key, 403 on another tenant, 404 (operator only) on no tenant."""
    ctx = request.config_dict[CONTEXT]
    admin = await admin_of(request)
    tenant = await ctx.store.tenants.by_slug(request.match_info["slug"])
    if tenant is None:
        if admin.tenant_id is not None:
            # The same answer as for another tenant's slug: no probing which tenants exist.
            raise ApiError(403, "forbidden", "This admin key does not manage that tenant")
        raise ApiError(404, "tenant_not_found", f"no tenant {request.match_info['slug']!r}")
    authorize_tenant(admin, tenant)
    return TenantAdmin(ctx, tenant, admin)


async def live_key(admin: TenantAdmin, name: str) -> ApiKey:
    """The tenant's live API key of that name, or 404 ``key_not_found``."""
    key = await admin.ctx.store.keys.by_name(admin.tenant.id, name)
    if key is None:
        raise ApiError(404, "key_not_found", f"no key {name!r}")
    return key


def is_model_name(value: object) -> bool:
    """A model name an admin may write (a scope, an alias's target): printable text, no control
    characters (PostgreSQL refuses NUL), 1 to ``MAX_MODEL_NAME`` characters once stripped."""
    return (
        isinstance(value, str) and 0 < len(value.strip()) <= MAX_MODEL_NAME and value.isprintable()
    )


def name_field(body: dict[str, Any], field: str = "name") -> str:
    """A name (of a key, machine or admin key) from ``body[field]``."""
    value = body.get(field)
    if not isinstance(value, str) or not NAME.match(value):
        raise bad_request(
            f"{field} must be 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            param=field,
        )
    return value


def seconds_field(
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


def whole_number_field(body: dict[str, Any], field: str, maximum: int) -> int | None:
    """A whole number from 1 to ``maximum``; ``None`` when absent."""
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise bad_request(f"{field} must be a whole number from 1 to {maximum:,}", param=field)
    return value
