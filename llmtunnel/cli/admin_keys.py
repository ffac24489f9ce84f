"""``llmtunnel admin key …`` and ``admin admin-key …``: a tenant's API keys and its admin keys."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from llmtunnel.cli.admin_common import AdminConnection, JsonFlag, admin_connection, printed_json
from llmtunnel.cli.common import parse_duration, table, when

key_app = typer.Typer(no_args_is_help=True, help="API keys of a tenant.")
admin_key_app = typer.Typer(no_args_is_help=True, help="Admin keys that manage one tenant.")


@key_app.command(
    "create",
    epilog="Example: llmtunnel admin key create acme --name ci --models qwen3:8b "
    "--budget-tokens 200000 --rpm 60 --expires 30d",
)
def key_create(
    ctx: typer.Context,
    slug: str,
    name: Annotated[str, typer.Option("--name", help="A name for the key.")],
    models: Annotated[
        str | None, typer.Option(help="Only these models, comma-separated (default: all).")
    ] = None,
    budget_tokens: Annotated[
        int | None, typer.Option(help="Prompt + completion tokens allowed per period.")
    ] = None,
    budget_period: Annotated[
        str, typer.Option(help="The budget's period: day, week or month (UTC).")
    ] = "day",
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute.")] = None,
    machine: Annotated[
        str | None, typer.Option(help="Bind the key to this machine: requests go only there.")
    ] = None,
    expires: Annotated[str | None, typer.Option(help="Lifetime such as 30d or 12h.")] = None,
    json_: JsonFlag = False,
) -> None:
    """Create an API key, optionally limited; the secret is shown this once."""
    admin = admin_connection(ctx)
    body: dict[str, Any] = {"name": name}
    if models:
        body["models"] = [m.strip() for m in models.split(",") if m.strip()]
    if budget_tokens is not None:
        body.update(budget_tokens=budget_tokens, budget_period=budget_period)
    if rpm is not None:
        body["rpm"] = rpm
    if tpm is not None:
        body["tpm"] = tpm
    if machine:
        body["machine"] = machine
    if expires:
        body["expires_in_seconds"] = parse_duration(expires, "--expires", at_most=100 * 365 * 86400)
    result = admin.call("POST", f"/tenants/{slug}/keys", body)
    if printed_json(result, json_):
        return
    typer.echo(f"API key {name} for {slug} (shown once, store it now):")
    typer.echo(f"  {result['secret']}")
    typer.echo(f"base URL: {result['api_base']}")
    if "models" in body:
        _warn_unserved(admin, slug, body["models"])


def _warn_unserved(admin: AdminConnection, slug: str, models: list[str]) -> None:
    """A scope that names no model the tenant serves now is most often a typo: say so (the key
    is made anyway, since the machine may just be offline)."""
    from edge.model_names import same_model

    machines = admin.call("GET", f"/tenants/{slug}/machines")["machines"]
    served = {model for machine in machines for model in machine.get("models", [])}
    served |= set(admin.call("GET", f"/tenants/{slug}/aliases")["aliases"])
    unserved = [model for model in models if not same_model(model, served)]
    if unserved:
        typer.secho(
            f"warning: no online machine of {slug} serves {', '.join(unserved)} now"
            f" (served: {', '.join(sorted(served)) or 'nothing'}); check the names",
            fg=typer.colors.YELLOW,
            err=True,
        )


def _limits_summary(key: dict[str, Any]) -> str:
    parts = []
    if key.get("budget_tokens"):
        parts.append(f"{key['budget_tokens']:,} tok/{key['budget_period']}")
    if key.get("rpm"):
        parts.append(f"{key['rpm']} rpm")
    if key.get("tpm"):
        parts.append(f"{key['tpm']:,} tpm")
    if key.get("machine"):
        parts.append(f"machine {key['machine']}")
    return ", ".join(parts) or "-"


@key_app.command("list")
def key_list(ctx: typer.Context, slug: str, json_: JsonFlag = False) -> None:
    """Keys of a tenant with their scopes and limits (never their secrets)."""
    result = admin_connection(ctx).call("GET", f"/tenants/{slug}/keys")
    if printed_json(result, json_):
        return
    rows = [
        [
            k["name"],
            k["prefix"] + "…",
            ",".join(k["models"]) if k.get("models") else "all",
            _limits_summary(k),
            when(k["created_at"]),
            when(k["last_used_at"]),
            when(k["expires_at"]),
        ]
        for k in result["keys"]
    ]
    table(rows, ["NAME", "PREFIX", "MODELS", "LIMITS", "CREATED", "LAST USED", "EXPIRES"])


@key_app.command("rotate")
def key_rotate(
    ctx: typer.Context,
    slug: str,
    name: str,
    grace: Annotated[
        str, typer.Option(help="How long the old secret keeps working, such as 24h or 0s.")
    ] = "24h",
    json_: JsonFlag = False,
) -> None:
    """A new secret for a key; the old one keeps working until the grace period ends."""
    admin = admin_connection(ctx)
    body = {"grace_seconds": parse_duration(grace, "--grace", at_most=365 * 86400)}
    result = admin.call("POST", f"/tenants/{slug}/keys/{name}/rotate", body)
    if printed_json(result, json_):
        return
    typer.echo(f"new secret for key {name} (shown once, store it now):")
    typer.echo(f"  {result['secret']}")
    typer.echo(f"the old secret works until {when(result['previous_secret_valid_until'])}")


@key_app.command("revoke")
def key_revoke(ctx: typer.Context, slug: str, name: str, json_: JsonFlag = False) -> None:
    """Revoke a key; the next request with it is refused."""
    result = admin_connection(ctx).call("DELETE", f"/tenants/{slug}/keys/{name}")
    if not printed_json(result, json_):
        typer.echo(f"key {name} revoked")


@admin_key_app.command("create")
def admin_key_create(
    ctx: typer.Context,
    slug: str,
    name: Annotated[str, typer.Option("--name", help="A name for the admin key.")],
    json_: JsonFlag = False,
) -> None:
    """A key that manages this tenant only (operator only); the secret is shown this once."""
    body = {"name": name}
    result = admin_connection(ctx).call("POST", f"/tenants/{slug}/admin-keys", body)
    if printed_json(result, json_):
        return
    typer.echo(f"admin key {name} for tenant {slug} (shown once, store it now):")
    typer.echo(f"  {result['secret']}")


@admin_key_app.command("list")
def admin_key_list(ctx: typer.Context, slug: str, json_: JsonFlag = False) -> None:
    """Admin keys of a tenant (never their secrets)."""
    result = admin_connection(ctx).call("GET", f"/tenants/{slug}/admin-keys")
    if not printed_json(result, json_):
        table(
            [[k["name"], when(k["created_at"])] for k in result["admin_keys"]],
            ["NAME", "CREATED"],
        )


@admin_key_app.command("revoke")
def admin_key_revoke(ctx: typer.Context, slug: str, name: str, json_: JsonFlag = False) -> None:
    """Revoke a tenant admin key."""
    result = admin_connection(ctx).call("DELETE", f"/tenants/{slug}/admin-keys/{name}")
    if not printed_json(result, json_):
        typer.echo(f"admin key {name} revoked")
