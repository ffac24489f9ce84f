"""The ``llmtunnel`` command line (DESIGN.md "Command line"). It wires edge and agent together."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import signal
import ssl
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from edge.logging_safety import RepeatLimiter

app = typer.Typer(no_args_is_help=True, help="Serve a private GPU box's models as an OpenAI API.")
edge_app = typer.Typer(no_args_is_help=True, help="Run the public edge server.")
admin_app = typer.Typer(no_args_is_help=True, help="Manage tenants, machines and keys.")
tenant_app = typer.Typer(no_args_is_help=True, help="Tenants: one public URL each.")
machine_app = typer.Typer(no_args_is_help=True, help="GPU machines of a tenant.")
key_app = typer.Typer(no_args_is_help=True, help="API keys of a tenant.")
admin_key_app = typer.Typer(no_args_is_help=True, help="Admin keys that manage one tenant.")
agent_app = typer.Typer(no_args_is_help=True, help="Run on the GPU box next to Ollama.")
app.add_typer(edge_app, name="edge")
app.add_typer(admin_app, name="admin")
app.add_typer(agent_app, name="agent")
admin_app.add_typer(tenant_app, name="tenant")
admin_app.add_typer(machine_app, name="machine")
admin_app.add_typer(key_app, name="key")
admin_app.add_typer(admin_key_app, name="admin-key")


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _logging(verbose: bool) -> RepeatLimiter:
    """Log to stderr, through filters that rate-limit repeated records and redact anything that
    looks like a key (edge/logging_safety.py): nothing a client does can flood the log or put a
    secret in it. Returns the rate limiter, for its summaries to be flushed now and then."""
    from edge.logging_safety import RepeatLimiter, protect_handler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    limiter = RepeatLimiter()
    for handler in logging.getLogger().handlers:
        protect_handler(handler, limiter)
    return limiter


async def _flush_log_summaries(limiter: RepeatLimiter) -> None:
    """Report suppressed log records within seconds of their window ending, even when nothing else
    is logged after a burst."""
    while True:
        await asyncio.sleep(5)
        limiter.flush()


def run_until_signal(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` until it returns or SIGINT/SIGTERM arrives, then let it clean up."""

    async def wrapper() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(wrapper())


