from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from edge.api import chat as openai_chat
from edge.api.dispatch import check_capabilities
from edge.api.responses import references
from edge.api.responses import render as responses_render
from edge.api.responses import request as openai_responses
from edge.api.responses import tools as tools_module
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
        ({"tools": [{"type": "hologram"}]}, "tools.0.type"),
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


# ---------------------------------------------------------------------- tools: namespaces, drops

FIXTURES = Path(__file__).resolve().parents[2] / "e2e" / "fixtures"
NAMESPACE = {
    "type": "namespace",
    "name": "crm_",
    "description": "Customer records.",
    "tools": [
        {"type": "function", "name": "_find", "description": "find one", "parameters": {}},
        {"type": "function", "name": "delete", "strict": True},
    ],
}


def _fixture(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text())["body"]
    return body


def test_a_namespace_is_flattened_into_its_functions() -> None:
    tools = openai_responses.request_tools(_req(tools=[TOOL, NAMESPACE]))
    assert [t["function"]["name"] for t in tools.chat] == [
        "get_weather",
        "crm__find",
        "crm__delete",
    ]
    assert tools.chat[1]["function"] == {
        "name": "crm__find",
        "description": "Customer records.\n\nfind one",
        "parameters": {},
    }
    assert tools.chat[2]["function"] == {"name": "crm__delete", "description": "Customer records."}
    assert tools.names == {"crm__find": ("crm_", "_find"), "crm__delete": ("crm_", "delete")}
    assert tools.call_name("crm__find") == {"name": "_find", "namespace": "crm_"}
    assert tools.call_name("get_weather") == {"name": "get_weather"}
    assert tools.dropped == [] and tools.headers == {}
    # the response lists the tools as the client declared them
    assert [t["type"] for t in tools.echo] == ["function", "namespace"]
    assert [t["name"] for t in tools.echo[1]["tools"]] == ["_find", "delete"]


def test_a_namespaced_call_comes_back_as_declared_and_goes_back_flat() -> None:
    req = _req(tools=[NAMESPACE])
    call = {"id": "call_1", "name": "crm__delete", "arguments": '{"id":7}'}
    renderer = responses_render.ResponseRenderer(req, store=False)
    events = _run(renderer, [Delta(1, "", "", [call])], End(1, "stop", 1, 1, {}))
    for _, data in events:
        STREAM_EVENT.validate_python(data)
    done = next(d for n, d in events if n == "response.function_call_arguments.done")
    assert done["name"] == "delete"
    final = Response.model_validate(events[-1][1]["response"])
    item = final.output[0]
    assert item.type == "function_call"
    assert (item.name, item.namespace, item.call_id) == ("delete", "crm_", "call_1")
    assert final.tools[0].type == "namespace"
    # the item sent back as input reaches the model under the name it was given
    items = [{"role": "user", "content": "hi"}, *responses_render.output_to_items(final.to_dict())]
    neutral = _neutral(input=items, tools=[NAMESPACE])
    assert neutral["messages"][1]["tool_calls"] == [
        {"id": "call_1", "function": {"name": "crm__delete", "arguments": {"id": 7}}}
    ]


@pytest.mark.parametrize("kind", sorted(tools_module.DROPPED))
def test_hosted_tools_are_dropped_and_named(kind: str) -> None:
    tools = openai_responses.request_tools(_req(tools=[{"type": kind}, TOOL, {"type": kind}]))
    assert tools.dropped == [kind]
    assert tools.headers == {"x-llmtunnel-dropped-tools": kind}
    assert [t["function"]["name"] for t in tools.chat] == ["get_weather"]
    assert [t["name"] for t in tools.echo] == ["get_weather"]


