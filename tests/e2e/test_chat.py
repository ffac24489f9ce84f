"""Chat completions through the whole path with the OpenAI SDK, checked against Ollama direct."""

from __future__ import annotations

import json
from pathlib import Path

import ollama
import openai
import pydantic
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam

from protocol import TunnelLimits
from tests.e2e.stack import Stack, running_stack, user

pytestmark = pytest.mark.e2e


PROMPT = [user("Tell me about tunnels tokens=12")]


async def _direct(stack: Stack, model: str) -> ollama.ChatResponse:
    """The same request straight to the (simulated) Ollama: what the tunnel must reproduce."""
    client = ollama.AsyncClient(host=stack.ollama_url)
    return await client.chat(model=model, messages=[dict(m) for m in PROMPT], stream=False)


async def test_models_lists_what_the_machine_serves(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    models = await stack.openai(key).models.list()
    names = {m.id for m in models.data}
    assert {"qwen3:8b", "llama3.2:3b", "tinyllama:1.1b"} <= names
    assert all(m.owned_by == "acme" for m in models.data)


async def test_streaming_chat_matches_ollama(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    direct = await _direct(stack, "llama3.2:3b")
    stream = await stack.openai(key).chat.completions.create(
        model="llama3.2:3b",
        messages=PROMPT,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == direct.message.content
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == direct.eval_count == 12
    assert chunks[-1].usage.prompt_tokens == direct.prompt_eval_count


async def test_non_streaming_chat_has_content_and_usage(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    direct = await _direct(stack, "llama3.2:3b")
    reply = await stack.openai(key).chat.completions.create(
        model="llama3.2:3b",
        messages=PROMPT,
    )
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == direct.message.content
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 12


async def test_max_tokens_cuts_with_finish_reason_length(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    reply = await stack.openai(key).chat.completions.create(
        model="llama3.2:3b",
        messages=[user("go on tokens=50")],
        max_tokens=5,
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5


async def test_thinking_arrives_as_reasoning_content(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    direct = await _direct(stack, "qwen3:8b")
    assert direct.message.thinking
    reply = await stack.openai(key).chat.completions.create(
        model="qwen3:8b",
        messages=PROMPT,
    )
    message = reply.choices[0].message.model_dump()
    assert message["reasoning_content"] == direct.message.thinking
    assert message["content"] == direct.message.content


WEATHER_TOOLS: list[ChatCompletionFunctionToolParam] = [
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


@pytest.mark.parametrize("model", ["qwen3:8b", "llama3.2:3b"])  # mid-stream and final-chunk calls
async def test_streamed_tool_calls_get_distinct_indexes(
    acme: tuple[Stack, str], model: str
) -> None:
    stack, key = acme
    stream = await stack.openai(key).chat.completions.create(
        model=model,
        messages=[user("call get_weather and get_time for Paris")],
        tools=WEATHER_TOOLS,
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for call in choice.delta.tool_calls or []:
            assert call.function is not None
            entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += call.id or ""
            entry["name"] += call.function.name or ""
            entry["arguments"] += call.function.arguments or ""
    assert finish == "tool_calls"
    assert sorted(calls) == [0, 1]
    assert {c["name"] for c in calls.values()} == {"get_weather", "get_time"}
    assert all(c["id"].startswith("call_") for c in calls.values())
    assert len({c["id"] for c in calls.values()}) == 2
    assert all(json.loads(c["arguments"]) == {"city": "example"} for c in calls.values())


async def test_tool_result_goes_back_to_the_model(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    client = stack.openai(key)
    first = await client.chat.completions.create(
        model="qwen3:8b",
        messages=[user("call get_weather for Paris")],
        tools=WEATHER_TOOLS,
    )
    call = first.choices[0].message.tool_calls
    assert call is not None and first.choices[0].finish_reason == "tool_calls"
    second = await client.chat.completions.create(
        model="qwen3:8b",
        messages=[
            {"role": "user", "content": "call get_weather for Paris"},
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call[0].id, "content": "sunny, 21 degrees"},
        ],
        tools=WEATHER_TOOLS,
    )
    assert "sunny, 21 degrees" in (second.choices[0].message.content or "")


async def test_tools_on_a_model_without_tools_is_a_clear_400(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    with pytest.raises(openai.BadRequestError) as caught:
        await stack.openai(key).chat.completions.create(
            model="tinyllama:1.1b",
            messages=[user("call get_weather")],
            tools=WEATHER_TOOLS,
        )
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_does_not_support_tools"
    assert "qwen3:8b" in error["message"] and "llama3.2:3b" in error["message"]


async def test_many_concurrent_streams_are_all_complete(acme: tuple[Stack, str]) -> None:
    import asyncio

    stack, key = acme
    client = stack.openai(key)

    async def one(n: int) -> str:
        stream = await client.chat.completions.create(
            model="llama3.2:3b",
            messages=[user(f"request {n} tokens=40")],
            stream=True,
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    direct = ollama.AsyncClient(host=stack.ollama_url)
    texts = await asyncio.gather(*(one(n) for n in range(24)))
    for n, text in enumerate(texts):
        expected = await direct.chat(
            model="llama3.2:3b",
            messages=[user(f"request {n} tokens=40")],
        )
        assert text == expected.message.content


class Weather(pydantic.BaseModel):
    city: str


@pytest.mark.parametrize("model", ["qwen3:8b", "llama3.2:3b"])
async def test_the_sdks_stream_helper_parses_tool_calls(
    acme: tuple[Stack, str], model: str
) -> None:
    stack, key = acme
    async with stack.openai(key).chat.completions.stream(
        model=model,
        messages=[user("Call Weather for Paris")],
        tools=[openai.pydantic_function_tool(Weather)],
    ) as stream:
        done = [
            event async for event in stream if event.type == "tool_calls.function.arguments.done"
        ]
        final = await stream.get_final_completion()
    assert [event.name for event in done] == ["Weather"]
    assert isinstance(done[0].parsed_arguments, Weather)
    call = final.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert final.choices[0].finish_reason == "tool_calls"
    assert call.id.startswith("call_")
    assert isinstance(call.function.parsed_arguments, Weather)


@pytest.mark.parametrize(("parameter", "fits"), [(1500, True), (3000, False)])
async def test_a_tool_call_too_big_to_send_whole_ends_its_stream_with_a_502(
    tmp_path: Path, parameter: int, fits: bool
) -> None:
    # PROTOCOL.md §8: a tool call is never split, and credit comes back in half windows, so the
    # agent sends one only if it costs at most half the stream window (2 KiB here); a bigger one
    # ends the stream with backend_error instead of waiting for credit that may never come.
    name = "p" * parameter  # the simulated model fills every required parameter with "example"
    tool: ChatCompletionFunctionToolParam = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {}, "required": [name]},
        },
    }
    async with running_stack(tmp_path, limits=TunnelLimits(stream_window=4096)) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        request = stack.openai(key).chat.completions.create(
            model="llama3.2:3b", messages=[user("call get_weather")], tools=[tool]
        )
        if not fits:
            with pytest.raises(openai.APIStatusError) as caught:
                await request
            assert caught.value.status_code == 502
            assert "tool call larger than the tunnel carries whole (2048 bytes)" in str(
                caught.value
            )
            return
        reply = await request
    (call,) = reply.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert call.function.arguments == json.dumps({name: "example"}, separators=(",", ":"))