# ---------------------------------------------------------------------- demo and simulator


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Edge port on 127.0.0.1.")] = 8443,
    tokens_per_second: Annotated[
        float, typer.Option(help="Pace of the simulated Ollama (0: as fast as possible).")
    ] = 20.0,
    simulate: Annotated[
        bool, typer.Option("--simulate", help="Use the simulator even if Ollama answers.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Edge + agent + (simulated) Ollama on loopback; prints a base URL, a key and a curl line."""
    from llmtunnel.demo import run_demo

    _logging(verbose)
    if not verbose:
        logging.getLogger().setLevel(logging.WARNING)
    run_until_signal(run_demo(port, tokens_per_second, force_simulator=simulate))


@app.command("sim-ollama")
def sim_ollama(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 11434,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    tokens_per_second: Annotated[float, typer.Option(help="0: as fast as possible.")] = 0.0,
    context_length: Annotated[
        int, typer.Option(help="The server's context (num_ctx), as OLLAMA_CONTEXT_LENGTH.")
    ] = 8192,
) -> None:
    """A simulated Ollama server speaking Ollama's HTTP API (no GPU needed)."""
    from llmtunnel import sim_ollama as sim

    sim.main(
        host=host, port=port, tokens_per_second=tokens_per_second, context_length=context_length
    )


# ---------------------------------------------------------------------- edge


def _parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        _fail(f"--listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _default_data_dir() -> Path:
    env = os.environ.get("LLMTUNNEL_DATA_DIR")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "llmtunnel" / "edge"


@edge_app.command("serve")
def edge_serve(
    domain: Annotated[str, typer.Option(help="Tenants are served at SLUG.DOMAIN.")],
    listen: Annotated[
        str | None,
        typer.Option(help="HOST:PORT [default: 0.0.0.0:443, or 127.0.0.1:8080 with --plain-http]"),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Database, secrets and certificates [default: ~/.local/share/llmtunnel/edge]."
        ),
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="Certificate chain (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="Private key (PEM).")] = None,
    self_signed: Annotated[
        bool, typer.Option("--self-signed", help="Make a local CA and a wildcard certificate.")
    ] = False,
    plain_http: Annotated[
        bool, typer.Option("--plain-http", help="No TLS (binds loopback unless --listen says).")
    ] = False,
    public_port: Annotated[
        int | None, typer.Option(help="Port clients use, if not the listening one (a proxy).")
    ] = None,
    max_body_mb: Annotated[int, typer.Option(help="Largest request body, MiB.")] = 16,
    drain_timeout: Annotated[
        float, typer.Option(help="On SIGTERM, seconds running requests may take to finish.")
    ] = 30.0,
    audit_flush_seconds: Annotated[
        float,
        typer.Option(help="Audit and usage are written this often (a crash loses at most this)."),
    ] = 1.0,
    audit_retention_days: Annotated[
        float, typer.Option(help="Audit events older than this are deleted.")
    ] = 90.0,
    max_connections: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Open client connections, agents included; past it a new one gets a 503 "
            "[default: the open-file limit less 256, after raising it to the hard limit].",
        ),
    ] = None,
    header_timeout: Annotated[
        float,
        typer.Option(help="Seconds a client may take to send a request's headers (and TLS)."),
    ] = 10.0,
    idle_timeout: Annotated[
        float, typer.Option(help="Seconds an idle kept-alive connection stays open.")
    ] = 30.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve the public API and the agent endpoint."""
    from edge.config import MIB, EdgeConfig
    from edge.data_dir import secure_data_dir
    from edge.listener import raise_open_file_limit
    from edge.server import start_edge
    from edge.tls import CertificateReloader, ensure_self_signed

    limiter = _logging(verbose)
    raise_open_file_limit()
    modes = sum([tls_cert is not None or tls_key is not None, self_signed, plain_http])
    if modes != 1:
        _fail("choose exactly one of --tls-cert/--tls-key, --self-signed or --plain-http")
    if (tls_cert is None) != (tls_key is None):
        _fail("--tls-cert and --tls-key go together")
    data_dir = data_dir or _default_data_dir()
    host, port = _parse_listen(listen or ("127.0.0.1:8080" if plain_http else "0.0.0.0:443"))
    ca_file: Path | None = None
    secure_data_dir(data_dir)  # 0700 before anything, the self-signed CA's key included, is in it
    if self_signed:
        bundle = ensure_self_signed(data_dir / "tls", domain)
        tls_cert, tls_key, ca_file = bundle.cert, bundle.key, bundle.ca_cert
    reloader = CertificateReloader(tls_cert, tls_key) if tls_cert and tls_key else None
    config = EdgeConfig(
        domain=domain,
        data_dir=data_dir,
        public_scheme="http" if plain_http else "https",
        public_port=public_port or port,
        max_body=max_body_mb * MIB,
        drain_timeout=drain_timeout,
        audit_flush_interval=audit_flush_seconds,
        audit_retention_days=audit_retention_days,
        agent_ca_file=ca_file,
        max_connections=max_connections,
        header_timeout=header_timeout,
        idle_timeout=idle_timeout,
    )

    async def serve() -> None:
        edge = await start_edge(config, host, port, reloader.context if reloader else None)
        watcher = asyncio.create_task(reloader.watch()) if reloader else None
        summaries = asyncio.create_task(_flush_log_summaries(limiter))
        scheme = config.public_scheme
        typer.echo(f"llmtunnel edge listening on {scheme}://{host}:{edge.port} for *.{domain}")
        if edge.admin_key_path:
            typer.echo(f"operator key written to {edge.admin_key_path} (0600)")
        if ca_file:
            typer.echo(f"self-signed: clients and agents must trust the CA at {ca_file}")
        try:
            await asyncio.Event().wait()
        finally:
            if watcher:
                watcher.cancel()
            summaries.cancel()
            await edge.stop()
            limiter.flush(everything=True)

    run_until_signal(serve())


# ---------------------------------------------------------------------- admin

EdgeUrl = Annotated[
    str,
    typer.Option("--edge", envvar="LLMTUNNEL_EDGE_URL", help="The edge, e.g. https://example.com"),
]
AdminKey = Annotated[
    str,
    typer.Option("--admin-key", envvar="LLMTUNNEL_ADMIN_KEY", help="Operator or tenant admin key."),
]
CaFile = Annotated[
    str | None,
    typer.Option("--ca-file", envvar="LLMTUNNEL_CA_FILE", help="Trust this CA (self-signed edge)."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _call(
    edge: str,
    key: str,
    ca_file: str | None,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
) -> Any:
    from llmtunnel.admin_client import AdminClient, AdminError

    client = AdminClient(edge, key, ca_file)
    try:
        return client.request(method, path, body)
    except AdminError as exc:
        _fail(str(exc))
    finally:
        client.close()


def _printed_json(result: Any, json_: bool) -> bool:
    """With --json, print the edge's answer as is (for scripts) and say so."""
    if json_:
        typer.echo(json.dumps(result))
    return json_


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )


@tenant_app.command("create")
def tenant_create(
    slug: str, edge: EdgeUrl, admin_key: AdminKey, ca_file: CaFile = None, json_: JsonFlag = False
) -> None:
    """Create a tenant; prints its public URL."""
    result = _call(edge, admin_key, ca_file, "POST", "/tenants", {"slug": slug})
    if not _printed_json(result, json_):
        typer.echo(f"tenant {result['slug']} created: {result['api_base']}")


@tenant_app.command("list")
def tenant_list(
    edge: EdgeUrl, admin_key: AdminKey, ca_file: CaFile = None, json_: JsonFlag = False
) -> None:
    """List tenants."""
    result = _call(edge, admin_key, ca_file, "GET", "/tenants")
    if _printed_json(result, json_):
        return
    _table(
        [[t["slug"], t["api_base"], _when(t["created_at"])] for t in result["tenants"]],
        ["SLUG", "API BASE", "CREATED"],
    )


@tenant_app.command("update")
def tenant_update(
    slug: str,
    edge: EdgeUrl,
    admin_key: AdminKey,
    store_responses: Annotated[
        bool | None,
        typer.Option(
            "--store-responses/--no-store-responses",
            help="Keep Responses API responses so that clients can retrieve and continue them "
            "(off by default; turning it off deletes the stored ones).",
        ),
    ] = None,
    ca_file: CaFile = None,
    json_: JsonFlag = False,
) -> None:
    """Change a tenant's settings."""
    if store_responses is None:
        _fail("nothing to update: give --store-responses or --no-store-responses")
    body = {"store_responses": store_responses}
    result = _call(edge, admin_key, ca_file, "PATCH", f"/tenants/{slug}", body)
    if _printed_json(result, json_):
        return
    state = "on" if result["store_responses"] else "off"
    typer.echo(f"tenant {result['slug']}: response storage {state}")
    if result.get("deleted_responses"):
        typer.echo(f"{result['deleted_responses']} stored responses deleted")


@machine_app.command("pair")
def machine_pair(
    slug: str,
    name: Annotated[str, typer.Option("--name", help="A name for the GPU machine.")],
    edge: EdgeUrl,
    admin_key: AdminKey,
    ca_file: CaFile = None,
    ttl_minutes: Annotated[float, typer.Option(help="How long the code stays valid.")] = 15,
    json_: JsonFlag = False,
) -> None:
    """A one-time pairing code for a new machine, and the command to run on it."""
    body = {"name": name, "ttl_seconds": ttl_minutes * 60}
    result = _call(edge, admin_key, ca_file, "POST", f"/tenants/{slug}/machines/pair", body)
    if _printed_json(result, json_):
        return
    typer.echo(f"pairing code for {slug}/{name}: {result['code']}")
    typer.echo(f"valid until {_when(result['expires_at'])}, once. On the GPU box run:")
    typer.echo(f"  {result['agent_command']}")
    typer.echo("  llmtunnel agent run")


@machine_app.command("list")
def machine_list(
    slug: str, edge: EdgeUrl, admin_key: AdminKey, ca_file: CaFile = None, json_: JsonFlag = False
) -> None:
    """Machines of a tenant, with whether they are online."""
    result = _call(edge, admin_key, ca_file, "GET", f"/tenants/{slug}/machines")
    if _printed_json(result, json_):
        return
    rows = [
        [
            m["name"],
            "online" if m["online"] else "offline",
            ", ".join(m.get("models", [])) or "-",
            _when(m["created_at"]),
        ]
        for m in result["machines"]
    ]
    _table(rows, ["NAME", "STATUS", "MODELS", "PAIRED"])


@machine_app.command("revoke")
def machine_revoke(
    slug: str,
    name: str,
    edge: EdgeUrl,
    admin_key: AdminKey,
    ca_file: CaFile = None,
    json_: JsonFlag = False,
) -> None:
    """Revoke a machine; its live connection is closed at once."""
    result = _call(edge, admin_key, ca_file, "DELETE", f"/tenants/{slug}/machines/{name}")
    if not _printed_json(result, json_):
        typer.echo(f"machine {name} revoked")


def _duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        _fail(f"durations look like 30d, 12h, 15m or 90s; got {text!r}")
    return int(text[:-1]) * units[text[-1]]


def _since(text: str | None) -> float | None:
    """``--since``: an age such as 7d or 12h, or a UTC date such as 2026-11-01."""
    if text is None:
        return None
    if text[:1].isdigit() and text[-1:] in "smhd" and text[:-1].isdigit():
        return datetime.datetime.now(datetime.UTC).timestamp() - _duration(text)
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        _fail(f"--since takes an age such as 7d or a date such as 2026-11-01; got {text!r}")
    return datetime.datetime.combine(day, datetime.time(tzinfo=datetime.UTC)).timestamp()


def _query(**params: Any) -> str:
    from urllib.parse import urlencode

    given = {name: value for name, value in params.items() if value is not None}
    return "?" + urlencode(given) if given else ""


@key_app.command("create")
def key_create(
    slug: str,
    name: Annotated[str, typer.Option("--name", help="A name for the key.")],
    edge: EdgeUrl,
    admin_key: AdminKey,
    ca_file: CaFile = None,
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
        body["expires_in_seconds"] = _duration(expires)
    result = _call(edge, admin_key, ca_file, "POST", f"/tenants/{slug}/keys", body)
    if _printed_json(result, json_):
        return
    typer.echo(f"API key {name} for {slug} (shown once, store it now):")
    typer.echo(f"  {result['secret']}")
    typer.echo(f"base URL: {result['api_base']}")


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
def key_list(
    slug: str, edge: EdgeUrl, admin_key: AdminKey, ca_file: CaFile = None, json_: JsonFlag = False
) -> None:
    """Keys of a tenant with their scopes and limits (never their secrets)."""
    result = _call(edge, admin_key, ca_file, "GET", f"/tenants/{slug}/keys")
    if _printed_json(result, json_):
        return
    rows = [
        [
            k["name"],
            k["prefix"] + "…",
            ",".join(k["models"]) if k.get("models") else "all",
            _limits_summary(k),
            _when(k["created_at"]),
            _when(k["last_used_at"]),
            _when(k["expires_at"]),
        ]
        for k in result["keys"]
    ]
    _table(rows, ["NAME", "PREFIX", "MODELS", "LIMITS", "CREATED", "LAST USED", "EXPIRES"])


@key_app.command("rotate")
def key_rotate(
    slug: str,
    name: str,
    edge: EdgeUrl,
    admin_key: AdminKey,
    ca_file: CaFile = None,
    grace: Annotated[
        str, typer.Option(help="How long the old secret keeps working, such as 24h or 0s.")
    ] = "24h",
    json_: JsonFlag = False,
) -> None:
    """A new secret for a key; the old one keeps working until the grace period ends."""
    body = {"grace_seconds": _duration(grace)}
    result = _call(edge, admin_key, ca_file, "POST", f"/tenants/{slug}/keys/{name}/rotate", body)
    if _printed_json(result, json_):
        return
    typer.echo(f"new secret for key {name} (shown once, store it now):")
    typer.echo(f"  {result['secret']}")
    typer.echo(f"the old secret works until {_when(result['previous_secret_valid_until'])}")


@key_app.command("revoke")
def key_revoke(
    slug: str,
    name: str,
    edge: EdgeUrl,
    admin_key: AdminKey,
    ca_file: CaFile = None,
    json_: JsonFlag = False,
) -> None:
    """Revoke a key; the next request with it is refused."""
    result = _call(edge, admin_key, ca_file, "DELETE", f"/tenants/{slug}/keys/{name}")
    if not _printed_json(result, json_):
        typer.echo(f"key {name} revoked")


Since = Annotated[
    str | None, typer.Option(help="From this age (7d, 12h) or UTC date (2026-11-01) on.")
]
KeyName = Annotated[str | None, typer.Option("--key", help="Only this key.")]


@admin_app.command("usage")
def usage(
    slug: str,
    edge: EdgeUrl,
    admin_key: AdminKey,
    ca_file: CaFile = None,
    since: Since = None,
    key: KeyName = None,
    json_: JsonFlag = False,
) -> None:
    """Requests and prompt/completion tokens per key per UTC day (default: last 30 days)."""
    query = _query(since=_since(since), key=key)
    result = _call(edge, admin_key, ca_file, "GET", f"/tenants/{slug}/usage{query}")
    if _printed_json(result, json_):
        return
    columns = ("day", "key", "requests", "prompt_tokens", "completion_tokens")
    rows = [[str(u[c]) for c in columns] for u in result["usage"]]
    _table(rows, ["DAY", "KEY", "REQUESTS", "PROMPT TOKENS", "COMPLETION TOKENS"])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}ms"


@admin_app.command("audit")
def audit(
    slug: str,
    edge: EdgeUrl,
    admin_key: AdminKey,
    ca_file: CaFile = None,
    since: Since = None,
    key: KeyName = None,
    limit: Annotated[int, typer.Option(help="At most this many events, newest first.")] = 100,
    json_: JsonFlag = False,
) -> None:
    """Every API request and admin action of a tenant (metadata only), newest first."""
    query = _query(since=_since(since), key=key, limit=limit)
    result = _call(edge, admin_key, ca_file, "GET", f"/tenants/{slug}/audit{query}")
    if _printed_json(result, json_):
        return
    rows = []
    for e in result["events"]:
        when = datetime.datetime.fromtimestamp(e["at"], datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        if e["kind"] == "admin":
            rows.append([when, e["actor"], e["action"], e["subject"] or "", "", "", "", "", ""])
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
            ]
        )
    _table(
        rows,
        ["TIME (UTC)", "WHO", "WHAT", "MODEL", "MACHINE", "STATUS", "TOKENS", "TTFT", "TOOK"],
    )


