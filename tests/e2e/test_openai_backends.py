"""Every dialect through an agent whose runtime speaks OpenAI (the simulated vLLM, llama.cpp,
LM Studio and llama-cpp-python), with the real SDKs; and an agent with several runtimes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam

from agent.backend_config import build, parse_backend
from agent.backends import Named
from llmtunnel import sim_openai
from tests.e2e.stack import Stack, running_stack, user

pytestmark = pytest.mark.e2e

QWEN = "Qwen/Qwen3-8B"
LLAMA = "meta-llama/Llama-3.2-3B-Instruct"
EMBED = "nomic-ai/nomic-embed-text-v1.5"
TOOLS: list[ChatCompletionFunctionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"look up {name}",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    for name in ("get_weather", "get_time")
]


def _backends(*specs: str) -> list[Named]:
    return build([parse_backend(spec) for spec in specs], {}, 16)


async def _acme(stack: Stack, *specs: str) -> str:
    await stack.tenant("acme")
    key = await stack.key("acme")
    await stack.agent("acme", backends=_backends(*(specs or (f"openai={stack.openai_url}",))))
    return key


@pytest.fixture(params=sim_openai.FLAVOURS)
async def flavoured(
    tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Stack, str]]:
    """An agent on each flavour of the simulated runtime; the stack and an API key."""
    config = sim_openai.SimOpenAIConfig(flavour=request.param)
    async with running_stack(tmp_path, openai=config) as stack:
        yield stack, await _acme(stack)


@pytest.fixture
async def vllm(tmp_path: Path) -> AsyncIterator[tuple[Stack, str]]:
    async with running_stack(tmp_path, openai=sim_openai.SimOpenAIConfig()) as stack:
        yield stack, await _acme(stack)


def _direct(stack: Stack) -> openai.AsyncOpenAI:
    """The simulated runtime itself, with no tunnel: what the tunnel must reproduce."""
    return openai.AsyncOpenAI(base_url=stack.openai_url, api_key="none", max_retries=0)


async def test_the_runtimes_models_are_listed_with_what_they_can_do(
    flavoured: tuple[Stack, str],
) -> None:
    stack, key = flavoured
    listed = {m.id for m in (await stack.openai(key).models.list()).data}
    assert listed == {m.name for m in sim_openai.DEFAULT_MODELS}
    # The capabilities the agent gave them (a name that says "embed" embeds, and only that)
    # are what the edge checks requests against.
    with pytest.raises(openai.BadRequestError) as refused:
        await stack.openai(key).embeddings.create(model=QWEN, input="x")
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "model_does_not_support_embeddings"
    with pytest.raises(openai.BadRequestError, match="does not support tools"):
        await stack.openai(key).chat.completions.create(
            model=EMBED, messages=[user("x")], tools=TOOLS
        )


async def test_streamed_chat_is_the_runtimes_text_with_its_usage(
    flavoured: tuple[Stack, str],
) -> None:
    stack, key = flavoured
    direct = await _direct(stack).chat.completions.create(
        model=LLAMA, messages=[user("tunnels carry tokens tokens=9")]
    )
    stream = await stack.openai(key).chat.completions.create(
        model=LLAMA,
        messages=[user("tunnels carry tokens tokens=9")],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == direct.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None and direct.usage is not None
    if stack.openai_sim is not None and _flavour(stack) == "plain":
        # llama-cpp-python's server counts nothing in a stream: the edge shows (and charges)
        # an upper bound, one token per byte streamed (PROTOCOL.md §7).
        assert usage.completion_tokens == len(text.encode())
        assert usage.prompt_tokens >= len(b"tunnels carry tokens tokens=9")
    else:
        assert (usage.prompt_tokens, usage.completion_tokens) == (
            direct.usage.prompt_tokens,
            direct.usage.completion_tokens,
        )


def _flavour(stack: Stack) -> str:
    assert stack.openai_sim is not None
    return stack.openai_sim.app[sim_openai.CONFIG_KEY].flavour


async def test_several_tool_calls_streamed_in_fragments_come_out_whole(
    flavoured: tuple[Stack, str],
) -> None:
    stack, key = flavoured
    async with stack.openai(key).chat.completions.stream(
        model=QWEN, messages=[user("call get_weather and get_time for Paris")], tools=TOOLS
    ) as stream:
        final = await stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls if c.type == "function"] == ["get_weather", "get_time"]
    assert all(
        json.loads(c.function.arguments) == {"city": "example"}
        for c in calls
        if c.type == "function"
    )
    assert len({c.id for c in calls}) == 2
    # The answer goes back, matched by its call id, and the model speaks of it.
    assert calls[0].type == "function"
    second = await stack.openai(key).chat.completions.create(
        model=QWEN,
        messages=[
            user("call get_weather and get_time for Paris"),
            choice.message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
            {"role": "tool", "tool_call_id": calls[1].id, "content": "noon"},
        ],
        tools=TOOLS,
    )
    assert "noon" in (second.choices[0].message.content or "")
    sent = (await stack.openai_stats())["bodies"][-1]
    assert [m.get("tool_call_id") for m in sent["messages"][2:]] == [c.id for c in calls]


async def test_thinking_comes_back_as_reasoning_and_can_be_turned_off(
    vllm: tuple[Stack, str],
) -> None:
    stack, key = vllm
    client = stack.openai(key)
    thought = await client.chat.completions.create(model=QWEN, messages=[user("hi tokens=3")])
    message = thought.choices[0].message.model_dump()
    assert message["reasoning_content"] == "Let me think about this."
    quiet = await client.chat.completions.create(
        model=QWEN, messages=[user("hi tokens=3")], reasoning_effort="none"
    )
    assert "reasoning_content" not in quiet.choices[0].message.model_dump(exclude_none=True)
    sent = (await stack.openai_stats())["bodies"][-1]
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}


async def test_options_reach_the_runtime_as_set_and_none_is_forced(
    vllm: tuple[Stack, str],
) -> None:
    stack, key = vllm
    await stack.openai(key).chat.completions.create(
        model=LLAMA,
        messages=[user("hi tokens=3")],
        temperature=0.3,
        seed=7,
        stop=["never"],
        response_format={"type": "json_object"},
    )
    sent = (await stack.openai_stats())["bodies"][-1]
    assert sent == {
        "model": LLAMA,
        "messages": [{"role": "user", "content": "hi tokens=3"}],
        "temperature": 0.3,
        "seed": 7,
        "stop": ["never"],
        "response_format": {"type": "json_object"},
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_responses_and_anthropic_apis_run_on_it(vllm: tuple[Stack, str]) -> None:
    stack, key = vllm
    response = await stack.openai(key).responses.create(model=LLAMA, input="hello tokens=4")
    assert response.output_text == "hello the tunnel carries"
    assert response.usage is not None and response.usage.output_tokens == 4
    called = await stack.openai(key).responses.create(
        model=QWEN,
        input="call get_weather for Paris",
        tools=[{"type": "function", **t["function"], "strict": False} for t in TOOLS],  # type: ignore[typeddict-item]
    )
    (call,) = [item for item in called.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "example"}
    claude = anthropic.AsyncAnthropic(
        base_url=stack.edge_url,
        api_key=key,
        http_client=anthropic.DefaultAsyncHttpxClient(verify=stack.tls()),
        max_retries=0,
    )
    async with claude.messages.stream(
        model=QWEN,
        max_tokens=200,
        messages=[{"role": "user", "content": "call get_time for Paris"}],
        tools=[
            {"name": t["function"]["name"], "input_schema": t["function"]["parameters"]}
            for t in TOOLS
        ],
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert [b.input for b in final.content if b.type == "tool_use"] == [{"city": "example"}]


async def test_legacy_completions_and_embeddings(flavoured: tuple[Stack, str]) -> None:
    stack, key = flavoured
    client = stack.openai(key)
    completion = await client.completions.create(model=LLAMA, prompt="once upon", max_tokens=3)
    assert completion.choices[0].text == "once upon the"
    assert completion.choices[0].finish_reason == "length"
    direct = await _direct(stack).embeddings.create(model=EMBED, input=["first", "second"])
    made = await client.embeddings.create(model=EMBED, input=["first", "second"])
    assert [pytest.approx(d.embedding, abs=1e-6) for d in direct.data] == [
        d.embedding for d in made.data
    ]
    assert made.usage.prompt_tokens == direct.usage.prompt_tokens == 2


@pytest.mark.parametrize("flavour", ["vllm", "llama.cpp"])
async def test_a_runtime_without_embeddings_is_a_501(tmp_path: Path, flavour: str) -> None:
    config = sim_openai.SimOpenAIConfig(flavour=flavour, embeddings=False)  # type: ignore[arg-type]
    async with running_stack(tmp_path, openai=config) as stack:
        key = await _acme(stack)
        with pytest.raises(openai.APIStatusError) as refused:
            await stack.openai(key).embeddings.create(model=EMBED, input="x")
    assert refused.value.status_code == 501
    assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "unsupported"


async def test_the_runtimes_refusal_keeps_its_status_and_message(vllm: tuple[Stack, str]) -> None:
    stack, key = vllm
    # The simulated gemma has no tool parser: vLLM says so, and so does the client's error.
    with pytest.raises(openai.BadRequestError, match="enable-auto-tool-choice"):
        await stack.openai(key).chat.completions.create(
            model="google/gemma-3-4b-it", messages=[user("call get_weather")], tools=TOOLS
        )


@pytest.mark.parametrize("flavour", ["vllm", "llama.cpp", "lm-studio"])
async def test_a_prompt_over_the_context_is_context_length_exceeded(
    tmp_path: Path, flavour: str
) -> None:
    config = sim_openai.SimOpenAIConfig(flavour=flavour, context_length=256)  # type: ignore[arg-type]
    async with running_stack(tmp_path, openai=config) as stack:
        key = await _acme(stack)
        with pytest.raises(openai.BadRequestError) as refused:
            await stack.openai(key).chat.completions.create(
                model=LLAMA, messages=[user("word " * 400)]
            )
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "context_length_exceeded"
    assert body["message"].startswith("prompt is too long: 404 tokens ")
    assert "256 maximum" in body["message"]


async def test_a_max_tokens_that_does_not_fit_is_asked_again_for_what_fits(
    tmp_path: Path,
) -> None:
    # vLLM refuses prompt + max_tokens over its context; Ollama and llama.cpp stop at the
    # context. max_tokens is a cap: the agent asks again with what fits.
    config = sim_openai.SimOpenAIConfig(context_length=256)
    async with running_stack(tmp_path, openai=config) as stack:
        key = await _acme(stack)
        reply = await stack.openai(key).chat.completions.create(
            model=LLAMA, messages=[user("word " * 100 + "tokens=500")], max_tokens=1000
        )
        first, second = (await stack.openai_stats())["bodies"][-2:]
    assert reply.choices[0].finish_reason == "length"
    assert first["max_tokens"] == 1000 and second["max_tokens"] == 256 - 105
    assert reply.usage is not None and reply.usage.completion_tokens == 256 - 105


async def test_a_strict_runtime_is_asked_again_without_stream_options(tmp_path: Path) -> None:
    config = sim_openai.SimOpenAIConfig(refuses_stream_options=True)
    async with running_stack(tmp_path, openai=config) as stack:
        key = await _acme(stack)
        client = stack.openai(key)
        for _ in range(2):
            reply = await client.chat.completions.create(model=LLAMA, messages=[user("a tokens=2")])
            assert reply.choices[0].message.content == "a the"
        bodies = (await stack.openai_stats())["bodies"]
    assert ["stream_options" in body for body in bodies[-3:]] == [True, False, False]
    assert reply.usage is not None and reply.usage.completion_tokens == len(b"a the")


async def test_usage_the_runtime_does_not_report_is_charged_as_an_upper_bound(
    tmp_path: Path,
) -> None:
    config = sim_openai.SimOpenAIConfig(flavour="plain")
    async with running_stack(tmp_path, openai=config) as stack:
        key = await _acme(stack)
        reply = await stack.openai(key).chat.completions.create(
            model=LLAMA, messages=[user("tally tokens=6")]
        )
        assert reply.usage is not None
        text = reply.choices[0].message.content or ""
        assert reply.usage.completion_tokens == len(text.encode()) > 6
        await asyncio.sleep(1.2)  # the recorder writes once a second
        async with stack.admin() as admin:
            (row,) = (await admin.get("/tenants/acme/usage")).json()["usage"]
            events = (await admin.get("/tenants/acme/audit")).json()["events"]
    assert row["completion_tokens"] == reply.usage.completion_tokens
    assert row["prompt_tokens"] == reply.usage.prompt_tokens
    (request,) = [e for e in events if e["kind"] == "request"]
    assert request["completion_tokens"] is None  # not counted by the runtime: not exact


async def test_a_client_that_leaves_stops_the_generation(tmp_path: Path) -> None:
    config = sim_openai.SimOpenAIConfig(tokens_per_second=100)
    async with running_stack(tmp_path, openai=config) as stack:
        key = await _acme(stack)
        stream = await stack.openai(key).chat.completions.create(
            model=LLAMA, messages=[user("long tokens=100000")], stream=True
        )
        seen = 0
        async for _ in stream:
            seen += 1
            if seen == 5:
                break
        await stream.close()
        async with asyncio.timeout(5):
            while (stats := await stack.openai_stats())["cancelled"] != 1:
                await asyncio.sleep(0.02)
    assert stats["active"] == 0 and stats["completed"] == 0


async def test_an_agent_with_ollama_and_an_openai_runtime(tmp_path: Path) -> None:
    async with running_stack(tmp_path, openai=sim_openai.SimOpenAIConfig()) as stack:
        key = await _acme(stack, f"ollama={stack.ollama_url}", f"openai={stack.openai_url}")
        client = stack.openai(key)
        listed = {m.id for m in (await client.models.list()).data}
        assert {"qwen3:8b", "nomic-embed-text:latest", QWEN, EMBED} <= listed
        for model in ("qwen3:8b", LLAMA):  # each to the runtime that serves it
            reply = await client.chat.completions.create(
                model=model, messages=[user("hi tokens=2")], reasoning_effort="none"
            )
            assert reply.choices[0].message.content == "hi the"
        assert (await stack.openai_stats())["completed"] == 1
        # The OpenAI runtime goes away: its models leave, Ollama's stay, the machine is fine.
        assert stack.openai_sim is not None
        await stack.openai_sim.cleanup()
        with pytest.raises(openai.APIStatusError):
            await client.chat.completions.create(model=LLAMA, messages=[user("hi")])
        async with asyncio.timeout(10):
            while QWEN in {m.id for m in (await client.models.list()).data}:
                await asyncio.sleep(0.05)
        reply = await client.chat.completions.create(
            model="llama3.2:3b", messages=[user("still tokens=2")]
        )
        assert reply.choices[0].message.content == "still the"
        async with stack.admin() as admin:
            (machine,) = (await admin.get("/tenants/acme/machines")).json()["machines"]
        assert machine["online"] and not machine.get("degraded")


async def test_a_runtime_that_wants_a_key_gets_it_from_the_key_file(tmp_path: Path) -> None:
    config = sim_openai.SimOpenAIConfig(api_key="sk-runtime-123")
    key_file = tmp_path / "vllm.key"
    key_file.write_text("sk-runtime-123\n")
    async with running_stack(tmp_path, openai=config) as stack:
        key = await _acme(stack, f"openai={stack.openai_url},key-file={key_file}")
        reply = await stack.openai(key).chat.completions.create(
            model=LLAMA, messages=[user("ok tokens=1")]
        )
        assert reply.choices[0].message.content == "ok"
        # Without it the runtime says 401, which the agent reports as its health.
        await stack.tenant("other")
        await stack.agent("other", backends=_backends(f"openai={stack.openai_url}"), wait=False)
        async with stack.admin() as admin, asyncio.timeout(10):
            while True:
                machines = (await admin.get("/tenants/other/machines")).json()["machines"]
                if machines and machines[0].get("degraded"):
                    break
                await asyncio.sleep(0.05)
    assert "asks for an API key" in json.dumps(machines[0])


async def test_the_sim_answers_unknown_routes_as_fastapi_does(vllm: tuple[Stack, str]) -> None:
    stack, _ = vllm
    async with httpx.AsyncClient() as http:
        missing = await http.get(stack.openai_url + "/nothing")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not Found"})
