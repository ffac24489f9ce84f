"""``llmtunnel agent run``: keep the machine's tunnels to the edge open, reconnecting with
backoff and jitter (one tunnel, or one to each of several edge nodes: ``agent.fleet``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from agent.backend import Backend
from agent.config import AgentConfig
from agent.fleet import Fleet
from agent.tunnel import AgentStopped, EdgeRefused, RunOptions, backoff_delay, connect_once

if TYPE_CHECKING:
    from agent.metrics import AgentMetrics

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
    metrics: AgentMetrics | None = None,
) -> None:
    """Serve until ``stop`` is set (then drain and return) or the task is cancelled; what it
    does is counted in ``metrics`` when given.

    ``AgentStopped`` when the edge refuses this machine.
    """
    fleet = Fleet(config, backend, options or RunOptions(), stop or asyncio.Event(), metrics)
    await fleet.run()