@admin_app.command("alias")
def alias(
    slug: str,
    edge: EdgeUrl,
    admin_key: AdminKey,
    name: Annotated[str | None, typer.Argument(help="The name clients use, e.g. gpt-4o.")] = None,
    model: Annotated[str | None, typer.Argument(help="The model it stands for.")] = None,
    ca_file: CaFile = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias NAME.")] = False,
    json_: JsonFlag = False,
) -> None:
    """Model aliases: `alias SLUG NAME MODEL` sets one, `alias SLUG` lists them,
    `alias SLUG NAME --delete` removes one."""
    from urllib.parse import quote

    if name is None:
        result = _call(edge, admin_key, ca_file, "GET", f"/tenants/{slug}/aliases")
        if not _printed_json(result, json_):
            _table([[a, m] for a, m in result["aliases"].items()], ["ALIAS", "MODEL"])
        return
    path = f"/tenants/{slug}/aliases/{quote(name, safe=':@')}"
    if delete:
        result = _call(edge, admin_key, ca_file, "DELETE", path)
        if not _printed_json(result, json_):
            typer.echo(f"alias {name} removed")
        return
    if model is None:
        _fail("give the model the alias stands for, or --delete")
    result = _call(edge, admin_key, ca_file, "PUT", path, {"model": model})
    if not _printed_json(result, json_):
        typer.echo(f"{slug}: {name} → {model}")


