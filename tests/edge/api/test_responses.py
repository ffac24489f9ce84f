from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from edge.api import chat as openai_chat
from edge.api.dispatch import check_capabilities
from edge.api.responses import render as responses_render
from edge.api.responses import request as openai_responses
from edge.errors import ApiError
from protocol import Delta, End
from protocol.requests import to_wire

STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}


def _req(**overrides: Any) -> openai_responses.ResponsesRequest:
    return openai_responses.parse_request({"model": "m", "input": "hi", **overrides})


def _neutral(caps: tuple[str, ...] = ("completion", "tools"), **overrides: Any) -> dict[str, Any]:
    req = _req(**overrides)
    return to_wire(openai_responses.to_neutral(req, openai_responses.input_items(req), list(caps)))


def _chat_neutral(body: dict[str, Any], caps: tuple[str, ...] = ("completion", "tools")) -> Any:
    chat = openai_chat.parse_request({"model": "m", **body})
    return to_wire(openai_chat.to_neutral(chat, list(caps)))


def test_the_neutral_request_is_the_chat_dialects() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    neutral = _neutral(
        instructions="be brief",
        tools=[TOOL],
        max_output_tokens=9,
        temperature=0.3,
        text={"format": {"type": "json_schema", "name": "x", "schema": schema}},
        reasoning={"effort": "low"},
        parallel_tool_calls=False,
        metadata={"a": "b"},
    )
    chat = _chat_neutral(
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
            ],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "description": "weather",
                        "parameters": TOOL["parameters"],
                    },
                }
            ],
            "max_completion_tokens": 9,
            "temperature": 0.3,
            "response_format": {"type": "json_schema", "json_schema": {"schema": schema}},
            "reasoning_effort": "low",
        }
    )
    assert neutral == chat
    assert neutral["options"] == {"num_predict": 9, "temperature": 0.3}
    assert neutral["format"] == schema and neutral["think"] == "low"


def test_only_given_options_and_json_object_and_effort_mapping() -> None:
    neutral = _neutral()
    assert neutral == {"op": "chat", "model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert _neutral(text={"format": {"type": "json_object"}})["format"] == "json"
    assert _neutral(reasoning={"effort": "none"})["think"] is False
    assert _neutral(reasoning={"effort": "xhigh"})["think"] == "high"


def test_items_become_chat_messages_with_tool_calls_and_results() -> None:
    items = [
        {"role": "developer", "content": "rules"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "ok", "annotations": []}],
        },
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{}"},
        {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": '{"a":1}'},
        {"type": "function_call_output", "call_id": "call_2", "output": "noon"},
        {"type": "function_call_output", "call_id": "call_1", "output": [{"text": "sunny"}]},
    ]
    neutral = _neutral(input=items)
    assert neutral["messages"] == [
        {"role": "system", "content": "rules"},
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "ok",
            "tool_calls": [
                {"id": "call_1", "function": {"name": "get_weather", "arguments": {}}},
                {"id": "call_2", "function": {"name": "get_time", "arguments": {"a": 1}}},
            ],
        },
        {"role": "tool", "content": "noon", "tool_name": "get_time", "tool_call_id": "call_2"},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather", "tool_call_id": "call_1"},
    ]


def test_data_images_reach_a_vision_model() -> None:
    content = [
        {"type": "input_text", "text": "what"},
        {"type": "input_image", "image_url": "data:image/png;base64,QUJD"},
    ]
    neutral = _neutral(("completion", "vision"), input=[{"role": "user", "content": content}])
    assert neutral["messages"] == [{"role": "user", "content": "what", "images": ["QUJD"]}]
    with pytest.raises(ApiError) as caught:
        _neutral(("completion",), input=[{"role": "user", "content": content}])
    assert caught.value.param == "input"  # not the chat dialect's `messages.0.content`


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [{"type": "input_image", "image_url": "https://x/cat.png"}],
                    }
                ]
            },
            "input.0.content.0",
        ),
        ({"input": [{"role": "user", "content": [{"type": "input_file"}]}]}, "input.0.content.0"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input.0.role"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input.0"),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}]},
            "input.0.arguments",
        ),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input.0"),
        ({"input": []}, "input"),
        ({"tools": [{"type": "custom", "name": "apply_patch"}]}, "tools.0.type"),
        ({"tools": [{"type": "function"}]}, "tools.0.name"),
        ({"tools": [TOOL], "tool_choice": {"type": "function", "name": "other"}}, "tool_choice"),
        ({"tools": [TOOL], "tool_choice": {"type": "mcp"}}, "tool_choice"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ],
)
def test_bad_requests_name_their_param(overrides: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as caught:
        _neutral(**overrides)
    assert caught.value.status == 400
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
        ({"model": "m", "input": "hi", "temperature": 3}, "temperature"),
        ({"model": "m", "input": "hi", "tool_choice": "sometimes"}, "tool_choice"),
        ({"input": "hi"}, "model"),
    ],
)
def test_invalid_fields_are_400s(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ApiError) as caught:
        openai_responses.parse_request(body)
    assert caught.value.param == param


def test_tool_choice_picks_or_drops_tools() -> None:
    other = {**TOOL, "name": "get_time"}
    assert "tools" not in _neutral(tools=[TOOL], tool_choice="none")
    chosen = _neutral(tools=[TOOL, other], tool_choice={"type": "function", "name": "get_time"})
    assert [t["function"]["name"] for t in chosen["tools"]] == ["get_time"]
    allowed = {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "function", "name": "get_weather"}],
    }
    assert [
        t["function"]["name"] for t in _neutral(tools=[TOOL, other], tool_choice=allowed)["tools"]
    ] == ["get_weather"]
    assert len(_neutral(tools=[TOOL, other], tool_choice="required")["tools"]) == 2


