from __future__ import annotations

from typing import Any

import pytest

from edge.api.anthropic import render as am_render
from edge.api.anthropic import request as am
from edge.api.dispatch import check_capabilities
from edge.errors import ApiError
from protocol import Delta, End
from protocol.requests import ChatRequest, to_wire

TOOLS = [
    {
        "name": "get_weather",
        "description": "look up the weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    {"name": "get_time", "input_schema": {"type": "object"}},
]


def _req(**overrides: Any) -> am.MessagesRequest:
    body = {
        "model": "m",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
        **overrides,
    }
    return am.parse_request(body)


def _neutral(capabilities: list[str] | None = None, **overrides: Any) -> dict[str, Any]:
    """The neutral request as the tunnel carries it."""
    return to_wire(am.to_neutral(_req(**overrides), capabilities))


def _typed(capabilities: list[str] | None = None, **overrides: Any) -> ChatRequest:
    return am.to_neutral(_req(**overrides), capabilities)


def _bad(body: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        am.parse_request(body)
    assert caught.value.status == 400
    return caught.value


# --- validation ---


def test_max_tokens_is_required() -> None:
    error = _bad({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert error.param == "max_tokens"


def test_count_tokens_needs_no_max_tokens() -> None:
    req = am.parse_count_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert to_wire(am.to_neutral(req, None))["messages"] == [{"role": "user", "content": "hi"}]
    assert "options" not in to_wire(am.to_neutral(req, None))


def test_errors_name_the_block_not_pydantic_union_labels() -> None:
    base = {"model": "m", "max_tokens": 5}
    error = _bad(
        {**base, "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {}]}]}
    )
    assert error.param == "messages.0.content.1"
    error = _bad({**base, "messages": [{"role": "user", "content": [{"type": "text"}]}]})
    assert error.param == "messages.0.content.0.text"
    assert "Field required" in error.message
    error = _bad({**base, "messages": [{"role": "user", "content": [{"type": "document"}]}]})
    assert error.param == "messages.0.content.0"
    assert "document" in error.message


def test_unknown_fields_are_ignored() -> None:
    req = _req(metadata={"user_id": "u"}, service_tier="auto", whatever=1)
    assert req.model == "m"


def test_temperature_out_of_anthropic_range_is_a_400() -> None:
    error = _bad(
        {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "top_p": 2}
    )
    assert error.param == "top_p"


# --- the neutral request ---


def test_options_carry_only_what_was_given() -> None:
    neutral = _neutral()
    assert neutral["op"] == "chat"
    assert neutral["options"] == {"num_predict": 64}
    assert "think" not in neutral and "tools" not in neutral
    neutral = _neutral(temperature=0.3, top_k=20, top_p=0.9, stop_sequences=["END", "\n\n"])
    assert neutral["options"] == {
        "num_predict": 64,
        "temperature": 0.3,
        "top_k": 20,
        "top_p": 0.9,
        "stop": ["END", "\n\n"],
    }


@pytest.mark.parametrize(
    "system", ["be brief", [{"type": "text", "text": "be"}, {"type": "text", "text": "brief"}]]
)
def test_system_becomes_the_first_message(system: object) -> None:
    messages = _neutral(system=system)["messages"]
    assert messages[0]["role"] == "system"
    assert messages[0]["content"] in ("be brief", "be\nbrief")
    assert messages[1] == {"role": "user", "content": "hi"}


def test_tools_map_to_ollama_functions() -> None:
    neutral = _neutral(["completion", "tools"], tools=TOOLS)
    assert neutral["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "look up the weather",
                "parameters": TOOLS[0]["input_schema"],
            },
        },
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
    ]


def test_tool_choice_none_drops_tools_and_tool_keeps_only_the_named_one() -> None:
    assert "tools" not in _neutral(tools=TOOLS, tool_choice={"type": "none"})
    named = _neutral(tools=TOOLS, tool_choice={"type": "tool", "name": "get_time"})["tools"]
    assert [t["function"]["name"] for t in named] == ["get_time"]
    every = _neutral(tools=TOOLS, tool_choice={"type": "any"})["tools"]
    assert len(every) == 2
    with pytest.raises(ApiError) as caught:
        _neutral(tools=TOOLS, tool_choice={"type": "tool", "name": "nope"})
    assert caught.value.param == "tool_choice.name"


def test_server_tools_are_refused() -> None:
    with pytest.raises(ApiError) as caught:
        _neutral(tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert caught.value.status == 400
    assert caught.value.param == "tools.0"


def test_tools_to_a_model_without_the_capability_is_a_400() -> None:
    def check(capabilities: list[str], **overrides: Any) -> None:
        models = {"m": {"capabilities": capabilities}, "qwen3:8b": {"capabilities": ["tools"]}}
        check_capabilities(models, "m", am.to_neutral(_req(**overrides), capabilities))

    with pytest.raises(ApiError) as caught:
        check(["completion"], tools=TOOLS)
    assert caught.value.code == "model_does_not_support_tools"
    assert "qwen3:8b" in caught.value.message
    check(["completion", "tools"], tools=TOOLS)
    check([], tools=TOOLS, tool_choice={"type": "none"})


def test_a_tool_round_trip_becomes_ollama_messages() -> None:
    messages = [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "use the tool", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"c": 1}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "no"}, {"type": "text", "text": "clock"}],
                    "is_error": True,
                },
                {"type": "text", "text": "thanks"},
            ],
        },
    ]
    out = _neutral(["completion", "tools"], messages=messages)["messages"]
    assert out == [
        {"role": "user", "content": "weather in Paris?"},
        {
            "role": "assistant",
            "content": "Let me look.",
            "thinking": "use the tool",
            "tool_calls": [
                {"id": "toolu_1", "function": {"name": "get_weather", "arguments": {"c": 1}}},
                {"id": "toolu_2", "function": {"name": "get_time", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "toolu_1"},
        {
            "role": "tool",
            "content": "Error: no\nclock",
            "tool_name": "get_time",
            "tool_call_id": "toolu_2",
        },
        {"role": "user", "content": "thanks"},
    ]


def test_tool_use_in_a_user_turn_is_refused() -> None:
    block = {"type": "tool_use", "id": "t", "name": "x", "input": {}}
    with pytest.raises(ApiError) as caught:
        _neutral(messages=[{"role": "user", "content": [block]}])
    assert caught.value.param == "messages.0.content.0"


IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}


def test_base64_images_go_to_a_vision_model() -> None:
    messages = [{"role": "user", "content": [IMAGE, {"type": "text", "text": "what is it?"}]}]
    out = _neutral(["completion", "vision"], messages=messages)["messages"]
    assert out == [{"role": "user", "content": "what is it?", "images": ["iVBO"]}]


def test_images_to_a_model_without_vision_are_a_400() -> None:
    with pytest.raises(ApiError) as caught:
        _neutral(["completion"], messages=[{"role": "user", "content": [IMAGE]}])
    assert "vision" in caught.value.message


def test_url_images_are_a_clear_400() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    with pytest.raises(ApiError) as caught:
        _neutral(["vision"], messages=[{"role": "user", "content": [image]}])
    assert caught.value.param == "messages.0.content.0.source"
    assert "base64" in caught.value.message


def test_thinking_config_maps_to_think() -> None:
    enabled = {"type": "enabled", "budget_tokens": 1024}
    assert _neutral(["completion", "thinking"], thinking=enabled)["think"] is True
    assert _neutral(["completion", "thinking"], thinking={"type": "disabled"})["think"] is False
    # Claude Code sends it blindly: dropped, not refused, for a model that cannot think.
    assert "think" not in _neutral(["completion"], thinking=enabled)


def test_token_estimate_grows_with_text_tools_and_images() -> None:
    small = am.estimate_input_tokens(_typed())
    longer = am.estimate_input_tokens(_typed(messages=[{"role": "user", "content": "x" * 400}]))
    assert small >= 1
    assert longer - small == 100 - 1  # 400 characters at 4 per token, "hi" was 1
    assert am.estimate_input_tokens(_typed(tools=TOOLS)) > small
    image = am.estimate_input_tokens(
        _typed(messages=[{"role": "user", "content": [IMAGE]}], tools=None)
    )
    assert image >= am.TOKENS_PER_IMAGE


# --- rendering ---


def _delta(
    content: str = "", thinking: str = "", calls: list[dict[str, Any]] | None = None
) -> Delta:
    return Delta(1, content, thinking, calls or [])


def _end(reason: str = "stop", prompt: int = 7, completion: int = 3) -> End:
    return End(1, reason, prompt, completion, {})


CALL = {"id": "call_abc", "name": "get_weather", "arguments": '{"city":"Paris"}'}


def test_stream_events_follow_anthropics_order() -> None:
    renderer = am_render.MessageRenderer("qwen3:8b", input_estimate=5)
    events = renderer.start()
    events += renderer.delta(_delta(thinking="hmm"))
    events += renderer.delta(_delta(thinking=" ok", content="Hi"))
    events += renderer.delta(_delta(content=" there"))
    events += renderer.delta(_delta(calls=[CALL]))
    events += renderer.end(_end("tool_calls"))
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",  # thinking, index 0
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",  # signature
        "content_block_stop",
        "content_block_start",  # text, index 1
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",  # tool_use, index 2
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_") and start["content"] == []
    assert start["usage"] == {"input_tokens": 5, "output_tokens": 0}
    blocks = [data for name, data in events if name.startswith("content_block")]
    assert [b["index"] for b in blocks] == [0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert blocks[0]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert [b["delta"] for b in blocks[1:4]] == [
        {"type": "thinking_delta", "thinking": "hmm"},
        {"type": "thinking_delta", "thinking": " ok"},
        {"type": "signature_delta", "signature": am_render.THINKING_SIGNATURE},
    ]
    assert blocks[6]["delta"] == {"type": "text_delta", "text": "Hi"}
    assert blocks[9]["content_block"] == {
        "type": "tool_use",
        "id": "toolu_abc",
        "name": "get_weather",
        "input": {},
    }
    assert blocks[10]["delta"] == {"type": "input_json_delta", "partial_json": '{"city":"Paris"}'}
    message_delta = events[-2][1]
    assert message_delta["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    assert message_delta["usage"] == {"input_tokens": 7, "output_tokens": 3}


def test_an_empty_reply_still_ends_properly() -> None:
    renderer = am_render.MessageRenderer("m")
    events = renderer.start() + renderer.end(_end("length", completion=0))
    assert [name for name, _ in events] == ["message_start", "message_delta", "message_stop"]
    assert events[1][1]["delta"]["stop_reason"] == "max_tokens"


def test_whole_message_orders_thinking_text_tool_use() -> None:
    deltas = [_delta(thinking="a"), _delta(thinking="b", content="x"), _delta("y", calls=[CALL])]
    message = am_render.MessageRenderer("qwen3:8b").body(deltas, _end("tool_calls", 9, 4))
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["model"] == "qwen3:8b"
    assert message["content"] == [
        {"type": "thinking", "thinking": "ab", "signature": am_render.THINKING_SIGNATURE},
        {"type": "text", "text": "xy"},
        {"type": "tool_use", "id": "toolu_abc", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert message["stop_reason"] == "tool_use" and message["stop_sequence"] is None
    assert message["usage"] == {"input_tokens": 9, "output_tokens": 4}


@pytest.mark.parametrize("arguments", ["[1, 2]", '"text"', "null", "3", "{not json", '{"a":1'])
def test_tool_call_arguments_that_are_not_a_json_object_are_a_backend_error(arguments: str) -> None:
    # tool_use.input must be an object, and the SDKs parse streamed partial_json into one: a
    # machine that sends anything else gets its reply ended with a 502, in both modes, rather
    # than an input the client cannot use or one quietly replaced by {}.
    bad = {**CALL, "arguments": arguments}
    with pytest.raises(ApiError) as whole:
        am_render.MessageRenderer("m").body([_delta("x", calls=[bad])], _end("tool_calls"))
    renderer = am_render.MessageRenderer("m")
    renderer.start()
    with pytest.raises(ApiError) as streamed:
        renderer.delta(_delta(calls=[bad]))
    for caught in (whole, streamed):
        assert (caught.value.status, caught.value.code) == (502, "backend_error")
        assert caught.value.message == (
            "the machine sent tool-call arguments that are not a JSON object"
        )


@pytest.mark.parametrize(("reason", "expected"), [("stop", "end_turn"), ("length", "max_tokens")])
def test_stop_reasons(reason: str, expected: str) -> None:
    message = am_render.MessageRenderer("m").body([_delta("x")], _end(reason))
    assert message["stop_reason"] == expected


def test_stream_error_event_has_anthropics_error_shape() -> None:
    ((name, data),) = am_render.MessageRenderer.error(ApiError(502, "backend_error", "runner died"))
    assert name == "error"
    assert data == {
        "type": "error",
        "error": {"type": "api_error", "message": "runner died", "code": "backend_error"},
    }


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (503, "overloaded_error"),
        (504, "api_error"),
    ],
)
def test_anthropic_error_types_follow_the_status(status: int, kind: str) -> None:
    assert ApiError(status, "c", "m").anthropic_body()["error"]["type"] == kind


def test_system_messages_between_turns_stay_in_place() -> None:
    messages = _neutral(
        messages=[
            {"role": "user", "content": "hi"},
            {
                "role": "system",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {"role": "system", "content": "c"},
        ]
    )["messages"]
    assert messages == [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "a\nb"},
        {"role": "system", "content": "c"},
    ]
    with pytest.raises(ApiError) as caught:
        _neutral(
            messages=[
                {
                    "role": "system",
                    "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
                }
            ]
        )
    assert caught.value.param == "messages.0.content.0"
