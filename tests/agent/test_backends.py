"""Several runtimes as one backend (agent/backends.py), against the simulated Ollama and the
simulated OpenAI-compatible runtime: merged models, routing, clashes, partial and total
failure, a runtime that hangs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from agent import backends as backends_module
from agent.backend import BackendError, Finish, Piece
from agent.backends import Backends, Named
from agent.ollama import OllamaBackend
from agent.openai_backend import OpenAIBackend
from llmtunnel import sim_ollama, sim_openai
from llmtunnel.sim_ollama import SimModel
from protocol import ErrorCode
from protocol.requests import from_wire


@pytest.fixture
async def runtimes() -> AsyncIterator[tuple[str, str, web.AppRunner]]:
    """The simulated Ollama, and an OpenAI runtime that also lists one of Ollama's models."""
    clash = SimModel("llama3.2:3b", "llama", "3B", ("completion",), 4096)
    ollama = await sim_ollama.serve("127.0.0.1", 0)
    config = sim_openai.SimOpenAIConfig(models=(*sim_openai.DEFAULT_MODELS, clash))
    openai = await sim_openai.serve("127.0.0.1", 0, config)
    try:
        yield (
            f"http://127.0.0.1:{sim_ollama.bound_port(ollama)}",
            f"http://127.0.0.1:{sim_openai.bound_port(openai)}/v1",
            openai,
        )
    finally:
        await openai.cleanup()
        await ollama.cleanup()


@pytest.fixture
async def both(runtimes: tuple[str, str, web.AppRunner]) -> AsyncIterator[Backends]:
    ollama_url, openai_url, _ = runtimes
    made = Backends(
        [
            Named(f"ollama {ollama_url}", OllamaBackend(ollama_url)),
            Named(f"openai {openai_url}", OpenAIBackend(openai_url)),
        ]
    )
    try:
        yield made
    finally:
        await made.aclose()


def _chat(model: str, text: str = "hi tokens=2") -> Any:
    messages = [{"role": "user", "content": text}]
    return from_wire({"op": "chat", "model": model, "messages": messages, "think": False})


async def _text(backends: Backends, model: str) -> str:
    items = [item async for item in backends.stream(_chat(model))]
    assert isinstance(items[-1], Finish)
    return "".join(item.content for item in items if isinstance(item, Piece))


async def test_models_are_merged_and_the_first_backend_wins_a_clash(
    both: Backends, runtimes: tuple[str, str, web.AppRunner], caplog: pytest.LogCaptureFixture
) -> None:
    _, openai_url, openai = runtimes
    with caplog.at_level(logging.WARNING, "agent.backends"):
        models = await both.discover()
        await both.discover()  # a clash is logged when it appears, not at every look
    names = [m["name"] for m in models]
    assert names == sorted(names) and len(names) == len(set(names)) == 5 + 4
    clash = next(m for m in models if m["name"] == "llama3.2:3b")
    assert clash["capabilities"] == ["completion", "tools"]  # Ollama's, given first
    assert [r.getMessage() for r in caplog.records] == [
        f"openai {openai_url} lists 'llama3.2:3b', which a backend given before it serves:"
        " its own is left out"
    ]
    # Each model to the runtime that listed it: Ollama answered the clash.
    assert await _text(both, "llama3.2:3b") == "hi the"
    assert await _text(both, "Qwen/Qwen3-8B") == "hi the"
    assert openai.app[sim_openai.STATS_KEY].completed == 1


async def test_a_backend_down_takes_only_its_models_and_comes_back(
    both: Backends, runtimes: tuple[str, str, web.AppRunner], caplog: pytest.LogCaptureFixture
) -> None:
    _, openai_url, openai = runtimes
    await both.discover()
    port = sim_openai.bound_port(openai)
    await openai.cleanup()
    with caplog.at_level(logging.INFO, "agent.backends"):
        with pytest.raises(BackendError) as gone:
            await _text(both, "Qwen/Qwen3-8B")
        assert gone.value.code is ErrorCode.BACKEND_UNAVAILABLE
        models = {m["name"] for m in await both.discover()}
        assert "Qwen/Qwen3-8B" not in models and "qwen3:8b" in models
        # A request for its model now: it may be served elsewhere, so retryable.
        with pytest.raises(BackendError) as elsewhere:
            await _text(both, "Qwen/Qwen3-8B")
        assert elsewhere.value.code is ErrorCode.BACKEND_UNAVAILABLE and elsewhere.value.retryable
        back = await sim_openai.serve("127.0.0.1", port)
        try:
            assert "Qwen/Qwen3-8B" in {m["name"] for m in await both.discover()}
        finally:
            await back.cleanup()
    messages = [r.getMessage() for r in caplog.records if r.getMessage().startswith("backend ")]
    assert messages[0].startswith(f"backend openai {openai_url} is not answering (cannot reach")
    assert messages[1] == f"backend openai {openai_url} answers again (4 models)"


async def test_with_every_backend_down_the_machine_is_degraded() -> None:
    dead = Backends(
        [
            Named("ollama dead", OllamaBackend("http://127.0.0.1:9")),
            Named("openai dead", OpenAIBackend("http://127.0.0.1:9/v1")),
        ]
    )
    try:
        with pytest.raises(BackendError) as caught:
            await dead.discover()
    finally:
        await dead.aclose()
    assert str(caught.value).startswith("no backend answers (ollama dead: cannot reach Ollama")
    assert "; openai dead: cannot reach the runtime at http://127.0.0.1:9/v1" in str(caught.value)


async def test_a_model_nobody_serves_is_not_found(both: Backends) -> None:
    await both.discover()
    with pytest.raises(BackendError) as caught:
        await _text(both, "nope")
    assert caught.value.code is ErrorCode.MODEL_NOT_FOUND
    assert str(caught.value) == "no backend of this machine serves 'nope'"


async def test_a_runtime_that_hangs_does_not_hold_the_others_back(
    runtimes: tuple[str, str, web.AppRunner], monkeypatch: pytest.MonkeyPatch
) -> None:
    ollama_url, _, _ = runtimes

    async def never(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        raise AssertionError

    app = web.Application()
    app.router.add_get("/v1/models", never)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    monkeypatch.setattr(backends_module, "DISCOVERY_TIMEOUT", 0.3)
    hanging = Backends(
        [
            Named("openai hanging", OpenAIBackend(f"http://127.0.0.1:{runner.addresses[0][1]}/v1")),
            Named("ollama", OllamaBackend(ollama_url)),
        ]
    )
    try:
        async with asyncio.timeout(5):
            models = await hanging.discover()
    finally:
        await hanging.aclose()
        await runner.cleanup()
    assert "qwen3:8b" in {m["name"] for m in models}


def test_one_backend_is_not_routed() -> None:
    with pytest.raises(ValueError):
        Backends([Named("ollama", OllamaBackend())])
