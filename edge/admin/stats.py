"""Time series of a tenant's API requests, from the audit events: requests, errors, tokens and
time to first token per time bucket. What the console's overview charts; one tenant's, or every
tenant's the admin manages (the operator: all, per tenant)."""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from edge.admin.access import admin_of, tenant_admin
from edge.admin.reports import unix_time
from edge.context import CONTEXT, EdgeContext
from edge.errors import bad_request
from edge.store import SeriesPoint, Tenant

routes = web.RouteTableDef()

BUCKETS = (60, 300, 900, 3600, 6 * 3600, 86400)  # seconds; bucket starts are multiples of these
TARGET_BUCKETS = 200  # the default bucket is the smallest that gives at most this many
MAX_BUCKETS = 2000
DEFAULT_WINDOW = 86400.0


def _window(request: web.Request) -> tuple[float, float, int]:
    now = time.time()
    until = unix_time(request, "until", now)
    since = unix_time(request, "since", until - DEFAULT_WINDOW)
    if since >= until:
        raise bad_request("since must be before until", param="since")
    raw = request.query.get("bucket")
    if raw is None:
        bucket = next((b for b in BUCKETS if (until - since) / b <= TARGET_BUCKETS), BUCKETS[-1])
    else:
        if not raw.isdigit() or int(raw) not in BUCKETS:
            raise bad_request(
                f"bucket must be one of {', '.join(map(str, BUCKETS))} seconds", param="bucket"
            )
        bucket = int(raw)
    since = math.floor(since / bucket) * bucket  # buckets start on round times
    if (until - since) / bucket > MAX_BUCKETS:
        raise bad_request(
            f"at most {MAX_BUCKETS} buckets: choose a larger bucket or a shorter time",
            param="bucket",
        )
    return since, until, bucket


def _point(point: SeriesPoint) -> dict[str, Any]:
    return {
        "start": point.start,
        "requests": point.requests,
        "errors": point.errors,
        "prompt_tokens": point.prompt_tokens,
        "completion_tokens": point.completion_tokens,
        "ttft_ms_avg": round(point.ttft_ms_avg, 1) if point.ttft_ms_avg is not None else None,
        "ttft_ms_max": round(point.ttft_ms_max, 1) if point.ttft_ms_max is not None else None,
    }


async def _series(
    ctx: EdgeContext, tenants: list[Tenant], single: bool, request: web.Request
) -> web.Response:
    since, until, bucket = _window(request)
    await ctx.recorder.flush()  # include requests that ended in the last second
    tenant_id = tenants[0].id if single and tenants else None
    points = await ctx.store.usage.series(since, until, bucket, tenant_id)
    by_tenant: dict[str, list[dict[str, Any]]] = {t.id: [] for t in tenants}
    for point in points:
        if point.tenant_id in by_tenant:
            by_tenant[point.tenant_id].append(_point(point))
    return web.json_response(
        {
            "since": since,
            "until": until,
            "bucket_seconds": bucket,
            "tenants": [{"slug": t.slug, "points": by_tenant[t.id]} for t in tenants],
        }
    )


@routes.get("/stats")
async def all_stats(request: web.Request) -> web.Response:
    """Every tenant the admin manages (the operator: all; a tenant admin: its own), per bucket
    (``since``, ``until``: default the last 24 h; ``bucket``: default the smallest of
    ``BUCKETS`` giving at most 200). Buckets without requests are left out."""
    ctx = request.config_dict[CONTEXT]
    admin = await admin_of(request)
    tenants = [t for t in await ctx.store.tenants.all() if admin.tenant_id in (None, t.id)]
    return await _series(ctx, tenants, single=admin.tenant_id is not None, request=request)


@routes.get("/tenants/{slug}/stats")
async def tenant_stats(request: web.Request) -> web.Response:
    """One tenant's series, as ``/stats`` gives them."""
    admin = await tenant_admin(request)
    return await _series(admin.ctx, [admin.tenant], single=True, request=request)
