"""``llmtunnel edge serve``: the public edge server."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from llmtunnel.cli.common import (
    LogFormatOption,
    address_in_use_is_a_usage_error,
    fail,
    flush_log_summaries,
    parse_listen,
    run_until_signal,
    setup_logging,
)
from llmtunnel.logs import LogFormat

edge_app = typer.Typer(no_args_is_help=True, help="Run the public edge server.")


def _default_data_dir() -> Path:
    env = os.environ.get("LLMTUNNEL_DATA_DIR")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "llmtunnel" / "edge"


def _check_node_flags(node_id: str | None, advertise: str | None, plain_http: bool) -> str | None:
    """``--node-id`` and ``--advertise`` as NODES will carry them (PROTOCOL.md §11), checked
    now: a value NODES refuses would otherwise fail every agent's session setup later. The
    advertised URL without its trailing slash."""
    from urllib.parse import urlsplit

    from protocol import ProtocolError
    from protocol.frames import check_node

    if node_id is not None:
        try:
            check_node(node_id, "https://x")
        except ProtocolError as exc:
            fail(f"--node-id: {exc}")
    if advertise is None:
        return None
    url = advertise.rstrip("/")
    try:
        check_node("x", url)
        host = urlsplit(url).hostname
    except (ProtocolError, ValueError) as exc:
        fail(f"--advertise: {exc}")
    schemes = ("https://", "http://") if plain_http else ("https://",)
    if not url.startswith(schemes) or not host:
        # Agents dial it and nodes forward to it: over TLS, as the edge serves unless plain.
        fail("--advertise is https://HOST[:PORT]" + (" or http://…" if plain_http else ""))
    return url


@edge_app.command(
    "serve",
    epilog="Example: llmtunnel edge serve --domain example.com --data-dir /var/lib/llmtunnel "
    "--tls-cert /etc/llmtunnel/tls/fullchain.pem --tls-key /etc/llmtunnel/tls/privkey.pem\n\n"
    "Trying it on one machine: llmtunnel edge serve --domain localhost --listen 127.0.0.1:8443 "
    "--self-signed",
)
def edge_serve(
    domain: Annotated[str, typer.Option(help="Tenants are served at SLUG.DOMAIN.")],
    listen: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT to listen on.",
            show_default="0.0.0.0:443, or 127.0.0.1:8080 with --plain-http",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Database, secrets and certificates ($LLMTUNNEL_DATA_DIR).",
            show_default="~/.local/share/llmtunnel/edge",
        ),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            "--database",
            envvar="LLMTUNNEL_DATABASE_URL",
            help="postgresql://… to share state between edge nodes ($LLMTUNNEL_DATABASE_URL,"
            " which keeps the password out of the process list).",
            show_default="SQLite in the data directory",
        ),
    ] = None,
    redis: Annotated[
        str | None,
        typer.Option(
            "--redis",
            envvar="LLMTUNNEL_REDIS_URL",
            help="redis://… shared by every edge node: rate limits, budgets, revocations and"
            " the node directory ($LLMTUNNEL_REDIS_URL). Needs --database-url.",
            show_default="one node: limits in this process",
        ),
    ] = None,
    node_id: Annotated[
        str | None,
        typer.Option(help="This node's name among the edge nodes (logs, admin views)."),
    ] = None,
    advertise: Annotated[
        str | None,
        typer.Option(
            help="https://HOST[:PORT] where agents and the other nodes reach this node itself"
            " (with --redis): agents hold tunnels to several nodes, nodes forward requests.",
            show_default="not advertised: agents reach it only through --domain",
        ),
    ] = None,
    peer_ca_file: Annotated[
        Path | None,
        typer.Option(help="Trust this CA for the other edge nodes' certificates (with --redis)."),
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
            help="Open client connections, agents included; past it a new one gets a 503.",
            show_default="the open-file limit less 256, after raising it to the hard limit",
        ),
    ] = None,
    header_timeout: Annotated[
        float,
        typer.Option(help="Seconds a client may take to send a request's headers (and TLS)."),
    ] = 10.0,
    idle_timeout: Annotated[
        float, typer.Option(help="Seconds an idle kept-alive connection stays open.")
    ] = 30.0,
    metrics_listen: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT to serve Prometheus metrics on (GET /metrics), such as"
            " 127.0.0.1:9464; never on the public listener.",
            show_default="off",
        ),
    ] = None,
    log_format: LogFormatOption = LogFormat.HUMAN,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve the public API and the agent endpoint."""
    from edge.config import MIB, EdgeConfig
    from edge.data_dir import secure_data_dir
    from edge.listener import raise_open_file_limit
    from edge.observability.listener import MetricsListenFailed
    from edge.observability.logs import RequestLogFields
    from edge.server import start_edge
    from edge.store import OpenFailed
    from edge.tls import CertificateReloader, ensure_self_signed

    limiter = setup_logging(verbose, log_format, [RequestLogFields()])
    raise_open_file_limit()
    modes = sum([tls_cert is not None or tls_key is not None, self_signed, plain_http])
    if modes != 1:
        fail("choose exactly one of --tls-cert/--tls-key, --self-signed or --plain-http")
    if (tls_cert is None) != (tls_key is None):
        fail("--tls-cert and --tls-key go together")
    if (advertise is not None or node_id is not None) and redis is None:
        fail("--advertise and --node-id are for one of several edge nodes: give --redis too")
    if redis is not None and database_url is None:
        fail(
            "--redis shares limits between edge nodes, which must share a database too:"
            " give --database-url postgresql://…"
        )
    advertise = _check_node_flags(node_id, advertise, plain_http)
    data_dir = data_dir or _default_data_dir()
    host, port = parse_listen(listen or ("127.0.0.1:8080" if plain_http else "0.0.0.0:443"))
    metrics_address = (
        parse_listen(metrics_listen, "--metrics-listen", "127.0.0.1") if metrics_listen else None
    )
    ca_file: Path | None = None
    secure_data_dir(data_dir)  # 0700 before anything, the self-signed CA's key included, is in it
    if self_signed:
        bundle = ensure_self_signed(data_dir / "tls", domain)
        tls_cert, tls_key, ca_file = bundle.cert, bundle.key, bundle.ca_cert
    reloader = CertificateReloader(tls_cert, tls_key) if tls_cert and tls_key else None
    config = EdgeConfig(
        domain=domain,
        data_dir=data_dir,
        database_url=database_url,
        redis_url=redis,
        node_id=node_id,
        advertise_url=advertise,
        peer_ca_file=peer_ca_file or ca_file,
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
        metrics_address=metrics_address,
    )

    async def serve() -> None:
        with address_in_use_is_a_usage_error(f"{host}:{port}", "--listen HOST:PORT"):
            try:
                edge = await start_edge(config, host, port, reloader.context if reloader else None)
            except (OpenFailed, MetricsListenFailed) as exc:
                fail(str(exc))
        watcher = asyncio.create_task(reloader.watch()) if reloader else None
        summaries = asyncio.create_task(flush_log_summaries(limiter))
        scheme = config.public_scheme
        typer.echo(f"llmtunnel edge listening on {scheme}://{host}:{edge.port} for *.{domain}")
        if edge.admin_key_path:
            typer.echo(f"operator key written to {edge.admin_key_path} (0600)")
        if ca_file:
            typer.echo(f"self-signed: clients and agents must trust the CA at {ca_file}")
        if edge.metrics is not None and metrics_address is not None:
            metrics_host = metrics_address[0]
            metrics_host = f"[{metrics_host}]" if ":" in metrics_host else metrics_host
            metrics_url = f"http://{metrics_host}:{edge.metrics.port}/metrics"
            typer.echo(f"metrics at {metrics_url}")
        try:
            await asyncio.Event().wait()
        finally:
            if watcher:
                watcher.cancel()
            summaries.cancel()
            await edge.stop()
            limiter.flush(everything=True)

    run_until_signal(serve())
