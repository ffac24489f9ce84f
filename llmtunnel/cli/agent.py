"""``llmtunnel agent pair/run/status``: the GPU box's side, next to Ollama."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
from pathlib import Path
from typing import Annotated

import typer

from llmtunnel.cli.common import fail, setup_logging

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
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Keep the tunnel to the edge open and serve requests with local Ollama."""
    from agent import config as agent_config
    from agent.backend import OllamaBackend
    from agent.runner import AgentStopped, RunOptions, run_agent

    setup_logging(verbose)
    try:
        settings = agent_config.load(config or agent_config.default_path())
    except agent_config.ConfigError as exc:
        fail(str(exc))
    ollama = _with_scheme(ollama)
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
        fail(str(exc), code=2)


@agent_app.command("status")
def agent_status(ollama: OllamaUrl = "http://127.0.0.1:11434", config: ConfigPath = None) -> None:
    """Show this machine's identity, and whether the edge and Ollama answer."""
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
    edge_ok = _probe(settings.edge_url + "/healthz", settings.ca_file)
    typer.echo(f"          {'reachable' if edge_ok else 'NOT reachable'}")
    ollama = _with_scheme(ollama)
    try:
        version = httpx.get(ollama + "/api/version", timeout=3).json().get("version")
        typer.echo(f"ollama:   {ollama} (version {version})")
    except (httpx.HTTPError, ValueError):
        typer.echo(f"ollama:   {ollama} NOT reachable")


def _with_scheme(url: str) -> str:
    """``OLLAMA_HOST`` may be a bare host:port, as Ollama itself accepts it."""
    return url if "://" in url else f"http://{url}"


def _probe(url: str, ca_file: str | None) -> bool:
    import httpx

    try:
        verify = ssl.create_default_context(cafile=ca_file) if ca_file else True
        return httpx.get(url, verify=verify, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