# ---------------------------------------------------------------------- tenant admin keys


@admin_key_app.command("create")
def admin_key_create(
    slug: str,
    name: Annotated[str, typer.Option("--name", help="A name for the admin key.")],
    edge: EdgeUrl,
    admin_key: AdminKey,
    ca_file: CaFile = None,
    json_: JsonFlag = False,
) -> None:
    """A key that manages this tenant only (operator only); the secret is shown this once."""
    body = {"name": name}
    result = _call(edge, admin_key, ca_file, "POST", f"/tenants/{slug}/admin-keys", body)
    if _printed_json(result, json_):
        return
    typer.echo(f"admin key {name} for tenant {slug} (shown once, store it now):")
    typer.echo(f"  {result['secret']}")


@admin_key_app.command("list")
def admin_key_list(
    slug: str, edge: EdgeUrl, admin_key: AdminKey, ca_file: CaFile = None, json_: JsonFlag = False
) -> None:
    """Admin keys of a tenant (never their secrets)."""
    result = _call(edge, admin_key, ca_file, "GET", f"/tenants/{slug}/admin-keys")
    if not _printed_json(result, json_):
        _table(
            [[k["name"], _when(k["created_at"])] for k in result["admin_keys"]],
            ["NAME", "CREATED"],
        )


@admin_key_app.command("revoke")
def admin_key_revoke(
    slug: str,
    name: str,
    edge: EdgeUrl,
    admin_key: AdminKey,
    ca_file: CaFile = None,
    json_: JsonFlag = False,
) -> None:
    """Revoke a tenant admin key."""
    result = _call(edge, admin_key, ca_file, "DELETE", f"/tenants/{slug}/admin-keys/{name}")
    if not _printed_json(result, json_):
        typer.echo(f"admin key {name} revoked")


