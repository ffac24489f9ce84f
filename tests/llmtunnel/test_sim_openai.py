"""The simulated OpenAI-compatible runtime answers as the real ones do (llmtunnel/sim_openai's
flavours), through the OpenAI SDK and raw HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from llmtunnel import sim_openai

LLAMA = "meta-llama/Llama-3.2-3B-Instruct"


@pytest.fixture
async def serve() -> AsyncIterator[Any]:
    runners = []

    async def start(**settings: Any) -> str:
        runner = await sim_openai.serve("127.0.0.1", 0, sim_openai.SimOpenAIConfig(**settings))
        runners.append(runner)
        return f"http://127.0.0.1:{sim_openai.bound_port(runner)}"

    try:
        yield start
    finally:
        for runner in runners:
            await runner.cleanup()


async def _events(root: str, body: dict[str, Any]) -> list[str]:
    async with httpx.AsyncClient(base_url=root) as http:
        reply = await http.post("/v1/chat/completions", json={"stream": True, **body})
    assert reply.headers["content-type"] == "text/event-stream"
    return [line for line in reply.text.split("\n\n") if line]


def _data(events: list[str]) -> list[dict[str, Any]]:
    return [json.loads(e.removeprefix("data: ")) for e in events if e != "data: [DONE]"]


async def test_the_sdk_reads_every_flavour(serve: Any) -> None:
    for flavour in sim_openai.FLAVOURS:
        client = openai.AsyncOpenAI(base_url=await serve(flavour=flavour) + "/v1", api_key="x")
        reply = await client.chat.completions.create(
            model=LLAMA, messages=[{"role": "user", "content": "hi there tokens=3"}]
        )
        assert reply.choices[0].message.content == "hi there the", flavour
        assert reply.usage is not None and reply.usage.completion_tokens == 3


async def test_vllm_sends_usage_last_with_no_choices_only_when_asked(serve: Any) -> None:
    root = await serve(flavour="vllm")
    body = {"model": LLAMA, "messages": [{"role": "user", "content": "a tokens=2"}]}
    asked = await _events(root, {**body, "stream_options": {"include_usage": True}})
    assert asked[-1] == "data: [DONE]"
    *chunks, usage = _data(asked)
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 2
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-1]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all("usage" not in c for c in _data(await _events(root, body)))


async def test_llama_cpp_puts_usage_and_timings_on_the_finish_chunk(serve: Any) -> None:
    root = await serve(flavour="llama.cpp")
    events = await _events(root, {"model": LLAMA, "messages": [{"role": "user", "content": "b"}]})
    chunks = _data(events)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert {"usage", "timings"} <= set(chunks[-1])
    assert chunks[-1]["timings"]["predicted_ms"] > 0


async def test_tool_calls_come_in_fragments_and_finish_on_a_chunk_of_their_own(
    serve: Any,
) -> None:
    root = await serve()
    parameters = {"type": "object", "required": ["city"]}
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": parameters}}]
    chunks = _data(
        await _events(
            root,
            {
                "model": "Qwen/Qwen3-8B",
                "messages": [{"role": "user", "content": "get_weather"}],
                "tools": tools,
            },
        )
    )
    deltas = [c["choices"][0]["delta"] for c in chunks]
    calls = [d["tool_calls"][0] for d in deltas if d.get("tool_calls")]
    assert calls[0]["id"].startswith("chatcmpl-tool-")
    assert calls[0]["function"] == {"name": "get_weather", "arguments": ""}
    fragments = [c["function"]["arguments"] for c in calls[1:]]
    assert all(len(f) <= 3 for f in fragments) and len(fragments) > 3
    assert json.loads("".join(fragments)) == {"city": "example"}
    assert chunks[-1]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


async def test_each_flavours_model_list_and_extras(serve: Any) -> None:
    async with httpx.AsyncClient() as http:
        vllm = (await http.get(await serve() + "/v1/models")).json()
        assert vllm["data"][0]["max_model_len"] == 8192
        llama = await serve(flavour="llama.cpp")
        listed = (await http.get(llama + "/v1/models")).json()
        assert listed["data"][0]["meta"] == {"n_ctx_train": 40960}
        assert listed["models"][2]["capabilities"] == ["completion", "multimodal"]
        assert (await http.get(llama + "/props")).json()["default_generation_settings"]["n_ctx"]
        studio = await serve(flavour="lm-studio")
        v0 = (await http.get(studio + "/api/v0/models")).json()["data"]
        assert [m["type"] for m in v0] == ["llm", "llm", "vlm", "embeddings"]
        assert (await http.get(studio + "/props")).status_code == 404


async def test_errors_have_the_runtimes_shapes(serve: Any) -> None:
    async with httpx.AsyncClient() as http:
        keyed = await serve(api_key="k")
        assert (await http.get(keyed + "/v1/models")).json() == {"error": "Unauthorized"}
        missing = await http.post(
            await serve() + "/v1/chat/completions", json={"model": "x", "messages": []}
        )
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "The model `x` does not exist."
        no_embeddings = await serve(flavour="llama.cpp", embeddings=False)
        body = {"model": "m", "input": "x"}
        refused = await http.post(no_embeddings + "/v1/embeddings", json=body)
        assert refused.status_code == 501
        assert refused.json()["error"]["type"] == "not_supported_error"
