"""A prompt longer than the model's context is a clear 400 in every dialect, never Ollama's
silent cut (the simulated Ollama's context is 8,192 tokens, its real default behaviour included)."""

from __future__ import annotations

import inspect
from pathlib import Path

import anthropic
import openai
import pytest

from llmtunnel.demo import run_demo
from tests.e2e.stack import Stack, running_stack, user

pytestmark = pytest.mark.e2e

LONG = "word " * 9000


@pytest.mark.parametrize("stream", [False, True])
async def test_openai_chat_gets_context_length_exceeded(
    acme: tuple[Stack, str], stream: bool
) -> None:
    stack, key = acme
    with pytest.raises(openai.BadRequestError) as caught:
        await stack.openai(key).chat.completions.create(
            model="llama3.2:3b", messages=[user(LONG)], stream=stream
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "context_length_exceeded"
    assert "prompt is too long" in caught.value.body["message"]
    assert "8192 maximum" in caught.value.body["message"]


async def test_claude_code_sees_prompt_is_too_long(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    client = anthropic.AsyncAnthropic(
        base_url=stack.edge_url,
        api_key=key,
        max_retries=0,
        http_client=anthropic.DefaultAsyncHttpxClient(verify=stack.tls()),
    )
    with pytest.raises(anthropic.BadRequestError) as caught:
        async with client.messages.stream(
            model="qwen3:8b", max_tokens=64, messages=[{"role": "user", "content": LONG}]
        ) as stream:
            await stream.get_final_message()
    assert "prompt is too long" in str(caught.value)


async def test_legacy_completions_too(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    with pytest.raises(openai.BadRequestError) as caught:
        await stack.openai(key).completions.create(model="llama3.2:3b", prompt=LONG)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "context_length_exceeded"


async def test_a_prompt_that_fits_is_served_whole(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    prompt = "word " * 8000 + "tokens=3"
    reply = await stack.openai(key).chat.completions.create(
        model="llama3.2:3b", messages=[user(prompt)]
    )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 8005  # all of it: nothing was cut


async def test_claude_code_s_first_request_fits_the_demo_s_simulator(tmp_path: Path) -> None:
    """The demo runs the simulator as README's Claude Code section says to run Ollama (a 65,536
    context, which qwen3:8b caps at its own 40,960): Claude Code's first request, ~20k tokens
    with 25 tools, is served whole, tools included."""
    context = inspect.signature(run_demo).parameters["context_length"].default
    async with running_stack(tmp_path, context_length=context) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        client = anthropic.AsyncAnthropic(
            base_url=stack.edge_url,
            api_key=key,
            max_retries=0,
            http_client=anthropic.DefaultAsyncHttpxClient(verify=stack.tls()),
        )
        tools: list[anthropic.types.ToolParam] = [
            {"name": f"tool_{n}", "description": "a tool " * 40, "input_schema": {"type": "object"}}
            for n in range(25)
        ]
        reply = await client.messages.create(
            model="qwen3:8b",
            max_tokens=64,
            system="You are Claude Code. " + "rules " * 2000,
            tools=tools,
            messages=[{"role": "user", "content": "word " * 18000 + "tokens=4"}],
        )
    assert reply.stop_reason == "end_turn"
    assert reply.usage.input_tokens > 20000
