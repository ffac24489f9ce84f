"""``llmtunnel agent pair/run/status``: the GPU box's side, next to Ollama."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from llmtunnel.cli.common import LogFormatOption, fail, parse_listen, run_loop, setup_logging
from llmtunnel.logs import LogFormat

if TYPE_CHECKING:
    from agent.config import AgentConfig

agent_app = typer.Typer(no_args_is_help=True, help="Run on the GPU box next to Ollama.")

ConfigPath = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="The agent's identity file ($LLMTUNNEL_AGENT_CONFIG).",
        show_default="~/.config/llmtunnel/agent.json",
    ),
]
OllamaUrl = Annotated[str, typer.Option("--ollama", envvar="OLLAMA_HOST", help="Ollama's URL.")]


@agent_app.command(
    "pair",
    epilog="Example: llmtunnel agent pair ABCD-EFGH-JKLM-NPQR --edge https://acme.example.com",
)
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
        fail(f"{path} already holds a paired machine; remove it or pass --config to pair again")
    try:
        result = asyncio.run(pair(code, edge, ca_file))
    except (PairingFailed, agent_config.ConfigError) as exc:
        fail(str(exc))
    agent_config.save(result, path)
    typer.echo(f"paired as {result.tenant}/{result.machine_name} ({result.machine_id})")
    typer.echo(f"identity saved to {path} (0600). Next: llmtunnel agent run")


@agent_app.command("run", epilog="Example: llmtunnel agent run --ollama http://127.0.0.1:11434")
def agent_run(
    ollama: OllamaUrl = "http://127.0.0.1:11434",
    max_concurrency: Annotated[int, typer.Option(min=1, help="Requests served at once.")] = 16,
    drain_timeout: Annotated[
        float, typer.Option(help="On SIGTERM, seconds running requests may take to finish.")
    ] = 30.0,
    config: ConfigPath = None,
    metrics_listen: Annotated[
        str | None,
        typer.Option(
            help="HOST:PORT to serve Prometheus metrics on (GET /metrics), such as 127.0.0.1:9465.",
            show_default="off",
        ),
    ] = None,
    log_format: LogFormatOption = LogFormat.HUMAN,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Keep the tunnel to the edge open and serve requests with local Ollama."""
    from agent import config as agent_config
    from agent.log_fields import StreamLogFields
    from agent.metrics import AgentMetrics, MetricsListenFailed, serve_metrics
    from agent.ollama import OllamaBackend
    from agent.runner import AgentStopped, RunOptions, run_agent

    fields = StreamLogFields()
    setup_logging(verbose, log_format, [fields])
    try:
        settings = agent_config.load(config or agent_config.default_path())
    except agent_config.ConfigError as exc:
        fail(str(exc))
    fields.tenant, fields.machine = settings.tenant, settings.machine_name
    metrics_address = (
        parse_listen(metrics_listen, "--metrics-listen", "127.0.0.1") if metrics_listen else None
    )
    ollama = _with_scheme(ollama)
    backend = OllamaBackend(ollama, max_connections=max_concurrency)
    options = RunOptions(max_concurrency=max_concurrency, drain_timeout=drain_timeout)
    metrics = AgentMetrics() if metrics_address else None

    async def serve() -> None:
        listener = None
        if metrics is not None and metrics_address is not None:
            try:
                listener = await serve_metrics(metrics, *metrics_address)
            except MetricsListenFailed as exc:
                fail(str(exc))
            host = metrics_address[0]
            host = f"[{host}]" if ":" in host else host
            typer.echo(f"metrics at http://{host}:{listener.port}/metrics")
        # First SIGTERM/SIGINT drains (GOAWAY, running requests finish); a second one quits now.
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_agent(settings, backend, options, stop, metrics))
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if stop.is_set():
                task.cancel()
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            await backend.aclose()
            if listener is not None:
                await listener.stop()

    try:
        run_loop(serve())
    except AgentStopped as exc:
        fail(str(exc), code=2)


@agent_app.command("status")
def agent_status(ollama: OllamaUrl = "http://127.0.0.1:11434", config: ConfigPath = None) -> None:
    """Show this machine's identity, whether the edge accepts it and whether Ollama answers.

    Exits 1 when the edge cannot be reached or refuses the machine, or Ollama does not answer.
    The check logs in as far as the edge's READY and leaves: a running agent stays connected."""
    import httpx

    from agent import config as agent_config

    path = config or agent_config.default_path()
    try:
        settings = agent_config.load(path)
    except agent_config.ConfigError as exc:
        fail(str(exc))
    typer.echo(f"config:   {path}")
    typer.echo(f"machine:  {settings.tenant}/{settings.machine_name} ({settings.machine_id})")
    typer.echo(f"edge:     {settings.edge_url}")
    edge_problem = asyncio.run(_edge_problem(settings))
    typer.echo(f"          {edge_problem or 'reachable; this machine is accepted'}")
    ollama = _with_scheme(ollama)
    try:
        version = httpx.get(ollama + "/api/version", timeout=3).json().get("version")
        typer.echo(f"ollama:   {ollama} (version {version})")
        ollama_ok = True
    except (httpx.HTTPError, ValueError, AttributeError):
        typer.echo(f"ollama:   {ollama} NOT reachable")
        ollama_ok = False
    if edge_problem or not ollama_ok:
        raise typer.Exit(1)


async def _edge_problem(settings: AgentConfig) -> str | None:
    """What keeps the edge from serving this machine, or ``None`` when it accepts it."""
    from websockets.exceptions import InvalidStatus, WebSocketException

    from agent.diagnose import explain
    from agent.login import check_accepted
    from protocol import ClosedByPeer, ProtocolError

    try:
        await check_accepted(settings)
    except ClosedByPeer as exc:
        return (
            f"REFUSES this machine ({exc.error_code}: revoked, or unknown to this edge);"
            " pair it again with `llmtunnel agent pair CODE --edge URL`"
        )
    except InvalidStatus as exc:
        return f"NOT serving agents: it refused the WebSocket with HTTP {exc.response.status_code}"
    except (OSError, TimeoutError, WebSocketException, ProtocolError) as exc:
        return f"NOT reachable: {explain(exc, settings.edge_url)}"
    return None


def _with_scheme(url: str) -> str:
    """``OLLAMA_HOST`` may be a bare host:port, as Ollama itself accepts it."""
    return url if "://" in url else f"http://{url}"
