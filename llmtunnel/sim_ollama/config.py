"""The simulated models, the simulator's settings and counters, and Ollama's queue limits."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from aiohttp import web

DEFAULT_REPLY_TOKENS = 24
MAX_REPLY_TOKENS = 100_000
EMBEDDING_DIMENSIONS = 768
FILLER = [
    "the",
    "tunnel",
    "carries",
    "every",
    "token",
    "from",
    "the",
    "GPU",
    "box",
    "to",
    "the",
    "client",
    "and",
    "back",
    "again",
]
THOUGHTS = ["Let", " me", " think", " about", " this."]


@dataclass(frozen=True, slots=True)
class SimModel:
    name: str
    family: str
    parameter_size: str
    capabilities: tuple[str, ...]
    context_length: int = 8192
    tool_calls_in_final_chunk: bool = False
    quantization_level: str = "Q4_K_M"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()


DEFAULT_MODELS: tuple[SimModel, ...] = (
    SimModel("qwen3:8b", "qwen3", "8.2B", ("completion", "tools", "thinking"), 40960),
    SimModel(
        "llama3.2:3b",
        "llama",
        "3.2B",
        ("completion", "tools"),
        131072,
        tool_calls_in_final_chunk=True,
    ),
    SimModel("gemma3:4b", "gemma3", "4.3B", ("completion", "vision"), 131072),
    SimModel("tinyllama:1.1b", "llama", "1.1B", ("completion",), 2048),
    SimModel(
        "nomic-embed-text:latest",
        "nomic-bert",
        "137M",
        ("embedding",),
        2048,
        quantization_level="F16",
    ),
)


@dataclass
class SimConfig:
    tokens_per_second: float = 0.0  # 0: as fast as possible
    models: tuple[SimModel, ...] = DEFAULT_MODELS
    version: str = "0.13.5"
    max_queue: int = 512
    num_parallel: int = 0  # 0: unlimited; otherwise extra requests wait, as OLLAMA_NUM_PARALLEL
    context_length: int = 8192  # the server's num_ctx, as OLLAMA_CONTEXT_LENGTH


@dataclass
class SimStats:
    started: int = 0
    completed: int = 0
    cancelled: int = 0
    active: int = 0
    queued: int = 0  # waiting for a parallel slot

    @contextlib.contextmanager
    def counted(self) -> Iterator[None]:
        """One generation: started, then completed, or cancelled (the client went away)."""
        self.started += 1
        self.active += 1
        finished = False
        try:
            yield
            finished = True
        finally:
            self.active -= 1
            if finished:
                self.completed += 1
            else:
                self.cancelled += 1


CONFIG_KEY = web.AppKey("sim_config", SimConfig)
STATS_KEY = web.AppKey("sim_stats", SimStats)


class OllamaError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Slots:
    """OLLAMA_NUM_PARALLEL and OLLAMA_MAX_QUEUE: run a few, queue some, refuse the rest."""

    def __init__(self, parallel: int, max_queue: int, stats: SimStats) -> None:
        self._semaphore = asyncio.Semaphore(parallel) if parallel else None
        self._max_queue = max_queue
        self._stats = stats

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._semaphore is None:
            yield
            return
        if self._semaphore.locked() and self._stats.queued >= self._max_queue:
            raise OllamaError(
                503, "server busy, please try again.  maximum pending requests exceeded"
            )
        self._stats.queued += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._stats.queued -= 1
        try:
            yield
        finally:
            self._semaphore.release()
