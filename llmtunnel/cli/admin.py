"""``llmtunnel admin``: the group, whose ``--edge``, ``--admin-key`` and ``--ca-file`` every
admin command shares, and the wiring of its commands (admin_tenants, admin_keys, admin_reports)."""

from __future__ import annotations

from typing import Annotated

import typer

from llmtunnel.cli import admin_keys, admin_reports, admin_tenants
from llmtunnel.cli.admin_common import ADMIN_KEY_ENV, CA_FILE_ENV, EDGE_ENV, AdminOptions

admin_app = typer.Typer(no_args_is_help=True, help="Manage tenants, machines and keys.")
admin_app.add_typer(admin_tenants.tenant_app, name="tenant")
admin_app.add_typer(admin_tenants.machine_app, name="machine")
admin_app.add_typer(admin_keys.key_app, name="key")
admin_app.add_typer(admin_keys.admin_key_app, name="admin-key")
admin_app.command("usage")(admin_reports.usage)
admin_app.command("audit")(admin_reports.audit)
admin_app.command("alias")(admin_tenants.alias)


@admin_app.callback()
def admin_options(
    ctx: typer.Context,
    edge: Annotated[
        str | None,
        typer.Option(
            "--edge", envvar=EDGE_ENV, help="The edge, e.g. https://example.com (required)."
        ),
    ] = None,
    admin_key: Annotated[
        str | None,
        typer.Option(
            "--admin-key", envvar=ADMIN_KEY_ENV, help="Operator or tenant admin key (required)."
        ),
    ] = None,
    ca_file: Annotated[
        str | None,
        typer.Option("--ca-file", envvar=CA_FILE_ENV, help="Trust this CA (self-signed edge)."),
    ] = None,
) -> None:
    """Keep the options for the command that runs next. Nothing is checked here: this runs before
    a sub-command sees its --help. admin_common.admin_connection checks (the group's help is the
    one given to admin_app above)."""
    ctx.obj = AdminOptions(ctx, edge, admin_key, ca_file)
