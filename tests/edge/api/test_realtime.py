"""The Realtime dialect's pure parts: client events, settings, the conversation and its bounds,
the neutral request, and the server events (validated against the ``openai`` SDK's types)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

from edge.api.realtime import conversation, events, render, settings, turn
from edge.api.realtime.conversation import Conversation, parse_item
from edge.api.realtime.errors import EventError
from edge.api.realtime.settings import Settings, parse_changes
from protocol import Delta, End
from protocol.requests import to_wire

SERVER_EVENTS: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
DATA_URL = "data:image/png;base64,iVBORw0KGgo="


def _parse(event: dict[str, Any] | str | bytes) -> events.ClientEvent:
    if isinstance(event, dict):
        event = json.dumps(event)
    return events.parse(event.encode() if isinstance(event, str) else event)


def _refused(event: dict[str, Any] | str | bytes) -> EventError:
    with pytest.raises(EventError) as caught:
        _parse(event)
    return caught.value


def _user(text: str, item_id: str | None = None) -> dict[str, Any]:
    item = parse_item({"type": "message", "role": "user", "content": text}, "item")
    if item_id is not None:
        item["id"] = item_id
    return item


def _valid(out: list[dict[str, Any]]) -> list[str]:
    """The events' types, each validated strictly as the SDK's server event of its type."""
    for event in out:
        SERVER_EVENTS.validate_python(event)
    return [event["type"] for event in out]


# ---------------------------------------------------------------------- client events


def test_each_served_event_becomes_its_typed_event() -> None:
    update = _parse({"type": "session.update", "event_id": "e1", "session": {"instructions": "x"}})
    assert update == events.SessionUpdate("e1", {"instructions": "x"})
    create = _parse({"type": "conversation.item.create", "item": {"role": "user", "content": "hi"}})
    assert isinstance(create, events.ItemCreate) and create.previous_item_id is None
    assert create.item["content"] == [{"type": "input_text", "text": "hi"}]
    assert _parse({"type": "conversation.item.delete", "item_id": "a"}) == events.ItemDelete(
        None, "a"
    )
    assert _parse({"type": "conversation.item.retrieve", "item_id": "a"}) == events.ItemRetrieve(
        None, "a"
    )
    assert _parse({"type": "response.cancel", "response_id": "r"}) == events.ResponseCancel(
        None, "r"
    )
    response = _parse({"type": "response.create"})
    assert response == events.ResponseCreate(None, {}, True, None, None)


def test_a_response_create_carries_its_overrides_context_and_metadata() -> None:
    response = _parse(
        {
            "type": "response.create",
            "response": {
                "conversation": "none",
                "instructions": "short",
                "max_output_tokens": 5,
                "metadata": {"topic": "tunnels"},
                "input": [
                    {"type": "item_reference", "id": "item_1"},
                    {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": "q"}],
                    },
                ],
            },
        }
    )
    assert isinstance(response, events.ResponseCreate)
    assert response.changes == {"instructions": "short", "max_output_tokens": 5}
    assert not response.in_conversation
    assert response.metadata == {"topic": "tunnels"}
    assert response.input is not None and response.input[0] == events.Reference("item_1")


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        (b"{", "invalid_json", None),
        (b"[]", "invalid_json", None),
        (b'{"type": "x", "n": NaN}', "invalid_json", None),
        (b'{"type": "x", "n": 1e999}', "invalid_json", None),
        (b'{"type": "x", "s": "\\ud800"}', "invalid_json", None),
        (b'{"type": 3}', "invalid_request", "type"),
        (b'{"type": "response.create", "event_id": 3}', "invalid_request", "event_id"),
        (b'{"type": "transcription_session.update"}', "audio_not_supported", "type"),
        (b'{"type": "session.foo"}', "unknown_event_type", "type"),
        (b'{"type": "response.create", "response": []}', "invalid_request", "response"),
        (
            b'{"type": "response.create", "response": {"input": {}}}',
            "invalid_request",
            "response.input",
        ),
        (
            b'{"type": "response.create", "response": {"input": [{"type": "item_reference"}]}}',
            "invalid_request",
            "response.input.0.id",
        ),
        (
            b'{"type": "response.create", "response": {"metadata": {"k": 1}}}',
            "invalid_request",
            "response.metadata",
        ),
        (b'{"type": "conversation.item.delete"}', "invalid_request", "item_id"),
        (b'{"type": "response.cancel", "response_id": ""}', "invalid_request", "response_id"),
    ],
)
def test_bad_events_are_refused_naming_the_field(raw: bytes, code: str, param: str | None) -> None:
    refused = _refused(raw)
    assert (refused.code, refused.param, refused.type) == (code, param, "invalid_request_error")


def test_a_refusal_names_the_events_id() -> None:
    assert _refused({"type": "nope", "event_id": "evt_9"}).event_id == "evt_9"
    assert _refused({"type": "session.update", "event_id": "evt_8", "session": 1}).event_id == (
        "evt_8"
    )


def test_an_unknown_event_lists_what_is_served() -> None:
    message = _refused({"type": "session.foo"}).message
    assert all(kind in message for kind in events.SERVED)


@pytest.mark.parametrize("kind", sorted(events.AUDIO_EVENTS))
def test_every_audio_event_is_refused(kind: str) -> None:
    refused = _refused({"type": kind, "audio": "AAAA", "event_id": "a1"})
    assert (refused.code, refused.param, refused.event_id) == ("audio_not_supported", "type", "a1")
    assert "text modality only" in refused.message


def test_an_event_past_the_limit_is_refused_unread() -> None:
    refused = _refused(b"{" * (events.MAX_EVENT_BYTES + 1))  # not even parsed
    assert refused.code == "event_too_large"
    assert _parse(json.dumps({"type": "response.cancel", "pad": "x" * 1000}))


# ---------------------------------------------------------------------- settings


def test_only_the_settings_a_client_names_change() -> None:
    assert parse_changes({}, "session", session=True) == {}
    assert (
        parse_changes(
            {"type": "realtime", "audio": {"output": {"voice": "marin"}}}, "s", session=True
        )
        == {}
    )
    changes = parse_changes(
        {
            "model": "qwen3:8b",
            "instructions": None,
            "output_modalities": ["text"],
            "max_output_tokens": "inf",
            "tool_choice": "none",
            "reasoning": {"effort": "xhigh"},
        },
        "session",
        session=True,
    )
    assert changes == {
        "model": "qwen3:8b",
        "instructions": "",
        "max_output_tokens": None,
        "tool_choice": "none",
        "reasoning_effort": "high",
    }
    assert Settings(model="m").updated(changes).model == "qwen3:8b"
    # A response may not pick another model or session type: those keys mean nothing there.
    assert parse_changes({"model": "x", "type": "transcription"}, "response", session=False) == {}


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"type": "transcription"}, "audio_not_supported", "session.type"),
        ({"type": "other"}, "invalid_request", "session.type"),
        ({"output_modalities": ["audio"]}, "audio_not_supported", "session.output_modalities"),
        (
            {"output_modalities": ["text", "audio"]},
            "audio_not_supported",
            "session.output_modalities",
        ),
        ({"output_modalities": []}, "invalid_request", "session.output_modalities"),
        ({"output_modalities": "text"}, "invalid_request", "session.output_modalities"),
        ({"model": ""}, "invalid_request", "session.model"),
        ({"model": "m" * 257}, "invalid_request", "session.model"),
        ({"instructions": 3}, "invalid_request", "session.instructions"),
        ({"max_output_tokens": 0}, "invalid_request", "session.max_output_tokens"),
        ({"max_output_tokens": True}, "invalid_request", "session.max_output_tokens"),
        ({"tools": {}}, "invalid_request", "session.tools"),
        (
            {"tools": [{"type": "mcp", "server_label": "x"}]},
            "invalid_request",
            "session.tools.0.type",
        ),
        ({"tools": [{"type": "function"}]}, "invalid_request", "session.tools.0.name"),
        (
            {"tools": [{"name": "f", "parameters": []}]},
            "invalid_request",
            "session.tools.0.parameters",
        ),
        ({"tool_choice": "always"}, "invalid_request", "session.tool_choice"),
        (
            {"tool_choice": {"type": "mcp", "server_label": "x"}},
            "invalid_request",
            "session.tool_choice",
        ),
        ({"reasoning": {"effort": "max"}}, "invalid_request", "session.reasoning.effort"),
    ],
)
def test_bad_settings_are_refused(session: dict[str, Any], code: str, param: str) -> None:
    refused = _refused({"type": "session.update", "session": session})
    assert (refused.code, refused.param) == (code, param)


def test_tool_choice_picks_the_tools_sent() -> None:
    tools = parse_changes(
        {"tools": [{"type": "function", "name": "a"}, {"name": "b", "description": "B"}]},
        "session",
        session=True,
    )["tools"]
    base = Settings(tools=tools)
    assert [t["function"]["name"] for t in settings.named_tools(base)] == ["a", "b"]
    assert settings.named_tools(base.updated({"tool_choice": "none"})) == []
    named = base.updated({"tool_choice": {"type": "function", "name": "b"}})
    assert settings.named_tools(named) == [
        {"type": "function", "function": {"name": "b", "description": "B"}}
    ]
    with pytest.raises(EventError) as caught:
        settings.named_tools(base.updated({"tool_choice": {"type": "function", "name": "c"}}))
    assert caught.value.param == "tool_choice"


# ---------------------------------------------------------------------- items and conversation


def test_items_are_kept_as_the_server_shows_them() -> None:
    user = parse_item(
        {
            "type": "message",
            "role": "user",
            "id": "mine",
            "content": [
                {"type": "input_text", "text": "look"},
                {"type": "input_image", "image_url": DATA_URL, "detail": "low"},
            ],
        },
        "item",
    )
    assert user == {
        "id": "mine",
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": DATA_URL, "detail": "low"},
        ],
    }
    assistant = parse_item({"role": "assistant", "content": [{"type": "text", "text": "a"}]}, "i")
    assert assistant["content"] == [{"type": "output_text", "text": "a"}]
    assert assistant["id"].startswith("item_")
    call = parse_item({"type": "function_call", "name": "f", "arguments": '{"x": 1}'}, "i")
    assert call["call_id"].startswith("call_") and call["arguments"] == '{"x": 1}'
    output = parse_item({"type": "function_call_output", "call_id": "c", "output": "ok"}, "i")
    assert (output["call_id"], output["output"]) == ("c", "ok")
    for item in (user, assistant, call, output):
        SERVER_EVENTS.validate_python(
            {"type": "conversation.item.added", "event_id": "e", "item": item}
        )


@pytest.mark.parametrize(
    ("item", "code", "param"),
    [
        (
            {"role": "user", "content": [{"type": "input_audio", "audio": "AA"}]},
            "audio_not_supported",
            "item.content.0",
        ),
        (
            {"role": "assistant", "content": [{"type": "output_audio", "transcript": "hi"}]},
            "audio_not_supported",
            "item.content.0",
        ),
        (
            {"role": "assistant", "content": [{"type": "audio"}]},
            "audio_not_supported",
            "item.content.0",
        ),
        (
            {"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]},
            "invalid_request",
            "item.content.0.image_url",
        ),
        (
            {"role": "system", "content": [{"type": "input_image", "image_url": DATA_URL}]},
            "invalid_request",
            "item.content.0",
        ),
        (
            {"role": "user", "content": [{"type": "output_text", "text": "x"}]},
            "invalid_request",
            "item.content.0",
        ),
        (
            {"role": "user", "content": [{"type": "input_text"}]},
            "invalid_request",
            "item.content.0.text",
        ),
        ({"role": "user", "content": 3}, "invalid_request", "item.content"),
        ({"role": "developer", "content": "x"}, "invalid_request", "item.role"),
        ({"role": "user", "content": "x", "id": "i" * 65}, "invalid_request", "item.id"),
        (
            {"type": "function_call", "name": "f", "arguments": "[1]"},
            "invalid_request",
            "item.arguments",
        ),
        ({"type": "function_call", "arguments": "{}"}, "invalid_request", "item.name"),
        ({"type": "function_call_output", "output": "x"}, "invalid_request", "item.call_id"),
        (
            {"type": "function_call_output", "call_id": "c", "output": 1},
            "invalid_request",
            "item.output",
        ),
        ({"type": "mcp_call"}, "invalid_request", "item.type"),
        ([], "invalid_request", "item"),
    ],
)
def test_bad_items_are_refused(item: object, code: str, param: str) -> None:
    refused = _refused({"type": "conversation.item.create", "item": item})
    assert (refused.code, refused.param) == (code, param)


def test_items_go_where_previous_item_id_puts_them() -> None:
    talk = Conversation()
    assert talk.add(_user("a", "a")) is None
    assert talk.add(_user("c", "c")) == "a"
    assert talk.add(_user("b", "b"), "a") == "a"
    assert talk.add(_user("z", "z"), conversation.ROOT) is None
    assert [item["id"] for item in talk.items] == ["z", "a", "b", "c"]
    with pytest.raises(EventError) as caught:
        talk.add(_user("x", "x"), "nope")
    assert (caught.value.code, caught.value.param) == ("item_not_found", "previous_item_id")
    with pytest.raises(EventError) as caught:
        talk.add(_user("again", "a"))
    assert caught.value.code == "item_id_exists"
    talk.delete("b")
    assert [item["id"] for item in talk.items] == ["z", "a", "c"]
    assert talk.get("b") is None
    with pytest.raises(EventError):
        talk.delete("b")


def test_the_conversation_is_bounded_in_items_and_bytes() -> None:
    talk = Conversation(max_items=2, max_bytes=10_000)
    talk.add(_user("one", "1"))
    talk.add(_user("two", "2"))
    with pytest.raises(EventError) as caught:
        talk.add(_user("three", "3"))
    assert caught.value.code == "conversation_full"
    talk.delete("1")
    before = talk.bytes
    with pytest.raises(EventError):
        talk.add(_user("x" * 10_000, "big"))
    assert (len(talk), talk.bytes) == (1, before)  # nothing of a refused item is kept
    talk.add(_user("small", "s"))
    talk.grow("s", 10_000 - talk.bytes)  # exactly full
    with pytest.raises(EventError):
        talk.grow("s", 1)
    talk.grow("gone", 10**9)  # an item deleted while it was written: nothing to count
    talk.delete("s")
    talk.delete("2")
    assert (len(talk), talk.bytes) == (0, 0)


def test_the_default_limits_are_the_documented_ones() -> None:
    talk = Conversation()
    assert (talk.max_items, talk.max_bytes) == (1_000, 4 * 1024 * 1024)
    assert (events.MAX_EVENT_BYTES, events.SOCKET_MAX_MESSAGE) == (1024 * 1024, 4 * 1024 * 1024)


# ---------------------------------------------------------------------- the neutral request


def _wire(
    items: list[dict[str, Any]], caps: tuple[str, ...] = ("completion", "tools"), **changes: Any
) -> dict[str, Any]:
    return to_wire(turn.to_neutral(Settings(model="m").updated(changes), items, list(caps)))


def test_the_conversation_becomes_chat_messages() -> None:
    items = [
        parse_item({"role": "system", "content": "be kind"}, "i"),
        _user("what is the weather?"),
        parse_item({"role": "assistant", "content": "let me look"}, "i"),
        parse_item(
            {"type": "function_call", "call_id": "c1", "name": "weather", "arguments": '{"a": 1}'},
            "i",
        ),
        parse_item({"type": "function_call_output", "call_id": "c1", "output": "sunny"}, "i"),
    ]
    wire = _wire(items, instructions="be brief", max_output_tokens=9, reasoning_effort="minimal")
    assert wire["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "system", "content": "be kind"},
        {"role": "user", "content": "what is the weather?"},
        {
            "role": "assistant",
            "content": "let me look",
            "tool_calls": [{"function": {"name": "weather", "arguments": {"a": 1}}, "id": "c1"}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "weather", "tool_call_id": "c1"},
    ]
    assert wire["options"] == {"num_predict": 9}
    assert wire["think"] is False
    assert "tools" not in wire


def test_tools_are_sent_as_the_tool_choice_says() -> None:
    tools = ({"type": "function", "name": "f", "description": None, "parameters": None},)
    assert _wire([_user("hi")], tools=tools)["tools"] == [
        {"type": "function", "function": {"name": "f"}}
    ]
    assert "tools" not in _wire([_user("hi")], tools=tools, tool_choice="none")


def test_images_need_vision_and_the_refusal_names_the_item() -> None:
    image = parse_item(
        {"role": "user", "id": "pic", "content": [{"type": "input_image", "image_url": DATA_URL}]},
        "item",
    )
    assert _wire([image], ("completion", "vision"))["messages"][0]["images"] == ["iVBORw0KGgo="]
    with pytest.raises(EventError) as caught:
        _wire([image], ("completion",))
    assert (caught.value.param, caught.value.type) == ("item", "invalid_request_error")
    assert caught.value.message.startswith("item 'pic': ")


def test_nothing_to_respond_to_is_refused() -> None:
    with pytest.raises(EventError) as caught:
        _wire([])
    assert caught.value.code == "conversation_empty"
    assert _wire([], instructions="say hello")["messages"] == [
        {"role": "system", "content": "say hello"}
    ]


# ---------------------------------------------------------------------- server events


def test_a_text_response_streams_its_events_and_lands_in_the_conversation() -> None:
    talk = Conversation()
    talk.add(_user("hi", "q"))
    renderer = render.ResponseRenderer(Settings(model="m"), talk, "conv_1", {"k": "v"})
    out = renderer.created()
    out += renderer.delta(Delta(1, "", "thinking…", []))  # not sent: no item for thinking
    out += renderer.delta(Delta(1, "Hel", "", []))
    out += renderer.delta(Delta(1, "lo", "", []))
    out += renderer.end(End(1, "stop", 5, 2, {}))
    assert _valid(out) == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    assert out[2]["previous_item_id"] == "q"
    assert out[6]["text"] == "Hello"
    done = out[-1]["response"]
    assert (done["status"], done["conversation_id"], done["metadata"]) == (
        "completed",
        "conv_1",
        {"k": "v"},
    )
    assert done["usage"]["total_tokens"] == 7
    assert done["output"][0]["content"] == [{"type": "output_text", "text": "Hello"}]
    reply = talk.items[-1]
    assert (reply["role"], reply["status"], reply["content"][0]["text"]) == (
        "assistant",
        "completed",
        "Hello",
    )
    assert len({event["event_id"] for event in out}) == len(out)


def test_a_tool_call_closes_the_message_and_is_its_own_item() -> None:
    renderer = render.ResponseRenderer(Settings(model="m"), Conversation(), None)
    call = {"id": "call_1", "name": "f", "arguments": '{"a": 1}'}
    out = renderer.delta(Delta(1, "Calling.", "", [call]))
    out += renderer.end(End(1, "stop", 5, 2, {}))
    types = _valid(out)
    assert types[types.index("response.output_text.done") :] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.output_item.added",
        "conversation.item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    added = out[types.index("response.output_item.added", 1)]
    assert added["output_index"] == 1 and added["item"]["arguments"] == ""
    output = out[-1]["response"]["output"]
    assert [item["type"] for item in output] == ["message", "function_call"]
    assert output[1] == {
        "id": output[1]["id"],
        "object": "realtime.item",
        "type": "function_call",
        "status": "completed",
        "call_id": "call_1",
        "name": "f",
        "arguments": '{"a": 1}',
    }
    assert out[-1]["response"]["conversation_id"] is None


def test_a_cut_a_cancelled_and_a_failed_response() -> None:
    cut = render.ResponseRenderer(Settings(model="m", max_output_tokens=2), Conversation(), None)
    out = cut.delta(Delta(1, "ab", "", [])) + cut.end(End(1, "length", 1, 2, {}))
    _valid(out)
    assert out[-1]["response"]["status"] == "incomplete"
    assert out[-1]["response"]["status_details"] == {
        "type": "incomplete",
        "reason": "max_output_tokens",
    }
    assert out[-1]["response"]["max_output_tokens"] == 2
    assert out[-1]["response"]["output"][0]["status"] == "incomplete"

    cancelled = render.ResponseRenderer(Settings(model="m"), Conversation(), None)
    out = cancelled.delta(Delta(1, "ab", "", [])) + cancelled.cancelled()
    _valid(out)
    assert (out[-1]["response"]["status"], out[-1]["response"]["usage"]) == ("cancelled", None)
    assert out[-1]["response"]["status_details"]["reason"] == "client_cancelled"

    failed = render.ResponseRenderer(Settings(model="m"), Conversation(), None)
    error = EventError("backend_error", "the GPU fell over", kind="api_error")
    out = failed.failed(error)
    assert _valid(out) == ["response.done"]  # nothing was open
    assert out[0]["response"]["status_details"] == {
        "type": "failed",
        "error": {"type": "api_error", "code": "backend_error", "message": "the GPU fell over"},
    }


def test_a_reply_past_the_conversations_room_is_refused() -> None:
    talk = Conversation(max_bytes=1_000)
    renderer = render.ResponseRenderer(Settings(model="m"), talk, "conv")
    renderer.delta(Delta(1, "x" * 100, "", []))
    with pytest.raises(EventError) as caught:
        renderer.delta(Delta(1, "x" * 1_000, "", []))
    assert caught.value.code == "conversation_full"
    assert talk.bytes <= 1_000


def test_the_session_and_error_events_have_the_sdks_shape() -> None:
    tools = (
        {"type": "function", "name": "f", "description": "F", "parameters": {"type": "object"}},
    )
    shown = Settings(model="m", instructions="hi", tools=tools, reasoning_effort="low")
    for kind in ("session.created", "session.updated"):
        event = render.event(kind, session=render.session("sess_1", shown))
        assert _valid([event]) == [kind]
    assert render.session("sess_1", Settings())["max_output_tokens"] == "inf"
    error = EventError("audio_not_supported", "no audio", param="type", event_id="e1")
    event = render.error_event(error)
    assert _valid([event]) == ["error"]
    assert event["error"] == {
        "type": "invalid_request_error",
        "code": "audio_not_supported",
        "message": "no audio",
        "param": "type",
        "event_id": "e1",
    }


# ---------------------------------------------------------------------- arbitrary input


_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=12)
_words = st.sampled_from(
    [
        "type",
        "role",
        "content",
        "text",
        "id",
        "call_id",
        "name",
        "arguments",
        "output",
        "image_url",
        "tools",
        "tool_choice",
        "output_modalities",
        "max_output_tokens",
        "model",
        "instructions",
        "reasoning",
        "effort",
        "input",
        "conversation",
        "metadata",
        "item",
        "session",
        "response",
        "item_id",
        "previous_item_id",
        "response_id",
        "event_id",
        "message",
        "function_call",
        "function_call_output",
        "user",
        "assistant",
        "system",
        "input_text",
        "output_text",
        "input_image",
        "input_audio",
        "function",
        "item_reference",
        "realtime",
        "transcription",
        "text",
        "audio",
        "auto",
        "none",
        "inf",
        DATA_URL,
        "{}",
    ]
)
_values = st.recursive(
    _scalars | _words,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_words, inner, max_size=5),
    max_leaves=25,
)
_parts = st.fixed_dictionaries(
    {"type": st.sampled_from(["input_text", "output_text", "text", "input_image", "input_audio"])},
    optional={"text": st.text(max_size=8) | _scalars, "image_url": _words, "detail": _words},
)
_items = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "function_call", "function_call_output", "other"])},
    optional={
        "role": st.sampled_from(["user", "assistant", "system", "tool"]),
        "content": st.lists(_parts, max_size=3) | st.lists(_parts, max_size=3) | _values,
        "id": st.none() | _words | _scalars,
        "call_id": _scalars | _words,
        "name": _words | _scalars,
        "arguments": st.sampled_from(["{}", '{"a": 1}', "[]", "{"]) | _scalars,
        "output": _scalars | _words,
    },
)
_response = st.fixed_dictionaries(
    {},
    optional={
        "input": st.lists(_items | _values, max_size=3),
        "instructions": _scalars | _words,
        "tools": st.lists(_values, max_size=2),
        "tool_choice": _values,
        "max_output_tokens": _scalars,
        "conversation": st.sampled_from(["auto", "none", "x"]),
        "metadata": _values,
    },
)
_any_event = st.fixed_dictionaries(
    {"type": st.sampled_from([*events.SERVED, *events.AUDIO_EVENTS, "other"])},
    optional={
        "event_id": st.text(max_size=8) | _values,
        "session": _response | _values,
        "item": _items | _values,
        "item_id": _words | _scalars,
        "previous_item_id": st.none() | st.just("root") | _values,
        "response": _response | _values,
        "response_id": st.none() | _words,
    },
)
_events = (
    _any_event
    | st.fixed_dictionaries({"type": st.just("conversation.item.create"), "item": _items})
    | st.fixed_dictionaries({"type": st.just("response.create"), "response": _response})
    | st.fixed_dictionaries({"type": st.just("session.update"), "session": _response})
)


@given(_events)
@examples(max_examples=1000, deadline=None)
def test_any_event_is_served_or_refused_with_an_event_error(body: dict[str, Any]) -> None:
    """Whatever a client sends, parsing it and making a response of it either works or raises
    ``EventError``: never another exception, which the socket would only log."""
    try:
        event = events.parse(json.dumps(body).encode())
    except EventError:
        return
    if isinstance(event, events.ResponseCreate):
        items = [item for item in event.input or [] if not isinstance(item, events.Reference)]
        with contextlib.suppress(EventError):
            turn.to_neutral(Settings(model="m").updated(event.changes), items, ["vision", "tools"])
    if isinstance(event, events.ItemCreate):
        talk = Conversation()
        talk.add(event.item, None)
        with contextlib.suppress(EventError):
            turn.to_neutral(Settings(model="m"), talk.items, [])
        render.event("conversation.item.added", item=event.item)
