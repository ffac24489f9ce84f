"""A machine whose backend is down: the agent says so (HEALTH, PROTOCOL.md §5), the edge shows it
as degraded, stops listing and routing to it, and answers 503 naming the cause; when the backend
comes back, so does the machine. Real agent, real edge, the simulator stopped and started."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import openai
import pytest

from agent.ollama import OllamaBackend
from agent.pairing import pair
from agent.runner import RunOptions, run_agent
from llmtunnel import sim_ollama
from tests.e2e.stack import Agent, Stack

pytestmark = pytest.mark.e2e

MODEL = "llama3.2:3b"


async def machine_where(
    stack: Stack, slug: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The admin API's view of machine gpu-1 once ``ready`` holds for it."""
    async with stack.admin() as admin, asyncio.timeout(10):
        while True:
            machines: list[dict[str, Any]] = (await admin.get(f"/tenants/{slug}/machines")).json()[
                "machines"
            ]
            found = next((m for m in machines if m["name"] == "gpu-1"), None)
            if found is not None and ready(found):
                return found
            await asyncio.sleep(0.02)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_machine_whose_backend_stops_is_degraded_until_it_answers_again(
    stack: Stack,
) -> None:
    await stack.tenant("acme")
    key = await stack.key("acme")
    await stack.agent("acme", model_refresh=0.05)
    client = stack.openai(key)
    assert stack.sim is not None
    port = sim_ollama.bound_port(stack.sim)
    await stack.sim.cleanup()  # Ollama stops: nothing listens on its port any more
    stack.sim = None

    degraded = await machine_where(stack, "acme", lambda m: bool(m["degraded"]))
    assert degraded["online"] and "cannot reach Ollama" in degraded["degraded"]
    assert (await client.models.list()).data == []
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 503
    body = caught.value.body
    assert isinstance(body, dict) and body["code"] == "machine_degraded"
    assert "gpu-1" in body["message"] and "cannot reach Ollama" in body["message"]

    stack.sim = await sim_ollama.serve("127.0.0.1", port)  # Ollama is back on the same port
    await machine_where(stack, "acme", lambda m: m["degraded"] is None)
    reply = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "back tokens=2"}]
    )
    assert reply.choices[0].message.content == "back the"
    assert MODEL in {m.id for m in (await client.models.list()).data}


async def test_a_machine_that_connects_with_its_backend_down_is_degraded_from_the_start(
    stack: Stack,
) -> None:
    await stack.tenant("acme")
    key = await stack.key("acme")
    config = await pair(await stack.pairing_code("acme", "gpu-1"), stack.edge_url, stack.ca)
    backend = OllamaBackend(f"http://127.0.0.1:{closed_port()}")
    stop = asyncio.Event()
    options = RunOptions(backoff_base=0.05, backoff_cap=0.5, model_refresh=0.05)
    stack.agents.append(
        Agent(config, asyncio.create_task(run_agent(config, backend, options, stop)), stop, backend)
    )

    machine = await machine_where(stack, "acme", lambda m: m["online"] and bool(m["degraded"]))
    assert machine["models"] == []
    with pytest.raises(openai.APIStatusError) as caught:
        await stack.openai(key).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 503
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "machine_degraded"
