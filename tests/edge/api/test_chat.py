from __future__ import annotations

from typing import Any

import pytest

from edge.api import chat as openai_chat
from edge.errors import ApiError
from protocol import Delta, End
from protocol.requests import to_wire


def _neutral(req: openai_chat.ChatCompletionRequest, caps: list[str]) -> dict[str, Any]:
    """The neutral request as the tunnel carries it."""
    return to_wire(openai_chat.to_neutral(req, caps))


def _req(**overrides: Any) -> openai_chat.ChatCompletionRequest:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **overrides}
    return openai_chat.parse_request(body)


def test_only_given_options_are_forwarded() -> None:
    neutral = _neutral(_req(), ["completion"])
    assert "options" not in neutral
    neutral = _neutral(
        _req(temperature=0.2, max_completion_tokens=7, stop="END", seed=3), ["completion"]
    )
    assert neutral["options"] == {"num_predict": 7, "temperature": 0.2, "seed": 3, "stop": ["END"]}


def test_response_format_and_reasoning_effort_map_to_ollama() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    neutral = _neutral(
        _req(
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
            reasoning_effort="low",
        ),
        ["completion"],
    )
    assert neutral["format"] == schema
    assert neutral["think"] == "low"
    assert _neutral(_req(response_format={"type": "json_object"}), [])["format"] == ("json")


def test_tool_results_get_the_tool_name_back() -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    neutral = _neutral(_req(messages=messages), ["completion", "tools"])
    assert neutral["messages"][1]["tool_calls"] == [
        {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ]
    assert neutral["messages"][2] == {  # Ollama matches a result by name, OpenAI runtimes by id
        "role": "tool",
        "content": "sunny",
        "tool_name": "get_weather",
        "tool_call_id": "call_1",
    }


def test_images_need_vision_and_data_urls() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    content = [{"type": "text", "text": "what is this"}, image]
    neutral = _neutral(_req(messages=[{"role": "user", "content": content}]), ["vision"])
    assert neutral["messages"][0] == {"role": "user", "content": "what is this", "images": ["AAAA"]}
    with pytest.raises(ApiError, match="vision"):
        _neutral(_req(messages=[{"role": "user", "content": content}]), [])


def test_tool_choice_none_drops_tools() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert "tools" not in _neutral(_req(tools=tools, tool_choice="none"), [])
    assert _neutral(_req(tools=tools), ["tools"])["tools"][0]["function"]["name"] == "f"


def test_renderer_indexes_tool_calls_and_reports_tool_calls_finish() -> None:
    renderer = openai_chat.ChatRenderer("m")
    call = {"id": "call_a", "name": "f", "arguments": '{"x":1}'}
    first = renderer.delta_chunk(Delta(1, "", "", [call, {**call, "id": "call_b"}]))
    indexes = [c["index"] for c in first["choices"][0]["delta"]["tool_calls"]]
    assert indexes == [0, 1]
    assert first["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == '{"x":1}'
    end = End(1, "stop", 3, 4, {})
    assert renderer.finish_chunk(end)["choices"][0]["finish_reason"] == "tool_calls"
    assert renderer.usage_chunk(end)["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "total_tokens": 7,
    }


def test_tool_call_arguments_pass_through_as_the_machine_sent_them() -> None:
    # PROTOCOL.md §2: arguments travel as JSON text, which is what OpenAI's field holds; the edge
    # neither parses nor re-serialises them, in a stream or in a whole reply.
    text = '{"city": "Paris",  "days":[1 ,2],"note":"\\u00e9"}'
    call = {"id": "call_a", "name": "f", "arguments": text}
    streamed = openai_chat.ChatRenderer("m").delta_chunk(Delta(1, "", "", [call]))
    assert streamed["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == text
    whole = openai_chat.ChatRenderer("m").completion(
        [Delta(1, "ok", "", []), Delta(1, "", "", [call])], End(1, "stop", 1, 1, {})
    )
    (rendered,) = whole["choices"][0]["message"]["tool_calls"]
    assert rendered == {
        "id": "call_a",
        "type": "function",
        "function": {"name": "f", "arguments": text},
    }
