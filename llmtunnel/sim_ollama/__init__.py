"""A simulated Ollama server: Ollama's HTTP API as it really behaves, without a GPU.

The demo, the end-to-end tests and the benchmarks run against it. It follows docs/ARCHITECTURE.md
("Ollama as the agent sees it"), quirks included: NDJSON streaming by default, tool calls with
object arguments and ``index`` 0 on every call (one model sends them only in its final chunk),
thinking on by default for thinking models, durations in nanoseconds with zero values omitted,
``{"error": "…"}`` bodies with Ollama's statuses and messages, and an error line with HTTP 200
once a stream has begun.

Replies are deterministic so tests can predict them: the words of the last user message, then
filler. Directives in that message steer it: ``tokens=N`` replies exactly N tokens, and
``fail-after=N`` breaks the stream after N tokens as a crashed runner would.
"""

from llmtunnel.sim_ollama.config import (
    CONFIG_KEY,
    DEFAULT_MODELS,
    STATS_KEY,
    SimConfig,
    SimModel,
    SimStats,
)
from llmtunnel.sim_ollama.server import bound_port, create_app, main, serve

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_MODELS",
    "STATS_KEY",
    "SimConfig",
    "SimModel",
    "SimStats",
    "bound_port",
    "create_app",
    "main",
    "serve",
]
