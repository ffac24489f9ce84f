"""A prompt longer than the model's context is a clear 400 in every dialect, never Ollama's
silent cut (the simulated Ollama's context is 8,192 tokens, its real default behaviour included)."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.e2e.stack import Stack, user

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
