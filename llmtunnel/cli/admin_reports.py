"""``llmtunnel admin usage`` and ``admin audit``: what a tenant's keys did."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import typer

from llmtunnel.cli.admin_common import JsonFlag, admin_connection, printed_json
from llmtunnel.cli.common import parse_since, table

Since = Annotated[
    str | None, typer.Option(help="From this age (7d, 12h) or UTC date (2026-11-01) on.")
]
KeyName = Annotated[str | None, typer.Option("--key", help="Only this key.")]


def _query(**params: Any) -> str:
    from urllib.parse import urlencode

    given = {name: value for name, value in params.items() if value is not None}
    return "?" + urlencode(given) if given else ""


def usage(
    ctx: typer.Context,
    slug: str,
    since: Since = None,
    key: KeyName = None,
    json_: JsonFlag = False,
) -> None:
    """Requests and prompt/completion tokens per key per UTC day (default: last 30 days)."""
    admin = admin_connection(ctx)
    query = _query(since=parse_since(since), key=key)
    result = admin.call("GET", f"/tenants/{slug}/usage{query}")
    if printed_json(result, json_):
        return
    columns = ("day", "key", "requests", "prompt_tokens", "completion_tokens")
    rows = [[str(u[c]) for c in columns] for u in result["usage"]]
    table(rows, ["DAY", "KEY", "REQUESTS", "PROMPT TOKENS", "COMPLETION TOKENS"])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}ms"


def audit(
    ctx: typer.Context,
    slug: str,
    since: Since = None,
    key: KeyName = None,
    limit: Annotated[int, typer.Option(help="At most this many events, newest first.")] = 100,
    json_: JsonFlag = False,
) -> None:
    """Every API request and admin action of a tenant (metadata only), newest first. A request's
    id is the x-request-id its client got, and the one in the edge's and the agent's logs."""
    admin = admin_connection(ctx)
    query = _query(since=parse_since(since), key=key, limit=limit)
    result = admin.call("GET", f"/tenants/{slug}/audit{query}")
    if printed_json(result, json_):
        return
    rows = []
    for e in result["events"]:
        when = datetime.datetime.fromtimestamp(e["at"], datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        if e["kind"] == "admin":
            rows.append([when, e["actor"], e["action"], e["subject"] or "", *[""] * 6])
            continue
        tokens = (
            f"{e['prompt_tokens']}/{e['completion_tokens']}"
            if e["prompt_tokens"] is not None
            else "-"
        )
        status = str(e["status"]) + (f" {e['error_code']}" if e["error_code"] else "")
        rows.append(
            [
                when,
                e["actor"],
                e["action"],
                e["model"] or "",
                e["machine"] or "",
                status,
                tokens,
                _ms(e["ttft_ms"]),
                _ms(e["duration_ms"]),
                e.get("request_id") or "",  # none before the edge made them
            ]
        )
    table(
        rows,
        [
            "TIME (UTC)", "WHO", "WHAT", "MODEL", "MACHINE", "STATUS", "TOKENS", "TTFT", "TOOK",
            "REQUEST ID",
        ],
    )  # fmt: skip
