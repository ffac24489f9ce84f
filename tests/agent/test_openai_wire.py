"""Neutral requests as OpenAI bodies (agent/openai_wire.py): only what was set, and what the
OpenAI shapes need that the neutral one leaves out (call ids, data: URLs)."""

from __future__ import annotations

import base64

import pytest

from agent.backend import BackendError
from agent.openai_wire import chat_body, completion_body, embeddings_body
from protocol import ErrorCode
from protocol.requests import (
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    Message,
    Options,
    Tool,
    ToolCall,
)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 8).decode()
JPEG = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 8).decode()


def test_a_plain_chat_sends_nothing_the_client_did_not_set() -> None:
    body = chat_body(ChatRequest("m", (Message("user", "hi"),)), usage=True)
    assert body == {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert "stream_options" not in chat_body(ChatRequest("m", ()), usage=False)


def test_options_format_and_thinking_have_their_openai_names() -> None:
    options = Options(
        num_predict=5,
        temperature=0.0,
        top_p=0.9,
        top_k=40,
        seed=-1,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
        stop=("\n", "END"),
    )
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = chat_body(ChatRequest("m", (), options=options, format=schema, think=False), True)
    assert {k: v for k, v in body.items() if k not in ("model", "messages", "stream")} == {
        "max_tokens": 5,
        "temperature": 0.0,
        "top_p": 0.9,
        "top_k": 40,
        "seed": -1,
        "presence_penalty": 0.5,
        "frequency_penalty": -0.5,
        "stop": ["\n", "END"],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": schema},
        },
        "chat_template_kwargs": {"enable_thinking": False},
        "stream_options": {"include_usage": True},
    }
    effort = chat_body(ChatRequest("m", (), format="json", think="high"), True)
    assert effort["reasoning_effort"] == "high" and "chat_template_kwargs" not in effort
    assert effort["response_format"] == {"type": "json_object"}


def test_tools_calls_and_answers_get_the_ids_openai_matches_by() -> None:
    weather = ToolCall("get_weather", {"city": "Paris"})  # a client that sent no id
    clock = ToolCall("get_time", {"city": "Paris"}, id="call_given")
    messages = (
        Message("system", "be brief"),
        Message("user", "weather and time?"),
        Message("assistant", "", tool_calls=(weather, clock)),
        Message("tool", "noon", tool_name="get_time", tool_call_id="call_given"),
        Message("tool", "sunny", tool_name="get_weather"),  # answered by name, as on Ollama
    )
    tools = (Tool("get_weather", "look it up", {"type": "object"}), Tool("get_time"))
    body = chat_body(ChatRequest("m", messages, tools), True)
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "look it up",
                "parameters": {"type": "object"},
            },
        },
        {"type": "function", "function": {"name": "get_time"}},
    ]
    assistant = body["messages"][2]
    assert assistant["tool_calls"] == [
        {
            "id": "call_2_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        },
        {
            "id": "call_given",
            "type": "function",
            "function": {"name": "get_time", "arguments": '{"city":"Paris"}'},
        },
    ]
    assert [m.get("tool_call_id") for m in body["messages"][3:]] == ["call_given", "call_2_0"]


def test_images_become_data_urls_of_their_own_type() -> None:
    body = chat_body(ChatRequest("m", (Message("user", "what?", images=(PNG, JPEG)),)), True)
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{JPEG}"}},
    ]


def test_a_completion_is_the_prompt_as_it_is() -> None:
    request = GenerateRequest("m", "def f(", suffix="\n", options=Options(num_predict=16))
    assert completion_body(request, False) == {
        "model": "m",
        "prompt": "def f(",
        "suffix": "\n",
        "max_tokens": 16,
        "stream": True,
    }
    thinking = GenerateRequest("m", "x", think=False)
    assert "chat_template_kwargs" not in completion_body(thinking, False)
    with pytest.raises(BackendError) as refused:
        completion_body(GenerateRequest("m", "x", system="be brief"), False)
    assert refused.value.code is ErrorCode.UNSUPPORTED


def test_embeddings_send_the_inputs_and_dimensions() -> None:
    assert embeddings_body(EmbedRequest("e", ("a", "b"), 64)) == {
        "model": "e",
        "input": ["a", "b"],
        "dimensions": 64,
    }
    assert embeddings_body(EmbedRequest("e", ("a",))) == {"model": "e", "input": ["a"]}