def test_only_dropped_tools_send_none() -> None:
    hosted = [{"type": "web_search"}, {"type": "mcp", "server_label": "x"}]
    neutral = _neutral(tools=hosted)
    assert "tools" not in neutral
    tools = openai_responses.request_tools(_req(tools=hosted))
    assert tools.headers == {"x-llmtunnel-dropped-tools": "web_search, mcp"}
    renderer = responses_render.ResponseRenderer(_req(tools=hosted), store=False)
    assert renderer.response()["tools"] == []


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "web_search_preview"},
        {"type": "image_generation"},
        {"type": "mcp", "server_label": "deepwiki"},
        {"type": "allowed_tools", "mode": "auto", "tools": [{"type": "web_search"}]},
    ],
)
def test_tool_choice_naming_a_dropped_tool_is_a_400(choice: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as caught:
        openai_responses.request_tools(
            _req(tools=[TOOL, {"type": "web_search"}], tool_choice=choice)
        )
    assert caught.value.status == 400 and caught.value.param == "tool_choice"
    assert "hosted tool" in caught.value.message


def test_tool_choice_finds_namespaced_functions() -> None:
    def chosen(choice: dict[str, Any]) -> list[str]:
        tools = openai_responses.request_tools(_req(tools=[TOOL, NAMESPACE], tool_choice=choice))
        return [t["function"]["name"] for t in tools.chat]

    assert chosen({"type": "function", "name": "delete"}) == ["crm__delete"]
    assert chosen({"type": "function", "name": "crm__find"}) == ["crm__find"]
    allowed = [
        {"type": "function", "name": "get_weather"},
        {"type": "web_search"},  # dropped anyway: the others stand
        {"type": "function", "name": "_find", "namespace": "crm_"},
    ]
    assert chosen({"type": "allowed_tools", "mode": "auto", "tools": allowed}) == [
        "get_weather",
        "crm__find",
    ]
    whole = {
        "type": "allowed_tools",
        "mode": "auto",
        "tools": [{"type": "namespace", "name": "crm_"}],
    }
    assert chosen(whole) == ["crm__find", "crm__delete"]


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        ([{"type": "something_new"}], "tools.0.type"),
        ([{**NAMESPACE, "tools": [{"type": "web_search"}]}], "tools.0.tools.0.type"),
        ([{**NAMESPACE, "tools": [{"type": "function"}]}], "tools.0.tools.0.name"),
        ([{"type": "namespace", "tools": []}], "tools.0.name"),
        ([{"type": "namespace", "name": "crm"}], "tools.0.tools"),
        ([NAMESPACE, {**TOOL, "name": "crm__find"}], "tools"),  # the same name twice
    ],
)
def test_tools_that_cannot_be_sent_are_400s(tools: list[dict[str, Any]], param: str) -> None:
    with pytest.raises(ApiError) as caught:
        openai_responses.request_tools(_req(tools=tools))
    assert caught.value.status == 400 and caught.value.param == param


def test_codexs_real_request_reaches_the_model_flat_and_without_web_search() -> None:
    body = _fixture("codex_first_request.json")
    req = openai_responses.parse_request(body)
    tools = openai_responses.request_tools(req)
    names = [t["function"]["name"] for t in tools.chat]
    assert "multi_agent_v1__close_agent" in names and "exec_command" in names
    assert tools.dropped == ["web_search"]
    assert {t["type"] for t in req.tools or []} == {"function", "namespace", "web_search"}
    neutral = to_wire(openai_responses.to_neutral(req, openai_responses.input_items(req), []))
    assert len(neutral["tools"]) == len(names)
    # its second request: the namespaced call it ran goes back under the model's name
    second = openai_responses.parse_request(_fixture("codex_tool_result_request.json"))
    messages = to_wire(
        openai_responses.to_neutral(second, openai_responses.input_items(second), [])
    )["messages"]
    assert messages[-2]["tool_calls"][0]["function"]["name"] == "multi_agent_v1__close_agent"
    assert messages[-1]["role"] == "tool"
    assert messages[-1]["tool_name"] == "multi_agent_v1__close_agent"


def test_a_custom_tool_is_a_function_of_one_string_and_its_call_a_custom_tool_call() -> None:
    grammar = {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}
    patch = {"type": "custom", "name": "apply_patch", "description": "edit", "format": grammar}
    req = _req(tools=[patch, {**NAMESPACE, "tools": [{"type": "custom", "name": "note"}]}])
    tools = openai_responses.request_tools(req)
    sent = tools.chat[0]["function"]
    assert sent["name"] == "apply_patch" and sent["description"] == "edit"
    assert sent["parameters"]["required"] == ["input"]
    assert "start: /.+/" in sent["parameters"]["properties"]["input"]["description"]
    assert tools.custom == {"apply_patch", "crm__note"}
    assert [t["type"] for t in tools.echo] == ["custom", "namespace"]
    calls = [
        {"id": "call_1", "name": "apply_patch", "arguments": '{"input":"*** Begin Patch"}'},
        {"id": "call_2", "name": "crm__note", "arguments": '{"text":"not as asked"}'},
    ]
    renderer = responses_render.ResponseRenderer(req, store=False)
    events = _run(renderer, [Delta(1, "", "", calls)], End(1, "stop", 1, 1, {}))
    for _, data in events:
        STREAM_EVENT.validate_python(data)
    names = [name for name, _ in events]
    assert names.count("response.custom_tool_call_input.delta") == 2
    final = Response.model_validate(events[-1][1]["response"])
    first, second = final.output
    assert first.type == "custom_tool_call" and second.type == "custom_tool_call"
    assert (first.name, first.namespace, first.input) == ("apply_patch", None, "*** Begin Patch")
    # arguments not of the shape asked for are passed on as their JSON text
    assert (second.name, second.namespace, second.input) == (
        "note",
        "crm_",
        '{"text":"not as asked"}',
    )
    assert first.id and first.id.startswith("ctc_")
    assert responses_render.response_of(first.id) == renderer.id
    # sent back with their outputs, they reach the model as the calls it made
    items = [
        {"role": "user", "content": "hi"},
        *responses_render.output_to_items(final.to_dict()),
        {"type": "custom_tool_call_output", "call_id": "call_1", "output": "done"},
    ]
    messages = _neutral(input=items, tools=req.tools)["messages"]
    assert messages[1]["tool_calls"] == [
        {
            "id": "call_1",
            "function": {"name": "apply_patch", "arguments": {"input": "*** Begin Patch"}},
        },
        {
            "id": "call_2",
            "function": {"name": "crm__note", "arguments": {"input": '{"text":"not as asked"}'}},
        },
    ]
    assert messages[2] == {
        "role": "tool",
        "content": "done",
        "tool_name": "apply_patch",
        "tool_call_id": "call_1",
    }


