"""A whole llmtunnel deployment on loopback, in this process: simulated Ollama (and, when asked,
a simulated OpenAI-compatible runtime), edge over TLS, tenants, keys and agents paired through
the real pairing flow. Real sockets everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
from aiohttp import web
from openai.types.chat import ChatCompletionUserMessageParam

from agent.backend import Backend
from agent.backend_config import combined
from agent.backends import Named
from agent.config import AgentConfig
from agent.metrics import AgentMetrics
from agent.ollama import OllamaBackend
from agent.pairing import pair
from agent.runner import RunOptions, run_agent
from edge.config import EdgeConfig
from edge.server import RunningEdge, start_edge
from edge.tls import ensure_self_signed, server_ssl_context
from llmtunnel import sim_ollama, sim_openai
from protocol import TunnelLimits


def user(text: str) -> ChatCompletionUserMessageParam:
    """A user message, typed for the OpenAI SDK."""
    return {"role": "user", "content": text}


class Clock:
    """The edge's Unix time: the real one, moved forward by ``advance`` (expiry and grace
    tests jump over hours instead of sleeping through seconds)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class Agent:
    config: AgentConfig
    task: asyncio.Task[None]
    stop_event: asyncio.Event
    backend: Backend

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
        await self.backend.aclose()


@dataclass
class Stack:
    edge: RunningEdge
    edge_url: str
    ca: str
    admin_key: str
    ollama_url: str
    sim: web.AppRunner | None
    server_tls: ssl.SSLContext
    clock: Clock
    agents: list[Agent] = field(default_factory=list)
    openai_sim: web.AppRunner | None = None  # the simulated OpenAI-compatible runtime, if asked
    openai_url: str = ""  # its base URL, ending in /v1

    async def openai_stats(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            stats: dict[str, Any] = (
                await http.get(self.openai_url.removesuffix("/v1") + "/_sim/stats")
            ).json()
            return stats

    async def restart_edge(self) -> None:
        """Stop the edge (a graceful drain) and start it again on the same data and port."""
        port, config = self.edge.port, self.edge.context.config
        await self.edge.stop()
        self.edge = await start_edge(config, "127.0.0.1", port, self.server_tls, self.clock)

    def tls(self) -> ssl.SSLContext:
        """A client context that trusts the stack's CA."""
        return ssl.create_default_context(cafile=self.ca)

    def admin(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.edge_url + "/admin/v1",
            headers={"Authorization": f"Bearer {self.admin_key}"},
            verify=self.tls(),
        )

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.edge_url, verify=self.tls(), timeout=30)

    def openai(self, key: str, base_url: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=(base_url or self.edge_url) + "/v1",
            api_key=key,
            max_retries=0,
            timeout=30,
            http_client=openai.DefaultAsyncHttpxClient(verify=self.tls()),
        )

    async def tenant(self, slug: str) -> None:
        async with self.admin() as admin:
            (await admin.post("/tenants", json={"slug": slug})).raise_for_status()

    async def key(self, slug: str, name: str = "test", **limits: Any) -> str:
        """A new API key; ``limits`` are the admin API's fields (models, rpm, budget_tokens…)."""
        async with self.admin() as admin:
            response = await admin.post(f"/tenants/{slug}/keys", json={"name": name, **limits})
            response.raise_for_status()
            secret: str = response.json()["secret"]
            return secret

    async def pairing_code(self, slug: str, name: str, **extra: Any) -> str:
        async with self.admin() as admin:
            response = await admin.post(
                f"/tenants/{slug}/machines/pair", json={"name": name, **extra}
            )
            response.raise_for_status()
            code: str = response.json()["code"]
            return code

    async def agent(
        self,
        slug: str,
        name: str = "gpu-1",
        *,
        ollama_url: str | None = None,
        dial: str | None = None,
        backends: list[Named] | None = None,
        wait: bool = True,
        metrics: AgentMetrics | None = None,
        **options: Any,
    ) -> Agent:
        """Pair a machine and run its agent until it shows up online.

        ``dial`` makes the agent connect through another address (a test proxy); ``backends``
        are its runtimes (by default the simulated Ollama), as ``agent run --backend`` makes
        them; ``wait=False`` returns without waiting for it to serve models; ``metrics`` counts
        what it does."""
        config = await pair(await self.pairing_code(slug, name), self.edge_url, self.ca)
        if dial is not None:
            config = config.model_copy(update={"edge_url": dial})
        backend = (
            combined(backends)
            if backends
            else OllamaBackend(
                ollama_url or self.ollama_url, max_connections=options.get("max_concurrency", 16)
            )
        )
        run_options = RunOptions(**{"backoff_base": 0.05, "backoff_cap": 0.5, **options})
        stop = asyncio.Event()
        task = asyncio.create_task(run_agent(config, backend, run_options, stop, metrics))
        agent = Agent(config, task, stop, backend)
        self.agents.append(agent)
        if wait:
            await self.wait_online(slug, name)
        return agent

    async def wait_online(self, slug: str, name: str, online: bool = True) -> None:
        async with self.admin() as admin, asyncio.timeout(10):
            while True:
                machines = (await admin.get(f"/tenants/{slug}/machines")).json()["machines"]
                state = {m["name"]: m["online"] and bool(m.get("models")) for m in machines}
                if state.get(name, False) == online:
                    return
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running_stack(
    tmp_path: Path,
    *,
    tokens_per_second: float = 0.0,
    limits: TunnelLimits | None = None,
    context_length: int = sim_ollama.SimConfig.context_length,
    database_url: str | None = None,
    openai: sim_openai.SimOpenAIConfig | None = None,
    **edge_options: Any,
) -> AsyncIterator[Stack]:
    """The stack in ``tmp_path``; ``database_url`` puts the edge's state in PostgreSQL instead
    of SQLite in its data directory; ``openai`` starts a simulated OpenAI-compatible runtime
    too (``stack.openai_url``)."""
    sim_config = sim_ollama.SimConfig(
        tokens_per_second=tokens_per_second, context_length=context_length
    )
    sim = await sim_ollama.serve("127.0.0.1", 0, sim_config)
    openai_sim = await sim_openai.serve("127.0.0.1", 0, openai) if openai is not None else None
    bundle = ensure_self_signed(tmp_path / "tls", "example.test")
    config = EdgeConfig(
        domain="example.test",
        data_dir=tmp_path / "edge",
        public_port=0,
        tunnel=limits or TunnelLimits(),
        database_url=database_url,
        **edge_options,
    )
    server_tls = server_ssl_context(bundle.cert, bundle.key)
    clock = Clock()
    edge = await start_edge(config, "127.0.0.1", 0, server_tls, clock)
    assert edge.admin_key_path is not None
    stack = Stack(
        edge=edge,
        edge_url=f"https://localhost:{edge.port}",
        ca=str(bundle.ca_cert),
        admin_key=edge.admin_key_path.read_text().strip(),
        ollama_url=f"http://127.0.0.1:{sim_ollama.bound_port(sim)}",
        sim=sim,
        server_tls=server_tls,
        clock=clock,
        openai_sim=openai_sim,
    )
    if openai_sim is not None:
        stack.openai_url = f"http://127.0.0.1:{sim_openai.bound_port(openai_sim)}/v1"
    try:
        yield stack
    finally:
        for agent in stack.agents:
            await agent.stop()
        await edge.stop()
        await sim.cleanup()
        if openai_sim is not None:
            await openai_sim.cleanup()
