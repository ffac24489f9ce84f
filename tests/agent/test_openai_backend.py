"""The OpenAI-compatible backend against the simulated runtime (agent/openai_backend.py):
discovery and what goes wrong in it, errors in and out of the stream, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web

from agent.backend import BackendError, Finish, Piece, Vectors
from agent.openai_backend import OpenAIBackend
from llmtunnel import sim_openai
from llmtunnel.sim_ollama import SimModel
from protocol import ErrorCode
from protocol.requests import from_wire

LLAMA = "meta-llama/Llama-3.2-3B-Instruct"


@contextlib.asynccontextmanager
async def _runtime(**settings: Any) -> AsyncIterator[tuple[str, OpenAIBackend, web.AppRunner]]:
    """The simulated runtime with ``settings``, and a backend on it (``api_key`` its own)."""
    key = settings.pop("backend_key", None)
    runner = await sim_openai.serve("127.0.0.1", 0, sim_openai.SimOpenAIConfig(**settings))
    url = f"http://127.0.0.1:{sim_openai.bound_port(runner)}/v1"
    backend = OpenAIBackend(url, api_key=key)
    try:
        yield url, backend, runner
    finally:
        await backend.aclose()
        await runner.cleanup()


def _chat(text: str, model: str = LLAMA) -> Any:
    return from_wire(
        {"op": "chat", "model": model, "messages": [{"role": "user", "content": text}]}
    )


async def _all(backend: OpenAIBackend, request: Any) -> list[Piece | Vectors | Finish]:
    return [item async for item in backend.stream(request)]


async def _stats(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        stats: dict[str, Any] = (await http.get(url.removesuffix("/v1") + "/_sim/stats")).json()
        return stats


async def test_llama_cpp_with_one_model_is_described_from_its_props() -> None:
    gemma = SimModel("gemma-3-4b-it-Q4_K_M.gguf", "gemma3", "4B", ("completion", "vision"), 131072)
    async with _runtime(flavour="llama.cpp", models=(gemma,), context_length=4096) as (
        _,
        backend,
        _runner,
    ):
        assert await backend.discover() == [
            {
                "name": "gemma-3-4b-it-Q4_K_M.gguf",
                "capabilities": ["completion", "tools", "vision"],
                "context_length": 4096,
            }
        ]


async def test_an_extra_the_runtime_does_not_have_is_asked_for_once() -> None:
    # llama-cpp-python's server says nothing of contexts, so LM Studio's list is looked for:
    # once, found missing (404), and not asked for again.
    async with _runtime(flavour="plain") as (url, backend, _runner):
        for _ in range(3):
            assert next(m["name"] for m in await backend.discover()) == "Qwen/Qwen3-8B"
        assert (await _stats(url))["not_found"] == 1


@pytest.mark.parametrize(
    ("settings", "wanted"),
    [
        ({"api_key": "k"}, "asks for an API key (HTTP 401); give it with --backend openai=URL"),
        ({"api_key": "k", "backend_key": "wrong"}, "refused the agent's API key (HTTP 401)"),
    ],
)
async def test_a_key_problem_says_what_to_do(settings: dict[str, Any], wanted: str) -> None:
    async with _runtime(**settings) as (_, backend, _runner):
        with pytest.raises(BackendError, match=wanted.replace("(", r"\(").replace(")", r"\)")):
            await backend.discover()


async def test_the_right_key_is_sent_with_every_request() -> None:
    async with _runtime(api_key="k", backend_key="k") as (_, backend, _runner):
        assert await backend.discover()
        items = await _all(backend, _chat("ok tokens=1"))
        assert items[0] == Piece("ok")


async def test_a_url_that_is_not_an_openai_runtime_says_so() -> None:
    async with _runtime() as (url, _, _runner):
        wrong = OpenAIBackend(url.removesuffix("/v1") + "/api/v1")
        with pytest.raises(BackendError, match=r"/models answered 404: is .* OpenAI base URL"):
            await wrong.discover()
        await wrong.aclose()

    async def not_json(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>")

    app = web.Application()
    app.router.add_get("/v1/models", not_json)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    html = OpenAIBackend(f"http://127.0.0.1:{runner.addresses[0][1]}/v1")
    try:
        with pytest.raises(BackendError, match="is not an OpenAI model list"):
            await html.discover()
    finally:
        await html.aclose()
        await runner.cleanup()


async def test_nothing_listening_is_unreachable_and_retryable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = OpenAIBackend(f"http://127.0.0.1:{port}/v1")
    try:
        for attempt in (backend.discover(), _all(backend, _chat("hi"))):
            with pytest.raises(BackendError) as caught:
                await attempt
            assert caught.value.code is ErrorCode.BACKEND_UNAVAILABLE and caught.value.retryable
            assert str(caught.value).startswith(
                f"cannot reach the runtime at http://127.0.0.1:{port}/v1"
            )
    finally:
        await backend.aclose()


@pytest.mark.parametrize("flavour", ["vllm", "llama.cpp"])
async def test_a_failure_after_the_start_ends_the_stream_with_the_runtimes_error(
    flavour: str,
) -> None:
    async with _runtime(flavour=flavour) as (_, backend, _runner):
        seen: list[Piece | Vectors | Finish] = []
        with pytest.raises(BackendError, match="the engine died mid-generation"):
            async for item in backend.stream(_chat("go tokens=10 fail-after=3")):
                seen.append(item)
    # Everything before the runtime's error reached the session (in the batches it came in).
    assert "".join(p.content for p in seen if isinstance(p, Piece)) == "go the tunnel"


async def test_a_stream_cut_without_a_word_is_an_error_not_a_short_reply() -> None:
    # llama-cpp-python answers 200 to a prompt over its context, then closes having sent
    # nothing (measured on 0.3.36): the client must hear of it.
    async with _runtime(flavour="plain", context_length=64) as (_, backend, _runner):
        with pytest.raises(BackendError) as caught:
            await _all(backend, _chat("word " * 100))
    assert caught.value.code is ErrorCode.BACKEND_ERROR
    assert "the runtime at" in str(caught.value)


async def test_closing_the_stream_stops_the_runtime_generating() -> None:
    async with _runtime(tokens_per_second=200) as (url, backend, _runner):
        stream = backend.stream(_chat("long tokens=100000"))
        async for _ in stream:
            break
        await stream.aclose()
        async with asyncio.timeout(5):
            while (stats := await _stats(url))["cancelled"] != 1:
                await asyncio.sleep(0.01)
        assert stats["active"] == 0


async def test_embeddings_in_input_order_and_their_usage() -> None:
    async with _runtime() as (_, backend, _runner):
        request = from_wire(
            {
                "op": "embed",
                "model": "nomic-ai/nomic-embed-text-v1.5",
                "input": ["a b", "c"],
                "dimensions": 8,
            }
        )
        vectors, finish = await _all(backend, request)
    assert isinstance(vectors, Vectors) and [len(v) for v in vectors.vectors] == [32, 32]
    assert finish == Finish("stop", 3, 0, {})


async def test_unsupported_ops_and_unknown_models() -> None:
    async with _runtime() as (_, backend, _runner):
        unknown = from_wire({"op": "transcribe", "model": LLAMA})
        with pytest.raises(BackendError) as caught:
            await _all(backend, unknown)
        assert caught.value.code is ErrorCode.UNSUPPORTED
        with pytest.raises(BackendError) as missing:
            await _all(backend, _chat("hi", model="nope"))
        assert missing.value.code is ErrorCode.MODEL_NOT_FOUND
        assert str(missing.value) == "The model `nope` does not exist."