def test_codex_with_a_model_name_it_knows_sends_a_custom_tool() -> None:
    first = openai_responses.parse_request(_fixture("codex_alias_first_request.json"))
    tools = openai_responses.request_tools(first)
    assert "apply_patch" in tools.custom
    assert tools.dropped == ["tool_search", "web_search"]
    second = openai_responses.parse_request(_fixture("codex_alias_tool_result_request.json"))
    messages = to_wire(
        openai_responses.to_neutral(second, openai_responses.input_items(second), [])
    )["messages"]
    assert messages[-2]["tool_calls"][0]["function"] == {
        "name": "apply_patch",
        "arguments": {"input": "example"},
    }
    assert messages[-1]["role"] == "tool" and messages[-1]["tool_name"] == "apply_patch"


# ---------------------------------------------------------------------- item_reference


class FakeStore:
    """Stored responses of one tenant, by id; counts the lookups."""

    def __init__(self, *responses: dict[str, Any]) -> None:
        self.responses = {r["id"]: r for r in responses}
        self.lookups: list[str] = []

    async def load(self, response_id: str) -> dict[str, Any] | None:
        self.lookups.append(response_id)
        return self.responses.get(response_id)


def _stored() -> dict[str, Any]:
    renderer = responses_render.ResponseRenderer(_req(tools=[TOOL]), store=True)
    return renderer.body(FRAMES, End(1, "stop", 1, 1, {}))


async def test_references_resolve_from_a_stored_response() -> None:
    stored = _stored()
    reasoning, message, call = stored["output"]
    store = FakeStore(stored)
    items = [
        {"role": "user", "content": "hi"},
        {"type": "item_reference", "id": reasoning["id"]},
        {"type": "item_reference", "id": message["id"]},
        {"type": "item_reference", "id": call["id"]},
        {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"},
    ]
    resolved = await references.resolve_references(items, [], True, store.load)
    assert resolved == [items[0], reasoning, message, call, items[4]]
    assert store.lookups == [stored["id"]]  # one lookup per response
    messages = openai_responses.chat_messages(resolved)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["content"] == "Hello world"
    assert messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_references_to_items_sent_in_full_add_nothing() -> None:
    store = FakeStore()
    call = {"type": "function_call", "id": "fc_x", "call_id": "c1", "name": "f", "arguments": "{}"}
    earlier = [{"type": "message", "id": "msg_e", "role": "assistant", "content": "before"}]
    items: list[dict[str, Any]] = [
        {"type": "reasoning", "id": "rs_x", "summary": []},
        call,
        {"type": "item_reference", "id": "rs_x"},
        {"type": "item_reference", "id": "fc_x"},
        {"type": "item_reference", "id": "msg_e"},  # in the conversation continued
    ]
    for storing in (False, True):
        resolved = await references.resolve_references(items, earlier, storing, store.load)
        assert resolved == items[:2]
    assert store.lookups == []


async def test_an_unresolvable_reasoning_reference_is_skipped() -> None:
    store = FakeStore()
    items = [{"role": "user", "content": "hi"}, {"type": "item_reference", "id": "rs_gone"}]
    assert await references.resolve_references(items, [], False, store.load) == items[:1]
    gone = "rs_" + "ab" * 12 + "0"  # an id of this edge whose response is not stored
    items[1]["id"] = gone
    assert await references.resolve_references(items, [], True, store.load) == items[:1]
    assert store.lookups == ["resp_" + "ab" * 12]


@pytest.mark.parametrize("storing", [False, True])
async def test_any_other_unresolvable_reference_is_a_400_naming_it(storing: bool) -> None:
    missing = "msg_" + "cd" * 12 + "1"
    items = [{"role": "user", "content": "hi"}, {"type": "item_reference", "id": missing}]
    with pytest.raises(ApiError) as caught:
        await references.resolve_references(items, [], storing, FakeStore(_stored()).load)
    assert caught.value.status == 400 and caught.value.param == "input.1"
    assert missing in caught.value.message
    assert ("storage is off" in caught.value.message) is not storing
    with pytest.raises(ApiError) as empty:
        await references.resolve_references(
            [{"type": "item_reference"}], [], storing, FakeStore().load
        )
    assert empty.value.param == "input.0.id"


async def test_the_ai_sdks_second_step_resolves_with_storage_off() -> None:
    body = _fixture("ai_sdk_second_step_request.json")
    req = openai_responses.parse_request(body)
    items = await references.resolve_references(
        openai_responses.input_items(req), [], False, FakeStore().load
    )
    assert [i.get("type", "message") for i in items] == [
        "message",
        "function_call",
        "function_call_output",
    ]
    messages = to_wire(openai_responses.to_neutral(req, items, []))["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[-1]["content"] == "sunny, 21 C"
