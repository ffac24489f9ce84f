"""``llmtunnel admin tenant …``, ``admin machine …`` and ``admin alias``: tenants, their GPU
machines and their model aliases."""

from __future__ import annotations

from typing import Annotated

import typer

from llmtunnel.cli.admin_common import JsonFlag, admin_connection, printed_json
from llmtunnel.cli.common import fail, table, when

tenant_app = typer.Typer(no_args_is_help=True, help="Tenants: one public URL each.")
machine_app = typer.Typer(no_args_is_help=True, help="GPU machines of a tenant.")


@tenant_app.command(
    "create",
    epilog="Example: LLMTUNNEL_EDGE_URL=https://example.com "
    "LLMTUNNEL_ADMIN_KEY=$(cat /var/lib/llmtunnel/admin.key) llmtunnel admin tenant create acme",
)
def tenant_create(ctx: typer.Context, slug: str, json_: JsonFlag = False) -> None:
    """Create a tenant; prints its public URL."""
    result = admin_connection(ctx).call("POST", "/tenants", {"slug": slug})
    if not printed_json(result, json_):
        typer.echo(f"tenant {result['slug']} created: {result['api_base']}")


@tenant_app.command("list")
def tenant_list(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """List tenants."""
    result = admin_connection(ctx).call("GET", "/tenants")
    if printed_json(result, json_):
        return
    table(
        [[t["slug"], t["api_base"], when(t["created_at"])] for t in result["tenants"]],
        ["SLUG", "API BASE", "CREATED"],
    )


@tenant_app.command("update")
def tenant_update(
    ctx: typer.Context,
    slug: str,
    store_responses: Annotated[
        bool | None,
        typer.Option(
            "--store-responses/--no-store-responses",
            help="Keep Responses API responses so that clients can retrieve and continue them "
            "(off by default; turning it off deletes the stored ones).",
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Change a tenant's settings."""
    admin = admin_connection(ctx)
    if store_responses is None:
        fail("nothing to update: give --store-responses or --no-store-responses")
    body = {"store_responses": store_responses}
    result = admin.call("PATCH", f"/tenants/{slug}", body)
    if printed_json(result, json_):
        return
    state = "on" if result["store_responses"] else "off"
    typer.echo(f"tenant {result['slug']}: response storage {state}")
    if result.get("deleted_responses"):
        typer.echo(f"{result['deleted_responses']} stored responses deleted")


@machine_app.command(
    "pair",
    epilog="Example: llmtunnel admin machine pair acme --name gpu-1   (prints the code and the "
    "command to run on the GPU box)",
)
def machine_pair(
    ctx: typer.Context,
    slug: str,
    name: Annotated[str, typer.Option("--name", help="A name for the GPU machine.")],
    ttl_minutes: Annotated[
        float,
        typer.Option(
            min=0.1, max=7 * 24 * 60, help="How long the code stays valid (7 days at most)."
        ),
    ] = 15,
    json_: JsonFlag = False,
) -> None:
    """A one-time pairing code for a new machine, and the command to run on it."""
    body = {"name": name, "ttl_seconds": ttl_minutes * 60}
    result = admin_connection(ctx).call("POST", f"/tenants/{slug}/machines/pair", body)
    if printed_json(result, json_):
        return
    typer.echo(f"pairing code for {slug}/{name}: {result['code']}")
    typer.echo(f"valid until {when(result['expires_at'])}, once. On the GPU box run:")
    typer.echo(f"  {result['agent_command']}")
    typer.echo("  llmtunnel agent run")


@machine_app.command("list")
def machine_list(ctx: typer.Context, slug: str, json_: JsonFlag = False) -> None:
    """Machines of a tenant, with whether they are online and their backend answers."""
    result = admin_connection(ctx).call("GET", f"/tenants/{slug}/machines")
    if printed_json(result, json_):
        return
    rows = [
        [
            m["name"],
            _status(m),
            ", ".join(m.get("models", [])) or "-",
            when(m["created_at"]),
        ]
        for m in result["machines"]
    ]
    table(rows, ["NAME", "STATUS", "MODELS", "PAIRED"])
    for m in result["machines"]:
        if m.get("degraded"):
            typer.echo(f"{m['name']} is degraded: its backend is not answering ({m['degraded']})")


def _status(machine: dict[str, object]) -> str:
    if not machine["online"]:
        return "offline"
    return "degraded" if machine.get("degraded") else "online"


@machine_app.command("revoke")
def machine_revoke(ctx: typer.Context, slug: str, name: str, json_: JsonFlag = False) -> None:
    """Revoke a machine; its live connection is closed at once."""
    result = admin_connection(ctx).call("DELETE", f"/tenants/{slug}/machines/{name}")
    if not printed_json(result, json_):
        typer.echo(f"machine {name} revoked")


def alias(
    ctx: typer.Context,
    slug: str,
    name: Annotated[str | None, typer.Argument(help="The name clients use, e.g. gpt-4o.")] = None,
    model: Annotated[str | None, typer.Argument(help="The model it stands for.")] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias NAME.")] = False,
    json_: JsonFlag = False,
) -> None:
    """Model aliases: `alias SLUG NAME MODEL` sets one, `alias SLUG` lists them,
    `alias SLUG NAME --delete` removes one."""
    from urllib.parse import quote

    admin = admin_connection(ctx)
    if name is None:
        result = admin.call("GET", f"/tenants/{slug}/aliases")
        if not printed_json(result, json_):
            table([[a, m] for a, m in result["aliases"].items()], ["ALIAS", "MODEL"])
        return
    path = f"/tenants/{slug}/aliases/{quote(name, safe=':@')}"
    if delete:
        result = admin.call("DELETE", path)
        if not printed_json(result, json_):
            typer.echo(f"alias {name} removed")
        return
    if model is None:
        fail("give the model the alias stands for, or --delete")
    result = admin.call("PUT", path, {"model": model})
    if not printed_json(result, json_):
        typer.echo(f"{slug}: {name} → {model}")
