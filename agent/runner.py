"""``llmtunnel agent run``: keep the machine's tunnels to the edge open, reconnecting with
backoff and jitter (one tunnel, or one to each of several edge nodes: ``agent.fleet``)."""

from __future__ import annotations

import asyncio

from agent.backend import Backend
from agent.config import AgentConfig
from agent.fleet import Fleet
from agent.tunnel import AgentStopped, EdgeRefused, RunOptions, backoff_delay, connect_once

__all__ = [
    "AgentStopped",
    "EdgeRefused",
    "RunOptions",
    "backoff_delay",
    "connect_once",
    "run_agent",
]


async def run_agent(
    config: AgentConfig,
    backend: Backend,
    options: RunOptions | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (then drain and return) or the task is cancelled.

    ``AgentStopped`` when the edge refuses this machine.
    """
    await Fleet(config, backend, options or RunOptions(), stop or asyncio.Event()).run()