# ---------------------------------------------------------------------- agent

ConfigPath = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Agent config [default: $LLMTUNNEL_AGENT_CONFIG or ~/.config/llmtunnel/agent.json].",
    ),
]


@agent_app.command("pair")
def agent_pair(
    code: str,
    edge: Annotated[
        str, typer.Option("--edge", help="The tenant URL, e.g. https://acme.example.com")
    ],
    ca_file: Annotated[
        str | None, typer.Option("--ca-file", help="Trust this CA for the edge.")
    ] = None,
    config: ConfigPath = None,
) -> None:
    """Pair this machine with the edge using a one-time code."""
    from agent import config as agent_config
    from agent.pairing import PairingFailed, pair

    path = config or agent_config.default_path()
    if path.exists():
        _fail(f"{path} already holds a paired machine; remove it or pass --config to pair again")
    try:
        result = asyncio.run(pair(code, edge, ca_file))
    except (PairingFailed, agent_config.ConfigError) as exc:
        _fail(str(exc))
    agent_config.save(result, path)
    typer.echo(f"paired as {result.tenant}/{result.machine_name} ({result.machine_id})")
    typer.echo(f"identity saved to {path} (0600). Next: llmtunnel agent run")


@agent_app.command("run")
def agent_run(
    ollama: Annotated[
        str, typer.Option("--ollama", envvar="OLLAMA_HOST", help="Ollama's URL.")
    ] = "http://127.0.0.1:11434",
    max_concurrency: Annotated[int, typer.Option(min=1, help="Requests served at once.")] = 16,
    drain_timeout: Annotated[
        float, typer.Option(help="On SIGTERM, seconds running requests may take to finish.")
    ] = 30.0,
    config: ConfigPath = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Keep the tunnel to the edge open and serve requests with local Ollama."""
    from agent import config as agent_config
    from agent.backend import OllamaBackend
    from agent.runner import AgentStopped, RunOptions, run_agent

    _logging(verbose)
    try:
        settings = agent_config.load(config or agent_config.default_path())
    except agent_config.ConfigError as exc:
        _fail(str(exc))
    if "://" not in ollama:
        ollama = f"http://{ollama}"
    backend = OllamaBackend(ollama, max_connections=max_concurrency)
    options = RunOptions(max_concurrency=max_concurrency, drain_timeout=drain_timeout)

    async def serve() -> None:
        # First SIGTERM/SIGINT drains (GOAWAY, running requests finish); a second one quits now.
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_agent(settings, backend, options, stop))
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                task.cancel()
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(serve())
    except AgentStopped as exc:
        _fail(str(exc), code=2)


@agent_app.command("status")
def agent_status(
    ollama: Annotated[
        str, typer.Option("--ollama", envvar="OLLAMA_HOST", help="Ollama's URL.")
    ] = "http://127.0.0.1:11434",
    config: ConfigPath = None,
) -> None:
    """Show this machine's identity, and whether the edge and Ollama answer."""
    import httpx

    from agent import config as agent_config

    path = config or agent_config.default_path()
    try:
        settings = agent_config.load(path)
    except agent_config.ConfigError as exc:
        _fail(str(exc))
    typer.echo(f"config:   {path}")
    typer.echo(f"machine:  {settings.tenant}/{settings.machine_name} ({settings.machine_id})")
    typer.echo(f"edge:     {settings.edge_url}")
    edge_ok = _probe(settings.edge_url + "/healthz", settings.ca_file)
    typer.echo(f"          {'reachable' if edge_ok else 'NOT reachable'}")
    if "://" not in ollama:
        ollama = f"http://{ollama}"
    try:
        version = httpx.get(ollama + "/api/version", timeout=3).json().get("version")
        typer.echo(f"ollama:   {ollama} (version {version})")
    except (httpx.HTTPError, ValueError):
        typer.echo(f"ollama:   {ollama} NOT reachable")


def _probe(url: str, ca_file: str | None) -> bool:
    import httpx

    try:
        verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
        return httpx.get(url, verify=verify, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
