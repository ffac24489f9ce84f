"""The ``llmtunnel`` command line: the root app, ``demo``, ``sim-ollama`` and ``sim-openai``, and
the wiring of the ``edge``, ``admin`` and ``agent`` sub-apps (one module each). It wires edge and
agent together.

Starting it must stay fast: the edge, the agent and the HTTP client are imported inside the
commands that need them, never here or at the top of a sub-app's module."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from llmtunnel.cli.admin import admin_app
from llmtunnel.cli.agent import agent_app
from llmtunnel.cli.common import address_in_use_is_a_usage_error, run_until_signal, setup_logging
from llmtunnel.cli.edge import edge_app

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Serve a private GPU box's models as an OpenAI API.")


def _version(show: bool) -> None:
    if show:
        from importlib.metadata import version

        typer.echo(f"llmtunnel {version('llmtunnel')}")
        raise typer.Exit


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Serve a private GPU box's models as an OpenAI API."""


app.add_typer(edge_app, name="edge")
app.add_typer(admin_app, name="admin")
app.add_typer(agent_app, name="agent")


@app.command(
    epilog="Example: llmtunnel demo --port 8443   (then use the base URL, key and CA it prints)"
)
def demo(
    port: Annotated[int, typer.Option(help="Edge port on 127.0.0.1.")] = 8443,
    tokens_per_second: Annotated[
        float, typer.Option(help="Pace of the simulated Ollama (0: as fast as possible).")
    ] = 20.0,
    simulate: Annotated[
        bool, typer.Option("--simulate", help="Use the simulator even if Ollama answers.")
    ] = False,
    context_length: Annotated[
        int,
        typer.Option(
            help="The simulator's context (as OLLAMA_CONTEXT_LENGTH; each model caps it at its "
            "own, qwen3:8b at 40,960): large enough for Claude Code's first request."
        ),
    ] = 65536,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Edge + agent + (simulated) Ollama on loopback; prints a base URL, a key and a curl line."""
    from llmtunnel.demo import run_demo

    setup_logging(verbose)
    if not verbose:
        # Quiet but for what a person trying it wants to see: each request, and a reconnect.
        logging.getLogger().setLevel(logging.WARNING)
        for wanted in ("edge.access", "agent.runner"):
            logging.getLogger(wanted).setLevel(logging.INFO)
    with address_in_use_is_a_usage_error(f"127.0.0.1:{port}", "--port"):
        run_until_signal(
            run_demo(port, tokens_per_second, context_length, force_simulator=simulate)
        )


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

    with address_in_use_is_a_usage_error(f"{host}:{port}", "--port"):
        sim.main(
            host=host,
            port=port,
            tokens_per_second=tokens_per_second,
            context_length=context_length,
        )


@app.command("sim-openai")
def sim_openai(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    flavour: Annotated[
        str, typer.Option(help="Whose quirks: vllm, llama.cpp, lm-studio or plain.")
    ] = "vllm",
    tokens_per_second: Annotated[float, typer.Option(help="0: as fast as possible.")] = 0.0,
    context_length: Annotated[
        int, typer.Option(help="The server's context (vLLM's --max-model-len).")
    ] = 8192,
    api_key_file: Annotated[
        str | None, typer.Option(help="Ask for this key, as vLLM's --api-key does.")
    ] = None,
) -> None:
    """A simulated OpenAI-compatible runtime (vLLM, llama.cpp, LM Studio), no GPU needed."""
    from pathlib import Path

    from llmtunnel import sim_openai as sim
    from llmtunnel.cli.common import fail

    if flavour not in sim.FLAVOURS:
        fail(f"--flavour is one of {', '.join(sim.FLAVOURS)}; got {flavour!r}")
    key = Path(api_key_file).read_text().strip() if api_key_file else None
    config = sim.SimOpenAIConfig(
        flavour=flavour,  # checked against FLAVOURS above
        tokens_per_second=tokens_per_second,
        context_length=context_length,
        api_key=key,
    )
    with address_in_use_is_a_usage_error(f"{host}:{port}", "--port"):
        sim.main(host, port, config)
