"""What the admin commands share: the connection to the edge's admin API that the ``admin``
group's options describe, and ``--json``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from llmtunnel.cli.common import fail

EDGE_ENV = "LLMTUNNEL_EDGE_URL"
ADMIN_KEY_ENV = "LLMTUNNEL_ADMIN_KEY"
CA_FILE_ENV = "LLMTUNNEL_CA_FILE"

JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@dataclass(frozen=True)
class AdminConnection:
    """Where admin commands go and as whom."""

    edge: str
    admin_key: str
    ca_file: str | None = None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The edge's answer to one admin API request; an error ends the command (exit 1)."""
        from llmtunnel.admin_client import AdminClient, AdminError

        client = AdminClient(self.edge, self.admin_key, self.ca_file)
        try:
            return client.request(method, path, body)
        except AdminError as exc:
            fail(_with_flag(str(exc), exc.param))
        finally:
            client.close()


# The admin API's field names, as the options the user typed.
FLAGS = {
    "budget_period": "--budget-period",
    "budget_tokens": "--budget-tokens",
    "expires_in_seconds": "--expires",
    "grace_seconds": "--grace",
    "machine": "--machine",
    "models": "--models",
    "name": "--name",
    "rpm": "--rpm",
    "store_responses": "--store-responses",
    "tpm": "--tpm",
    "ttl_seconds": "--ttl-minutes",
}


def _with_flag(message: str, param: str | None) -> str:
    """The edge's message, speaking of the option the user typed rather than the field it
    became (``--expires``, not ``expires_in_seconds``)."""
    flag = FLAGS.get(param) if param is not None else None
    if param is None or flag is None:
        return message
    return message.replace(param, flag, 1) if param in message else f"{flag}: {message}"


@dataclass(frozen=True)
class AdminOptions:
    """The ``admin`` group's options as given, kept on its context for the command run under it.
    They are checked only when a command asks for the connection, so that ``--help`` of any admin
    command works without them."""

    group: typer.Context
    edge: str | None
    admin_key: str | None
    ca_file: str | None


class MissingOption(typer.BadParameter):
    """What typer says of a missing required option, said when a command needs the option."""

    def format_message(self) -> str:
        return f"Missing option {self.param_hint}."


def admin_connection(ctx: typer.Context) -> AdminConnection:
    """The connection for the admin command running in ``ctx``; without ``--edge`` or
    ``--admin-key`` (or their variables) a usage error, exit 2, as for any missing option."""
    options = ctx.find_object(AdminOptions)
    if options is None:
        raise RuntimeError("admin commands run under the admin group, whose callback sets this")
    if options.edge is None:
        raise MissingOption("", options.group, param_hint=f"'--edge' (env var: '{EDGE_ENV}')")
    if options.admin_key is None:
        hint = f"'--admin-key' (env var: '{ADMIN_KEY_ENV}')"
        raise MissingOption("", options.group, param_hint=hint)
    return AdminConnection(options.edge, options.admin_key, options.ca_file)


def printed_json(result: Any, json_: bool) -> bool:
    """With --json, print the edge's answer as is (for scripts) and say so."""
    if json_:
        typer.echo(json.dumps(result))
    return json_
