"""The simulated Ollama behaves like the real one (docs/ARCHITECTURE.md "Ollama as the agent
sees it"), through the real client."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable

import httpx
import ollama
import pytest

from llmtunnel import sim_ollama


@pytest.fixture
async def sim() -> AsyncIterator[str]:
    runner = await sim_ollama.serve("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{sim_ollama.bound_port(runner)}"
    finally:
        await runner.cleanup()


async def test_listing_and_show_carry_capabilities(sim: str) -> None:
    client = ollama.AsyncClient(host=sim)
    names = [m.model for m in (await client.list()).models]
    assert "qwen3:8b" in names
    assert "nomic-embed-text:latest" in names
    shown = await client.show("qwen3:8b")
    assert list(shown.capabilities or []) == ["completion", "tools", "thinking"]
    assert (shown.modelinfo or {})["qwen3.context_length"] == 40960
    assert (await client.ps()).models[0].model == "qwen3:8b"
    async with httpx.AsyncClient(base_url=sim) as http:
        assert (await http.get("/")).text == "Ollama is running"
        assert (await http.get("/api/version")).json() == {"version": "0.13.5"}


async def test_chat_streams_ndjson_and_ends_with_metrics(sim: str) -> None:
    body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi there tokens=3"}]}
    async with httpx.AsyncClient(base_url=sim) as http:
        response = await http.post("/api/chat", json=body)
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["message"]["content"] for line in lines] == ["hi", " there", " the", ""]
    assert [line["done"] for line in lines] == [False, False, False, True]
    final = lines[-1]
    assert final["done_reason"] == "stop"
    assert final["eval_count"] == 3
    assert final["total_duration"] > 0
    assert all(value != 0 for value in final.values())  # zero values are omitted, as Ollama does


async def test_non_streaming_chat_is_one_object(sim: str) -> None:
    client = ollama.AsyncClient(host=sim)
    reply = await client.chat(
        model="tinyllama:1.1b", messages=[{"role": "user", "content": "one two tokens=4"}]
    )
    assert reply.message.content == "one two the tunnel"
    assert reply.done_reason == "stop"
    assert reply.prompt_eval_count is not None
    assert reply.prompt_eval_count > 0


async def test_num_predict_and_stop(sim: str) -> None:
    client = ollama.AsyncClient(host=sim)
    capped = await client.chat(
        model="llama3.2:3b",
        messages=[{"role": "user", "content": "a b c d e f"}],
        options={"num_predict": 2},
    )
    assert capped.eval_count == 2
    assert capped.done_reason == "length"
    stopped = await client.chat(
        model="llama3.2:3b",
        messages=[{"role": "user", "content": "a b STOP c d"}],
        options={"stop": ["STOP"]},
    )
    assert stopped.message.content == "a b"
    assert stopped.done_reason == "stop"


async def test_thinking_is_on_by_default_for_thinking_models(sim: str) -> None:
    client = ollama.AsyncClient(host=sim)
    on = await client.chat(model="qwen3:8b", messages=[{"role": "user", "content": "x tokens=2"}])
    off = await client.chat(
        model="qwen3:8b", messages=[{"role": "user", "content": "x tokens=2"}], think=False
    )
    assert on.message.thinking
    assert not off.message.thinking
    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat(
            model="tinyllama:1.1b", messages=[{"role": "user", "content": "x"}], think=True
        )
    assert caught.value.status_code == 400
    assert caught.value.error == '"tinyllama:1.1b" does not support thinking'


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"],
            },
        },
    }
    for name in ("get_weather", "get_time")
]


@pytest.mark.parametrize(("model", "in_final"), [("qwen3:8b", False), ("llama3.2:3b", True)])
async def test_tool_calls_in_ollamas_shape(sim: str, model: str, in_final: bool) -> None:
    body = {
        "model": model,
        "think": False if model == "qwen3:8b" else None,
        "messages": [{"role": "user", "content": "call get_weather and get_time"}],
        "tools": TOOLS,
    }
    async with httpx.AsyncClient(base_url=sim) as http:
        response = await http.post("/api/chat", json=body)
    lines = [json.loads(line) for line in response.text.splitlines()]
    with_calls = [i for i, line in enumerate(lines) if line["message"].get("tool_calls")]
    assert len(with_calls) == 1
    assert lines[with_calls[0]]["done"] is in_final
    calls = lines[with_calls[0]]["message"]["tool_calls"]
    assert [c["function"]["index"] for c in calls] == [0, 0]  # the quirk: index 0 on every call
    assert [c["function"]["name"] for c in calls] == ["get_weather", "get_time"]
    assert calls[0]["function"]["arguments"] == {"city": "example", "days": 1}
    assert all(c["id"].startswith("call_") for c in calls)


async def test_tools_on_a_model_without_them_is_refused(sim: str) -> None:
    client = ollama.AsyncClient(host=sim)
    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat(
            model="tinyllama:1.1b", messages=[{"role": "user", "content": "hi"}], tools=TOOLS
        )
    assert caught.value.status_code == 400
    assert "does not support tools" in caught.value.error


async def test_ollama_errors_and_statuses(sim: str) -> None:
    async with httpx.AsyncClient(base_url=sim) as http:
        unknown = await http.post("/api/chat", json={"model": "nope", "messages": []})
        missing = await http.post("/api/chat", json={"messages": []})
        malformed = await http.post("/api/chat", content=b"{not json")
        load = await http.post("/api/chat", json={"model": "qwen3:8b", "messages": []})
        embed_chat = await http.post(
            "/api/chat", json={"model": "nomic-embed-text", "messages": [{"role": "user"}]}
        )
    assert (unknown.status_code, unknown.json()) == (404, {"error": "model 'nope' not found"})
    assert (missing.status_code, missing.json()) == (400, {"error": "model is required"})
    assert malformed.status_code == 400
    assert set(malformed.json()) == {"error"}
    assert load.json()["done_reason"] == "load"
    assert embed_chat.status_code == 400
    assert "does not support chat" in embed_chat.json()["error"]


async def test_a_mid_stream_failure_is_an_error_line(sim: str) -> None:
    client = ollama.AsyncClient(host=sim)
    received = []
    with pytest.raises(ollama.ResponseError) as caught:
        async for chunk in await client.chat(
            model="llama3.2:3b",
            messages=[{"role": "user", "content": "go fail-after=2"}],
            stream=True,
        ):
            received.append(chunk.message.content)
    assert caught.value.status_code == -1
    assert received == ["go", " the"]
    with pytest.raises(ollama.ResponseError) as whole:
        await client.chat(
            model="llama3.2:3b", messages=[{"role": "user", "content": "fail-after=2"}]
        )
    assert whole.value.status_code == 500


async def test_generate_streams_response_and_context(sim: str) -> None:
    client = ollama.AsyncClient(host=sim)
    reply = await client.generate(model="tinyllama:1.1b", prompt="alpha beta tokens=2")
    assert reply.response == "alpha beta"
    assert reply.context


async def test_embeddings_are_normalised_and_validated(sim: str) -> None:
    client = ollama.AsyncClient(host=sim)
    result = await client.embed(model="nomic-embed-text", input=["a", "b"], dimensions=16)
    assert len(result.embeddings) == 2
    for vector in result.embeddings:
        assert len(vector) == 16
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-9)
    async with httpx.AsyncClient(base_url=sim) as http:
        bad = await http.post("/api/embed", json={"model": "nomic-embed-text", "input": [1]})
    assert (bad.status_code, bad.json()) == (400, {"error": "invalid input type"})


async def test_a_client_that_goes_away_cancels_generation() -> None:
    runner = await sim_ollama.serve("127.0.0.1", 0, sim_ollama.SimConfig(tokens_per_second=200))
    url = f"http://127.0.0.1:{sim_ollama.bound_port(runner)}"
    stats = runner.app[sim_ollama.STATS_KEY]
    try:
        body = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "tokens=5000"}]}
        async with (
            httpx.AsyncClient(base_url=url) as http,
            http.stream("POST", "/api/chat", json=body) as response,
        ):
            async for _line in response.aiter_lines():
                break
        async with asyncio.timeout(5):
            while stats.cancelled == 0:
                await asyncio.sleep(0.01)
        assert (stats.started, stats.completed, stats.cancelled, stats.active) == (1, 0, 1, 0)
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/_sim/stats")).json()["cancelled"] == 1
    finally:
        await runner.cleanup()


async def test_num_parallel_queues_and_max_queue_refuses() -> None:
    config = sim_ollama.SimConfig(tokens_per_second=100, num_parallel=1, max_queue=1)
    runner = await sim_ollama.serve("127.0.0.1", 0, config)
    url = f"http://127.0.0.1:{sim_ollama.bound_port(runner)}"
    stats = runner.app[sim_ollama.STATS_KEY]

    async def until(condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not condition():
                await asyncio.sleep(0.005)

    try:
        body = {
            "model": "llama3.2:3b",
            "stream": False,
            "messages": [{"role": "user", "content": "tokens=20"}],
        }
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            first = asyncio.create_task(http.post("/api/chat", json=body))
            await until(lambda: stats.active == 1)
            second = asyncio.create_task(http.post("/api/chat", json=body))
            await until(lambda: stats.queued == 1)
            third = await http.post("/api/chat", json=body)
            assert third.status_code == 503
            assert "maximum pending requests exceeded" in third.json()["error"]
            assert (await first).status_code == 200
            assert (await second).status_code == 200
    finally:
        await runner.cleanup()


LONG = "word " * 9000  # about 9,000 tokens: over the default 8,192-token context


async def test_a_prompt_over_the_context_is_cut_silently_by_default(sim: str) -> None:
    client = ollama.AsyncClient(host=sim)
    reply = await client.chat(
        model="llama3.2:3b", messages=[{"role": "user", "content": LONG + "tokens=3"}]
    )
    assert reply.done_reason == "stop"
    assert reply.prompt_eval_count == 8192 // 2  # the quirk: kept about half the context
    small = await client.generate(model="llama3.2:3b", prompt=LONG, options={"num_ctx": 2048})
    assert small.prompt_eval_count == 1024


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
async def test_truncate_false_refuses_with_llama_cpps_error_inside_ollamas(
    sim: str, path: str
) -> None:
    body: dict[str, object] = {"model": "llama3.2:3b", "truncate": False, "stream": False}
    if path == "/api/chat":
        body["messages"] = [{"role": "user", "content": LONG}]
    else:
        body["prompt"] = LONG
    async with httpx.AsyncClient(base_url=sim) as http:
        response = await http.post(path, json=body)
    assert response.status_code == 400
    inner = json.loads(response.json()["error"])["error"]
    assert inner["type"] == "exceed_context_size_error"
    assert inner["n_ctx"] == 8192
    assert inner["n_prompt_tokens"] > 8192
    assert "exceeds the available context size (8192 tokens)" in inner["message"]
    body["options"] = {"num_ctx": 131072}  # within llama3.2's own 131,072: it fits
    async with httpx.AsyncClient(base_url=sim) as http:
        assert (await http.post(path, json=body)).status_code == 200