def test_tools_to_a_model_without_tools() -> None:
    def check(capabilities: list[str], **overrides: Any) -> None:
        req = _req(**overrides)
        request = openai_responses.to_neutral(req, openai_responses.input_items(req), capabilities)
        models = {"m": {"capabilities": capabilities}, "qwen3:8b": {"capabilities": ["tools"]}}
        check_capabilities(models, "m", request)

    with pytest.raises(ApiError) as caught:
        check(["completion"], tools=[TOOL])
    assert caught.value.code == "model_does_not_support_tools"
    assert caught.value.param == "tools" and "qwen3:8b" in caught.value.message
    check(["completion", "tools"], tools=[TOOL])
    check(["completion"], tools=[TOOL], tool_choice="none")  # no tools are sent


def _run(
    renderer: responses_render.ResponseRenderer, frames: list[Delta], end: End
) -> list[tuple[str, dict[str, Any]]]:
    events = renderer.start()
    for frame in frames:
        events += renderer.delta(frame)
    return events + renderer.end(end)


CALL = {"id": "call_ab12", "name": "get_weather", "arguments": '{"city":"Paris"}'}
FRAMES = [
    Delta(1, "", "hmm", []),
    Delta(1, "", " ok", []),
    Delta(1, "Hello", "", []),
    Delta(1, " world", "", []),
    Delta(1, "", "", [CALL]),
]


def test_stream_events_are_valid_and_numbered_in_order() -> None:
    renderer = responses_render.ResponseRenderer(_req(tools=[TOOL]), store=False)
    events = _run(renderer, FRAMES, End(1, "stop", 10, 7, {}))
    for name, data in events:
        assert data["type"] == name
        STREAM_EVENT.validate_python(data)  # every event is one the SDK knows, fully valid
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert [name for name, _ in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = Response.model_validate(events[-1][1]["response"])
    assert final.status == "completed"
    assert [item.type for item in final.output] == ["reasoning", "message", "function_call"]
    assert final.output_text == "Hello world"
    call = final.output[2]
    assert call.type == "function_call" and call.call_id == "call_ab12"
    assert call.arguments == '{"city":"Paris"}'  # as the machine sent it
    # each item's id carries its response's, and its index there
    hex_id = renderer.id.removeprefix("resp_")
    ids = [item.id for item in final.output]
    assert ids == [f"rs_{hex_id}0", f"msg_{hex_id}1", f"fc_{hex_id}2"]
    assert all(responses_render.response_of(item.id or "") == renderer.id for item in final.output)
    deltas = [d for name, d in events if name == "response.function_call_arguments.delta"]
    assert [d["delta"] for d in deltas] == ['{"city":"Paris"}']
    assert final.usage is not None and final.usage.total_tokens == 17
    assert final.tools[0].type == "function" and final.tools[0].name == "get_weather"


def test_the_whole_response_equals_the_streamed_one() -> None:
    end = End(1, "stop", 10, 7, {})
    streamed = responses_render.ResponseRenderer(_req(), store=True)
    last = _run(streamed, FRAMES[:4], end)[-1][1]["response"]
    whole = responses_render.ResponseRenderer(_req(), store=True).body(FRAMES[:4], end)
    for response in (last, whole):
        del response["id"], response["output"][0]["id"], response["output"][1]["id"]
        response.pop("completed_at")
    assert last == whole
    assert whole["store"] is True and whole["status"] == "completed"
    assert whole["output"][0]["summary"] == [{"type": "summary_text", "text": "hmm ok"}]


def test_length_is_incomplete_with_max_output_tokens() -> None:
    renderer = responses_render.ResponseRenderer(_req(max_output_tokens=2), store=False)
    events = _run(renderer, [Delta(1, "ab", "", [])], End(1, "length", 3, 2, {}))
    assert events[-1][0] == "response.incomplete"
    response = Response.model_validate(events[-1][1]["response"])
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].type == "message" and response.output[0].status == "incomplete"


def test_a_failure_closes_the_open_item_then_fails_and_errors() -> None:
    renderer = responses_render.ResponseRenderer(_req(), store=True)
    events = renderer.start() + renderer.delta(Delta(1, "Hel", "", []))
    tail = renderer.error(ApiError(502, "backend_error", "runner died"))
    names = [name for name, _ in tail]
    assert names == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.failed",
        "error",
    ]
    for _, data in tail:
        STREAM_EVENT.validate_python(data)
    numbers = [data["sequence_number"] for _, data in events + tail]
    assert numbers == list(range(len(numbers)))
    failed = Response.model_validate(tail[3][1]["response"])
    assert failed.status == "failed" and failed.error is not None
    assert failed.error.message == "runner died"
    error = tail[4][1]
    assert error["code"] == "backend_error" and error["message"] == "runner died"
    # a top-level `error` object is what makes the OpenAI SDKs raise on this event
    assert error["error"]["message"] == "runner died"
    assert renderer.status == "failed"


def test_output_items_go_back_as_input() -> None:
    renderer = responses_render.ResponseRenderer(_req(tools=[TOOL]), store=True)
    response = renderer.body(FRAMES, End(1, "stop", 1, 1, {}))
    items = [{"role": "user", "content": "hi"}, *responses_render.output_to_items(response)]
    messages = openai_responses.chat_messages(items)
    assert messages == [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "Hello world",
            "tool_calls": [
                {
                    "id": "call_ab12",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
    ]
