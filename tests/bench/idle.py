"""Many idle agents in one process, for scenario (e): what each costs the edge's memory.

    python -m tests.bench.idle DIRECTORY OLLAMA_URL

runs one agent per identity file in DIRECTORY (``agent.config`` files, provisioned by the bench)
against the token source, until terminated. A thousand ``llmtunnel agent run`` processes would
need a thousand interpreters; these are the same agent loop, sharing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from agent.config import AgentConfig, load
from agent.ollama import OllamaBackend
from agent.runner import RunOptions, run_agent


async def main(configs: list[AgentConfig], ollama: str) -> None:
    backend = OllamaBackend(ollama)
    options = RunOptions(model_refresh=3600)  # idle: no model list refresh while measured
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(run_agent(config, backend, options)) for config in configs]
    print(f"started {len(tasks)} agents", flush=True)
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await backend.aclose()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        identities = [load(path) for path in sorted(Path(sys.argv[1]).glob("*.json"))]
        asyncio.run(main(identities, sys.argv[2]))
