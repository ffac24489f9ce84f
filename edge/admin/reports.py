"""What a tenant's keys did: usage per key per day (exact, kept for ever), per key and model per
day (from the audit events, within their retention), and the audit trail, filtered and paged.
The usage reports come as JSON or, with ``format=csv``, as a CSV download."""

from __future__ import annotations

import csv
import datetime
import io
import math
import re
import time
from collections.abc import Iterable, Sequence

from aiohttp import web

from edge.admin.access import MAX_UNIX_TIME, NAME, TenantAdmin, live_key, tenant_admin
from edge.errors import bad_request
from edge.store import AuditQuery

routes = web.RouteTableDef()

MAX_AUDIT_LIMIT = 10_000
_STATUS_CLASSES = {
    "ok": (100, 399),
    "error": (400, 599),
    "2xx": (200, 299),
    "3xx": (300, 399),
    "4xx": (400, 499),
    "5xx": (500, 599),
}
_CURSOR = re.compile(r"^(\d{1,12}(?:\.\d{1,17})?):(\d{1,18})$")
_KINDS = ("request", "admin")


def unix_time(request: web.Request, param: str, default: float) -> float:
    """A Unix time from the query (``default`` when absent), or a 400 naming ``param``."""
    raw = request.query.get(param)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_UNIX_TIME:  # also refuses nan and inf
        raise bad_request(
            f"{param} must be a Unix time in seconds, from 0 to {MAX_UNIX_TIME:.0f}", param=param
        )
    return value


def _since(request: web.Request, default_age: float) -> float:
    return unix_time(request, "since", time.time() - default_age)


async def _key_filter(admin: TenantAdmin, request: web.Request) -> str | None:
    name = request.query.get("key")
    return (await live_key(admin, name)).id if name is not None else None


def _wants_csv(request: web.Request) -> bool:
    wanted = request.query.get("format", "json")
    if wanted not in ("json", "csv"):
        raise bad_request("format must be json or csv", param="format")
    return wanted == "csv"


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a value starting with = + - @ or a control
    character would be read as a formula (CSV injection), so it is quoted with a leading '."""
    text = "" if value is None else str(value)
    if text and (text[0] in "=+-@\t\r" and not _is_number(text)):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_download(
    filename: str, header: Sequence[str], rows: Iterable[Sequence[object]]
) -> web.Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@routes.get("/tenants/{slug}/usage")
async def usage(request: web.Request) -> web.Response:
    """Requests and tokens per key per UTC day (default: the last 30 days)."""
    admin = await tenant_admin(request)
    as_csv = _wants_csv(request)
    since = _since(request, 30 * 86400)
    day = datetime.datetime.fromtimestamp(since, datetime.UTC).date().isoformat()
    await admin.ctx.recorder.flush()  # include requests that ended in the last second
    rows = await admin.ctx.store.usage.daily(
        admin.tenant.id, day, await _key_filter(admin, request)
    )
    if as_csv:
        return csv_download(
            f"{admin.tenant.slug}-usage-by-key-since-{day}.csv",
            ("day", "key", "requests", "prompt_tokens", "completion_tokens"),
            ((r.day, r.key_name, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows),
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


@routes.get("/tenants/{slug}/usage/models")
async def usage_by_model(request: web.Request) -> web.Response:
    """Requests, errors and tokens per UTC day, key and model (default: the last 30 days),
    counted from the audit events: only as far back as they are kept, and only the tokens
    machines reported (a broken stream is charged to budgets but has no count here)."""
    admin = await tenant_admin(request)
    as_csv = _wants_csv(request)
    since = _since(request, 30 * 86400)
    await admin.ctx.recorder.flush()
    rows = await admin.ctx.store.usage.daily_by_model(
        admin.tenant.id, since, await _key_filter(admin, request)
    )
    columns = ("day", "key", "model", "requests", "errors", "prompt_tokens", "completion_tokens")
    values = [
        (r.day, r.key_name, r.model, r.requests, r.errors, r.prompt_tokens, r.completion_tokens)
        for r in rows
    ]
    if as_csv:
        day = datetime.datetime.fromtimestamp(since, datetime.UTC).date().isoformat()
        return csv_download(f"{admin.tenant.slug}-usage-by-model-since-{day}.csv", columns, values)
    return web.json_response(
        {"since": since, "usage": [dict(zip(columns, row, strict=True)) for row in values]}
    )


def _audit_query(request: web.Request, since: float, key_id: str | None) -> AuditQuery:
    until = unix_time(request, "until", 0.0) if "until" in request.query else None
    machine = request.query.get("machine")
    if machine is not None and not NAME.match(machine):
        raise bad_request("machine must be a machine's name", param="machine")
    kind = request.query.get("kind")
    if kind is not None and kind not in _KINDS:
        raise bad_request("kind must be request or admin", param="kind")
    status = request.query.get("status")
    status_range = None
    if status is not None:
        status_range = _STATUS_CLASSES.get(status)
        if status_range is None and status.isdigit() and 100 <= int(status) <= 599:
            status_range = (int(status), int(status))
        if status_range is None:
            raise bad_request(
                "status must be a status code (100-599), ok, error, 2xx, 3xx, 4xx or 5xx",
                param="status",
            )
    before = None
    if (cursor := request.query.get("cursor")) is not None:
        found = _CURSOR.match(cursor)
        if found is None:
            raise bad_request("cursor must be a next_cursor the audit returned", param="cursor")
        before = (float(found[1]), int(found[2]))
    return AuditQuery(
        since=since,
        until=until,
        key_id=key_id,
        machine=machine,
        kind=kind,
        status_min=status_range[0] if status_range else None,
        status_max=status_range[1] if status_range else None,
        before=before,
    )


@routes.get("/tenants/{slug}/audit")
async def audit(request: web.Request) -> web.Response:
    """Audit events, newest first: every API request and admin action (default: the last 7
    days, at most 100; ``limit`` up to 10,000). Filters: ``until``, ``key``, ``machine``,
    ``kind``, ``status``; the next page starts at ``cursor``, the ``next_cursor`` of this one
    (``null`` on the last page)."""
    admin = await tenant_admin(request)
    since = _since(request, 7 * 86400)
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_AUDIT_LIMIT:
        raise bad_request(f"limit must be 1 to {MAX_AUDIT_LIMIT}", param="limit")
    query = _audit_query(request, since, await _key_filter(admin, request))
    await admin.ctx.recorder.flush()
    events = await admin.ctx.store.usage.audit_page(admin.tenant.id, query, limit)
    for event in events:
        del event["tenant_id"]
    last = events[-1] if len(events) == limit else None
    next_cursor = f"{last['at']!r}:{last['id']}" if last is not None else None
    return web.json_response({"events": events, "next_cursor": next_cursor})
