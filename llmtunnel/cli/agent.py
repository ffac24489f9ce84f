"""``llmtunnel agent pair/run/status``: the GPU box's side, next to its runtimes (Ollama, and
OpenAI-compatible ones: vLLM, SGLang, llama.cpp, LM Studio)."""

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
    from agent.backends import Named
    from agent.config import AgentConfig

agent_app = typer.Typer(no_args_is_help=True, help="Run on the GPU box next to its runtimes.")

ConfigPath = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="The agent's identity file ($LLMTUNNEL_AGENT_CONFIG).",
        show_default="~/.config/llmtunnel/agent.json",
    ),
]
OllamaUrl = Annotated[
    str,
    typer.Option(
        "--ollama", envvar="OLLAMA_HOST", help="Ollama's URL, when it is the one runtime."
    ),
]
BackendOption = Annotated[
    list[str] | None,
    typer.Option(
        "--backend",
        metavar="KIND=URL[,key-file=PATH]",
        help="A runtime, repeated for several: ollama=http://127.0.0.1:11434, or"
        " openai=http://127.0.0.1:8000/v1 for vLLM, SGLang, llama.cpp or LM Studio. A model two"
        " runtimes list is served by the first one given.",
    ),
]
BackendKeyFile = Annotated[
    Path | None,
    typer.Option(
        "--backend-key-file",
        help="A file holding the API key of the openai backends that name no key-file= of"
        " their own (vLLM's --api-key).",
    ),
]
CapabilitiesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--capabilities",
        metavar="MODEL=CAP[,CAP...]",
        help="What a model of an OpenAI-compatible runtime can do, in place of what it reports"
        " or the default (completion,tools): completion, tools, thinking, vision, embedding,"
        " insert. Repeated.",
    ),
]


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


@agent_app.command(
    "run",
    epilog="Example: llmtunnel agent run --backend ollama=http://127.0.0.1:11434"
    " --backend openai=http://127.0.0.1:8000/v1,key-file=/etc/llmtunnel/vllm.key",
)
def agent_run(
    ctx: typer.Context,
    ollama: OllamaUrl = "http://127.0.0.1:11434",
    backend: BackendOption = None,
    backend_key_file: BackendKeyFile = None,
    capabilities: CapabilitiesOption = None,
    max_concurrency: Annotated[int, typer.Option(min=1, help="Requests served at once.")] = 16,
    drain_timeout: Annotated[
        float, typer.Option(help="On SIGTERM, seconds running requests may take to finish.")
    ] = 30.0,
    connections: Annotated[
        int,
        typer.Option(
            min=1,
            max=16,
            help="Tunnels to distinct edge nodes, when the edge runs several (it says so).",
        ),
    ] = 2,
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
    """Keep the tunnel to the edge open and serve requests with the local runtimes."""
    from agent import config as agent_config
    from agent.backend_config import combined
    from agent.log_fields import StreamLogFields
    from agent.metrics import AgentMetrics, MetricsListenFailed, serve_metrics
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
    backends = _backends(ctx, ollama, backend, backend_key_file, capabilities, max_concurrency)
    served = combined(backends)
    options = RunOptions(
        max_concurrency=max_concurrency, drain_timeout=drain_timeout, connections=connections
    )
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
        task = asyncio.ensure_future(run_agent(settings, served, options, stop, metrics))
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
            await served.aclose()
            if listener is not None:
                await listener.stop()

    try:
        run_loop(serve())
    except AgentStopped as exc:
        fail(str(exc), code=2)


@agent_app.command("status")
def agent_status(
    ctx: typer.Context,
    ollama: OllamaUrl = "http://127.0.0.1:11434",
    backend: BackendOption = None,
    backend_key_file: BackendKeyFile = None,
    capabilities: CapabilitiesOption = None,
    config: ConfigPath = None,
) -> None:
    """Show this machine's identity, whether the edge accepts it, and every runtime: whether it
    answers, and its models.

    Exits 1 when the edge cannot be reached or refuses the machine, or a runtime does not
    answer. The check logs in as far as the edge's READY and leaves: a running agent stays
    connected."""
    from agent import config as agent_config

    path = config or agent_config.default_path()
    try:
        settings = agent_config.load(path)
    except agent_config.ConfigError as exc:
        fail(str(exc))
    backends = _backends(ctx, ollama, backend, backend_key_file, capabilities, 4)
    typer.echo(f"config:   {path}")
    typer.echo(f"machine:  {settings.tenant}/{settings.machine_name} ({settings.machine_id})")
    typer.echo(f"edge:     {settings.edge_url}")
    edge_problem, answering = asyncio.run(_check(settings, backends))
    if edge_problem or not answering:
        raise typer.Exit(1)


async def _check(settings: AgentConfig, backends: list[Named]) -> tuple[str | None, bool]:
    """Print what the edge and each backend say; whether the edge refused, whether all answer."""
    from agent.backends import look

    try:
        edge_problem = await _edge_problem(settings)
        typer.echo(f"          {edge_problem or 'reachable; this machine is accepted'}")
        listings = await asyncio.gather(*(look(named) for named in backends))
    finally:
        for named in backends:
            await named.backend.aclose()
    served: dict[str, str] = {}
    for listed in listings:
        label = listed.named.label
        if listed.models is None:
            typer.echo(f"backend:  {label} NOT answering: {listed.problem}")
            continue
        typer.echo(f"backend:  {label} answers, {len(listed.models)} models")
        for model in listed.models:
            name = model["name"]
            context = model.get("context_length")
            detail = ", ".join(model["capabilities"]) + (f"; context {context}" if context else "")
            shadow = f"  (served by {served[name]}, given first)" if name in served else ""
            served.setdefault(name, label)
            typer.echo(f"            {name}  {detail}{shadow}")
    return edge_problem, all(listed.models is not None for listed in listings)


def _backends(
    ctx: typer.Context,
    ollama: str,
    backend: list[str] | None,
    key_file: Path | None,
    capabilities: list[str] | None,
    max_connections: int,
) -> list[Named]:
    """The backends the options describe; a one-line error for anything wrong in them."""
    from agent.backend_config import build, parse_capabilities, specs
    from agent.config import ConfigError

    # --ollama written out, not OLLAMA_HOST from the environment, conflicts with --backend.
    source = ctx.get_parameter_source("ollama")
    given = source is not None and source.name == "COMMANDLINE"
    try:
        wanted = specs(backend or [], ollama, given, key_file)
        return build(wanted, parse_capabilities(capabilities or []), max_connections)
    except ConfigError as exc:
        fail(str(exc))


async def _edge_problem(settings: AgentConfig) -> str | None:
    """What keeps the edge from serving this machine, or ``None`` when it accepts it."""
    from websockets.exceptions import InvalidStatus, WebSocketException

    from agent.diagnose import explain, refusal
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
        answer = refusal(exc.response.status_code, exc.response.body)
        return f"NOT serving agents: it refused the WebSocket with {answer}"
    except (OSError, TimeoutError, WebSocketException, ProtocolError) as exc:
        return f"NOT reachable: {explain(exc, settings.edge_url)}"
    return None
