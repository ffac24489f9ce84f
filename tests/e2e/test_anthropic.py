"""The Anthropic Messages API through the whole path with the real ``anthropic`` SDK, checked
against Ollama direct (the simulator behind the agent)."""

from __future__ import annotations

import json

import anthropic
import ollama
import pytest
from anthropic.types import MessageParam, ToolParam

from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

PROMPT = "Tell me about tunnels tokens=12"


def _client(
    stack: Stack, key: str | None, auth_token: str | None = None
) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=stack.edge_url,
        api_key=key,
        auth_token=auth_token,
        http_client=anthropic.DefaultAsyncHttpxClient(verify=stack.tls()),
        max_retries=0,
        timeout=30,
    )


def _user(text: str) -> list[MessageParam]:
    return [{"role": "user", "content": text}]


async def _direct(stack: Stack, model: str, text: str = PROMPT) -> ollama.ChatResponse:
    """The same request straight to the (simulated) Ollama: what the tunnel must reproduce."""
    client = ollama.AsyncClient(host=stack.ollama_url)
    return await client.chat(
        model=model, messages=[{"role": "user", "content": text}], stream=False
    )


TOOLS: list[ToolParam] = [
    {
        "name": name,
        "description": f"look up {name}",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
    for name in ("get_weather", "get_time")
]


async def test_non_streaming_text_matches_ollama(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    direct = await _direct(stack, "llama3.2:3b")
    message = await _client(stack, key).messages.create(
        model="llama3.2:3b", max_tokens=100, messages=_user(PROMPT)
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == "llama3.2:3b"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].type == "text"
    assert message.content[0].text == direct.message.content
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens == direct.eval_count == 12
    assert message.usage.input_tokens == direct.prompt_eval_count


async def test_stream_text_and_final_usage(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    direct = await _direct(stack, "llama3.2:3b")
    async with _client(stack, key).messages.stream(
        model="llama3.2:3b", max_tokens=100, messages=_user(PROMPT)
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == direct.message.content
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 12
    # message_start carries an estimate; message_delta replaces it with Ollama's count.
    assert final.usage.input_tokens == direct.prompt_eval_count


async def test_raw_stream_event_order(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    stream = await _client(stack, key).messages.create(
        model="qwen3:8b",
        max_tokens=100,
        messages=_user("think first tokens=4"),
        thinking={"type": "enabled", "budget_tokens": 1024},
        stream=True,
    )
    types = [event.type async for event in stream]
    assert types[0] == "message_start"
    assert types[-2:] == ["message_delta", "message_stop"]
    body = types[1:-2]
    # thinking block then text block, each opened, filled and closed in turn
    assert body[0] == "content_block_start" and body[-1] == "content_block_stop"
    assert body.count("content_block_start") == body.count("content_block_stop") == 2


async def test_thinking_blocks_when_thinking_is_enabled(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    direct = await _direct(stack, "qwen3:8b")
    assert direct.message.thinking
    client = _client(stack, key)
    async with client.messages.stream(
        model="qwen3:8b",
        max_tokens=200,
        messages=_user(PROMPT),
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        final = await stream.get_final_message()
    assert [block.type for block in final.content] == ["thinking", "text"]
    thinking, text = final.content
    assert thinking.type == "thinking" and text.type == "text"
    assert thinking.thinking == direct.message.thinking
    assert thinking.signature  # clients must echo one back
    assert text.text == direct.message.content
    whole = await client.messages.create(
        model="qwen3:8b",
        max_tokens=200,
        messages=_user(PROMPT),
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert [block.type for block in whole.content] == ["thinking", "text"]
    disabled = await client.messages.create(
        model="qwen3:8b",
        max_tokens=200,
        messages=_user(PROMPT),
        thinking={"type": "disabled"},
    )
    assert [block.type for block in disabled.content] == ["text"]


@pytest.mark.parametrize("model", ["qwen3:8b", "llama3.2:3b"])  # mid-stream and final-chunk calls
async def test_streamed_tool_use_blocks_parse(acme: tuple[Stack, str], model: str) -> None:
    stack, key = acme
    async with _client(stack, key).messages.stream(
        model=model,
        max_tokens=200,
        messages=_user("call get_weather and get_time for Paris"),
        tools=TOOLS,
    ) as stream:
        partial = [event.partial_json async for event in stream if event.type == "input_json"]
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    calls = [block for block in final.content if block.type == "tool_use"]
    assert {call.name for call in calls} == {"get_weather", "get_time"}
    assert all(call.input == {"city": "example"} for call in calls)
    assert all(call.id.startswith("toolu_") for call in calls)
    assert len({call.id for call in calls}) == 2
    assert [json.loads(piece) for piece in partial] == [{"city": "example"}] * 2


async def test_tool_result_goes_back_to_the_model(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    client = _client(stack, key)
    first = await client.messages.create(
        model="qwen3:8b",
        max_tokens=200,
        messages=_user("call get_weather for Paris"),
        tools=TOOLS,
    )
    assert first.stop_reason == "tool_use"
    call = next(block for block in first.content if block.type == "tool_use")
    assert call.name == "get_weather"
    second = await client.messages.create(
        model="qwen3:8b",
        max_tokens=200,
        messages=[
            {"role": "user", "content": "call get_weather for Paris"},
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 degrees"}
                ],
            },
        ],
        tools=TOOLS,
    )
    text = "".join(block.text for block in second.content if block.type == "text")
    assert "sunny, 21 degrees" in text
    assert second.stop_reason == "end_turn"


async def test_max_tokens_stops_with_max_tokens(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    message = await _client(stack, key).messages.create(
        model="llama3.2:3b", max_tokens=5, messages=_user("go on tokens=50")
    )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5


async def test_bearer_token_works_too(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    # ANTHROPIC_AUTH_TOKEN: the SDK sends `Authorization: Bearer` instead of x-api-key.
    message = await _client(stack, None, auth_token=key).messages.create(
        model="llama3.2:3b", max_tokens=20, messages=_user("hello tokens=3")
    )
    assert message.usage.output_tokens == 3


async def test_bad_key_is_an_authentication_error(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    with pytest.raises(anthropic.AuthenticationError) as caught:
        await _client(stack, "sk-lt-wrong").messages.create(
            model="llama3.2:3b", max_tokens=20, messages=_user("hi")
        )
    assert caught.value.status_code == 401
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "authentication_error"


async def test_unknown_model_is_not_found(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    with pytest.raises(anthropic.NotFoundError) as caught:
        await _client(stack, key).messages.create(
            model="nope:1b", max_tokens=20, messages=_user("hi")
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "not_found_error"
    assert "nope:1b" in caught.value.body["error"]["message"]


async def test_missing_max_tokens_is_a_bad_request(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    # The SDK insists on max_tokens, so the body goes out through its raw post.
    with pytest.raises(anthropic.BadRequestError) as caught:
        await _client(stack, key).post(
            "/v1/messages",
            body={"model": "llama3.2:3b", "messages": _user("hi")},
            cast_to=anthropic.types.Message,
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in caught.value.body["error"]["message"]


async def test_tools_to_a_model_without_tools_is_a_bad_request(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    with pytest.raises(anthropic.BadRequestError) as caught:
        await _client(stack, key).messages.create(
            model="tinyllama:1.1b",
            max_tokens=20,
            messages=_user("call get_weather"),
            tools=TOOLS,
        )
    assert isinstance(caught.value.body, dict)
    error = caught.value.body["error"]
    assert error["code"] == "model_does_not_support_tools"
    assert "qwen3:8b" in error["message"] and "llama3.2:3b" in error["message"]


async def test_a_mid_stream_failure_raises_in_the_sdk(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    received: list[str] = []
    with pytest.raises(anthropic.APIError) as caught:
        async with _client(stack, key).messages.stream(
            model="llama3.2:3b", max_tokens=100, messages=_user("go fail-after=3 tokens=20")
        ) as stream:
            async for piece in stream.text_stream:
                received.append(piece)
    assert received  # the stream had started: this is the error event, not an HTTP error
    assert "llama runner process has terminated" in caught.value.message


async def test_a_failure_without_stream_is_an_http_error(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    with pytest.raises(anthropic.InternalServerError) as caught:
        await _client(stack, key).messages.create(
            model="llama3.2:3b", max_tokens=100, messages=_user("go fail-after=3 tokens=20")
        )
    assert caught.value.status_code == 502
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "api_error"


async def test_count_tokens_estimates_and_knows_the_models(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    client = _client(stack, key)
    short = await client.messages.count_tokens(model="qwen3:8b", messages=_user("hi"))
    longer = await client.messages.count_tokens(
        model="qwen3:8b", messages=_user("hi " * 200), tools=TOOLS, system="be brief"
    )
    assert short.input_tokens > 0
    assert longer.input_tokens > short.input_tokens + 100
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.count_tokens(model="nope:1b", messages=_user("hi"))
    with pytest.raises(anthropic.AuthenticationError):
        await _client(stack, "sk-lt-wrong").messages.count_tokens(
            model="qwen3:8b", messages=_user("hi")
        )


async def test_http_errors_on_messages_use_anthropics_shape(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    async with stack.http() as http:
        wrong_method = await http.get("/v1/messages", headers=headers)
        malformed = await http.post("/v1/messages", headers=headers, content=b"{not json")
        elsewhere = await http.post("/v1/chat/completions", headers=headers, content=b"{")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["type"] == "error"
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"
    assert malformed.status_code == 400
    assert malformed.json()["error"]["type"] == "invalid_request_error"
    # the OpenAI endpoints keep the OpenAI shape
    assert elsewhere.status_code == 400 and "type" not in elsewhere.json()
    assert elsewhere.json()["error"]["code"] == "invalid_json"


async def test_a_request_shaped_like_claude_codes_is_served(acme: tuple[Stack, str]) -> None:
    """The shape Claude Code 2.1 sends (seen on the wire): system blocks with cache_control,
    a "system" role between the turns, adaptive thinking, output_config, context_management,
    metadata, tools with input schemas, and streaming."""
    stack, key = acme
    body = {
        "model": "qwen3:8b",
        "max_tokens": 32000,
        "stream": True,
        "metadata": {"user_id": '{"session_id":"s"}'},
        "thinking": {"type": "adaptive"},
        "output_config": {"effort": "high"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "system": [
            {"type": "text", "text": "You are a coding agent."},
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
        ],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Say hello tokens=4"}]},
            {"role": "system", "content": "Available agent types: claude, Explore."},
        ],
        "tools": [
            {
                "name": name,
                "description": f"The {name} tool.",
                "input_schema": {"type": "object", "properties": {"arg": {"type": "string"}}},
            }
            for name in ("Agent", "Bash", "Edit", "Read", "Write")
        ],
    }
    async with (
        stack.http() as http,
        http.stream(
            "POST",
            "/v1/messages",
            json=body,
            headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        ) as response,
    ):
        assert response.status_code == 200, await response.aread()
        text = (await response.aread()).decode()
    events = [line[len("event: ") :] for line in text.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start"
    assert events[-1] == "message_stop"
    assert "error" not in events
