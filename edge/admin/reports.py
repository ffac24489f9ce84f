"""What a tenant's keys did: usage per key per day, and the audit trail."""

from __future__ import annotations

import datetime
import math
import time

from aiohttp import web

from edge.admin.access import MAX_UNIX_TIME, TenantAdmin, live_key, tenant_admin
from edge.errors import bad_request

routes = web.RouteTableDef()

MAX_AUDIT_LIMIT = 10_000


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
    return (await live_key(admin, name)).id if name is not None else None


@routes.get("/tenants/{slug}/usage")
async def usage(request: web.Request) -> web.Response:
    """Requests and tokens per key per UTC day (default: the last 30 days)."""
    admin = await tenant_admin(request)
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


@routes.get("/tenants/{slug}/audit")
async def audit(request: web.Request) -> web.Response:
    """Audit events, newest first: every API request and admin action (default: the last 7
    days, at most 100; ``limit`` up to 10,000)."""
    admin = await tenant_admin(request)
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
