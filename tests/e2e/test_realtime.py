"""The OpenAI Realtime API's text modality (``/v1/realtime``) through the whole path, with the
real ``openai`` SDK's realtime client over TLS: replies checked against Ollama direct (the
simulator behind the agent), every server event validated strictly against the SDK's types."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, TypeVar, cast

import ollama
import pytest
from openai.resources.realtime.realtime import (
    AsyncRealtimeConnection,
    AsyncRealtimeConnectionManager,
)
from openai.types.realtime import (
    ConversationItemParam,
    RealtimeConversationItemAssistantMessage,
    RealtimeErrorEvent,
    RealtimeServerEvent,
    RealtimeSessionCreateRequest,
    ResponseCreatedEvent,
    ResponseDoneEvent,
    ResponseTextDeltaEvent,
    SessionCreatedEvent,
    SessionUpdatedEvent,
)
from openai.types.websocket_connection_options import WebSocketConnectionOptions
from pydantic import TypeAdapter
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from llmtunnel import sim_ollama
from tests.e2e.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

MODEL = "llama3.2:3b"
PROMPT = "Tell me about tunnels tokens=12"
SERVER_EVENTS: TypeAdapter[RealtimeServerEvent] = TypeAdapter(RealtimeServerEvent)
E = TypeVar("E")


def _connect(stack: Stack, key: str, model: str = MODEL) -> AsyncRealtimeConnectionManager:
    options = cast(WebSocketConnectionOptions, {"ssl": stack.tls()})
    return stack.openai(key).realtime.connect(model=model, websocket_connection_options=options)


def _user(text: str) -> ConversationItemParam:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


async def _next(conn: AsyncRealtimeConnection) -> RealtimeServerEvent:
    """The next server event, validated strictly (the SDK's own parsing does not validate)."""
    async with asyncio.timeout(10):
        raw = await conn.recv_bytes()
    return SERVER_EVENTS.validate_json(raw)


async def _until(conn: AsyncRealtimeConnection, kind: str) -> list[RealtimeServerEvent]:
    """Events up to and including the next one of type ``kind``."""
    events = [await _next(conn)]
    while events[-1].type != kind:
        events.append(await _next(conn))
    return events


def _as(event: object, kind: type[E]) -> E:
    assert isinstance(event, kind), event
    return event


async def _error(conn: AsyncRealtimeConnection) -> RealtimeErrorEvent:
    return _as(await _next(conn), RealtimeErrorEvent)


async def _turn(conn: AsyncRealtimeConnection) -> tuple[str, ResponseDoneEvent]:
    """``response.create``; the text its deltas make, and its ``response.done``."""
    await conn.response.create()
    events = await _until(conn, "response.done")
    done = events[-1]
    assert isinstance(done, ResponseDoneEvent)
    text = "".join(e.delta for e in events if isinstance(e, ResponseTextDeltaEvent))
    return text, done


async def _started(conn: AsyncRealtimeConnection) -> None:
    """A session begins with ``session.created``."""
    assert (await _next(conn)).type == "session.created"


async def _say(conn: AsyncRealtimeConnection, text: str) -> None:
    await conn.conversation.item.create(item=_user(text))
    assert [e.type for e in await _until(conn, "conversation.item.done")] == [
        "conversation.item.added",
        "conversation.item.done",
    ]


async def _direct(stack: Stack, messages: list[dict[str, str]]) -> ollama.ChatResponse:
    """The same conversation straight to the (simulated) Ollama."""
    return await ollama.AsyncClient(host=stack.ollama_url).chat(model=MODEL, messages=messages)


async def _audit(stack: Stack, count: int) -> list[dict[str, Any]]:
    """The tenant's request events, newest first, once there are ``count`` of them."""
    async with stack.admin() as admin, asyncio.timeout(5):
        while True:
            events = (await admin.get("/tenants/acme/audit")).json()["events"]
            requests = [e for e in events if e["kind"] == "request"]
            if len(requests) >= count:
                return requests
            await asyncio.sleep(0.05)


async def test_a_text_conversation_matches_ollama(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    async with _connect(stack, key) as conn:
        created = _as(await _next(conn), SessionCreatedEvent)
        assert isinstance(created.session, RealtimeSessionCreateRequest)
        assert created.session.model == MODEL
        assert created.session.output_modalities == ["text"]

        await conn.session.update(
            session={"type": "realtime", "output_modalities": ["text"], "instructions": "Be brief."}
        )
        updated = _as(await _next(conn), SessionUpdatedEvent)
        assert isinstance(updated.session, RealtimeSessionCreateRequest)
        assert updated.session.instructions == "Be brief."

        await conn.conversation.item.create(item=_user(PROMPT))
        added = await _next(conn)
        assert added.type == "conversation.item.added"
        assert added.previous_item_id is None
        assert (await _next(conn)).type == "conversation.item.done"

        await conn.response.create()
        events = await _until(conn, "response.done")
        assert [e.type for e in events[:4]] == [
            "response.created",
            "response.output_item.added",
            "conversation.item.added",
            "response.content_part.added",
        ]
        assert [e.type for e in events[-5:]] == [
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "conversation.item.done",
            "response.done",
        ]
        assert {e.type for e in events[4:-5]} == {"response.output_text.delta"}
        reply_added = events[2]
        assert reply_added.type == "conversation.item.added"
        assert reply_added.previous_item_id == added.item.id  # the reply follows the question

        direct = await _direct(
            stack,
            [{"role": "system", "content": "Be brief."}, {"role": "user", "content": PROMPT}],
        )
        text = "".join(e.delta for e in events if isinstance(e, ResponseTextDeltaEvent))
        assert text == direct.message.content
        text_done = events[-5]
        assert text_done.type == "response.output_text.done" and text_done.text == text

        done = events[-1]
        assert isinstance(done, ResponseDoneEvent)
        response = done.response
        assert response.status == "completed"
        assert response.id == _as(events[0], ResponseCreatedEvent).response.id
        assert response.output is not None and len(response.output) == 1
        message = response.output[0]
        assert message.type == "message" and message.role == "assistant"
        assert message.status == "completed"
        assert [(c.type, c.text) for c in message.content] == [("output_text", text)]
        assert response.usage is not None
        assert response.usage.output_tokens == direct.eval_count == 12
        assert response.usage.input_tokens == direct.prompt_eval_count
        assert response.usage.total_tokens == (response.usage.input_tokens or 0) + 12


async def test_the_second_turn_sees_the_first(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    async with _connect(stack, key) as conn:
        await _started(conn)
        await _say(conn, "first question tokens=5")
        first, _ = await _turn(conn)
        await _say(conn, "second question tokens=7")
        second, done = await _turn(conn)
    direct = await _direct(
        stack,
        [
            {"role": "user", "content": "first question tokens=5"},
            {"role": "assistant", "content": first},
            {"role": "user", "content": "second question tokens=7"},
        ],
    )
    assert second == direct.message.content
    assert done.response.usage is not None
    assert done.response.usage.input_tokens == direct.prompt_eval_count  # all three messages
    assert done.response.usage.output_tokens == 7


async def test_audio_is_refused_with_error_events_and_text_goes_on(
    acme: tuple[Stack, str],
) -> None:
    stack, key = acme
    async with _connect(stack, key) as conn:
        await _started(conn)
        await conn.session.update(
            session={"type": "realtime", "output_modalities": ["audio"]}, event_id="evt_modes"
        )
        refused = await _error(conn)
        assert refused.error.code == "audio_not_supported"
        assert refused.error.type == "invalid_request_error"
        assert refused.error.param == "session.output_modalities"
        assert refused.error.event_id == "evt_modes"
        assert "text modality only" in refused.error.message

        await conn.input_audio_buffer.append(audio="AAAA", event_id="evt_audio")
        refused = await _error(conn)
        assert (refused.error.code, refused.error.event_id) == ("audio_not_supported", "evt_audio")
        await conn.input_audio_buffer.commit()
        assert (await _error(conn)).error.code == "audio_not_supported"

        audio_item: ConversationItemParam = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_audio", "audio": "AAAA"}],
        }
        await conn.conversation.item.create(item=audio_item)
        refused = await _error(conn)
        assert refused.error.code == "audio_not_supported"
        assert refused.error.param == "item.content.0"

        await conn.response.create(response={"output_modalities": ["audio"]})
        refused = await _error(conn)
        assert refused.error.param == "response.output_modalities"

        await conn.send_raw(
            json.dumps({"type": "session.update", "session": {"type": "transcription"}})
        )
        assert (await _error(conn)).error.code == "audio_not_supported"

        # Nothing was added, nothing runs: the session answers text as before.
        await _say(conn, "still there? tokens=3")
        text, done = await _turn(conn)
        assert done.response.status == "completed" and len(text.split()) == 3
        assert done.response.usage is not None and done.response.usage.output_tokens == 3


async def test_a_wrong_key_is_refused_before_the_socket_opens(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    with pytest.raises(InvalidStatus) as caught:
        async with _connect(stack, "sk-lt-not-a-key"):
            pass
    response = caught.value.response
    assert response.status_code == 401
    assert json.loads(response.body or b"{}")["error"]["code"] == "invalid_api_key"


async def test_plain_http_is_told_to_use_a_websocket(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    async with stack.http() as http:
        plain = await http.get(
            f"/v1/realtime?model={MODEL}", headers={"Authorization": f"Bearer {key}"}
        )
        anonymous = await http.get("/v1/realtime")
    assert plain.status_code == 400
    assert plain.json()["error"]["code"] == "websocket_required"
    assert anonymous.status_code == 401  # the key first: nothing else is said without one


async def test_the_beta_interface_is_refused_with_a_clear_error(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    options = cast(WebSocketConnectionOptions, {"ssl": stack.tls()})
    beta = stack.openai(key).beta.realtime.connect(
        model=MODEL, websocket_connection_options=options
    )
    with pytest.raises(InvalidStatus) as caught:
        async with beta:
            pass
    assert caught.value.response.status_code == 400
    body = json.loads(caught.value.response.body or b"{}")
    assert body["error"]["code"] == "realtime_beta_not_supported"
    assert "client.realtime.connect" in body["error"]["message"]


async def test_a_key_scoped_to_other_models_is_refused(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    scoped = await stack.key("acme", "scoped", models=["qwen3:8b"])
    with pytest.raises(InvalidStatus) as caught:
        async with _connect(stack, scoped, MODEL):
            pass
    assert caught.value.response.status_code == 403
    body = json.loads(caught.value.response.body or b"{}")
    assert body["error"]["code"] == "model_not_allowed"

    async with _connect(stack, scoped, "qwen3:8b") as conn:
        await _started(conn)
        await conn.session.update(session={"type": "realtime", "model": MODEL})
        refused = await _error(conn)
        assert (refused.error.code, refused.error.type) == ("model_not_allowed", "permission_error")
        await _say(conn, "scoped tokens=4")
        _, done = await _turn(conn)  # still on qwen3:8b
        assert done.response.status == "completed"


async def test_response_cancel_stops_generation_on_the_gpu(tmp_path: Path) -> None:
    async with running_stack(tmp_path, tokens_per_second=50) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        assert stack.sim is not None
        stats = stack.sim.app[sim_ollama.STATS_KEY]
        async with _connect(stack, key) as conn:
            await _started(conn)
            await _say(conn, "go on and on tokens=100000")
            await conn.response.create()
            first = await _until(conn, "response.output_text.delta")
            response_id = _as(first[0], ResponseCreatedEvent).response.id
            await conn.response.create()  # one response at a time
            busy = await _error(conn)
            assert busy.error.code == "conversation_already_has_active_response"

            await conn.response.cancel(response_id="resp_other")
            assert (await _error(conn)).error.code == "response_cancel_not_active"
            await conn.response.cancel()
            events = await _until(conn, "response.done")
            done = events[-1]
            assert isinstance(done, ResponseDoneEvent)
            assert done.response.id == response_id and done.response.status == "cancelled"
            assert done.response.status_details is not None
            assert done.response.status_details.reason == "client_cancelled"
            assert done.response.output is not None
            assert _as(
                done.response.output[0], RealtimeConversationItemAssistantMessage
            ).status == ("incomplete")
            async with asyncio.timeout(5):
                while stats.cancelled != 1:
                    await asyncio.sleep(0.01)

            await conn.response.cancel()  # nothing runs now
            assert (await _error(conn)).error.code == "response_cancel_not_active"
            # The cut reply is in the conversation; the next turn sees it and runs.
            await _say(conn, "and now briefly tokens=2")
            _, after = await _turn(conn)
            assert after.response.status == "completed"
        cancelled = [e for e in await _audit(stack, 3) if e["action"].startswith("WS")][-1]
        assert (cancelled["status"], cancelled["error_code"]) == (499, "client_cancelled")
        assert cancelled["completion_tokens"] is None  # charged an upper bound, not known


async def test_a_client_that_disconnects_cancels_its_response(tmp_path: Path) -> None:
    async with running_stack(tmp_path, tokens_per_second=50) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        assert stack.sim is not None
        stats = stack.sim.app[sim_ollama.STATS_KEY]
        async with _connect(stack, key) as conn:
            await _started(conn)
            await _say(conn, "go on and on tokens=100000")
            await conn.response.create()
            await _until(conn, "response.output_text.delta")
        async with asyncio.timeout(5):
            while stats.cancelled != 1:
                await asyncio.sleep(0.01)
        assert stats.active == 0
        response, socket = await _audit(stack, 2)
        assert response["action"] == "WS /v1/realtime response.create"
        assert (response["status"], response["error_code"]) == (499, "client_closed")
        assert (socket["action"], socket["status"]) == ("GET /v1/realtime", 101)


async def test_a_dropped_connection_cancels_its_response(tmp_path: Path) -> None:
    """No close handshake, only the TCP connection gone: the handler is cancelled."""
    async with running_stack(tmp_path, tokens_per_second=50) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        assert stack.sim is not None
        stats = stack.sim.app[sim_ollama.STATS_KEY]
        url = stack.edge_url.replace("https://", "wss://") + f"/v1/realtime?model={MODEL}"
        headers = {"Authorization": f"Bearer {key}"}
        async with connect(url, ssl=stack.tls(), additional_headers=headers) as ws:
            await ws.send(
                json.dumps({"type": "conversation.item.create", "item": _user("go tokens=100000")})
            )
            await ws.send(json.dumps({"type": "response.create"}))
            async with asyncio.timeout(10):
                while json.loads(await ws.recv())["type"] != "response.output_text.delta":
                    pass
            ws.transport.abort()
        async with asyncio.timeout(5):
            while stats.cancelled != 1:
                await asyncio.sleep(0.01)
        response, socket = await _audit(stack, 2)
        assert (response["status"], response["error_code"]) == (499, "client_closed")
        assert (socket["status"], socket["error_code"]) == (499, "client_closed")


async def test_a_shutdown_closes_open_sessions_with_1001(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    async with _connect(stack, key) as conn:
        await _started(conn)
        async with asyncio.timeout(3):  # not aiohttp's shutdown timeout: closed at once
            await stack.restart_edge()
        with pytest.raises(ConnectionClosed) as closed:
            await conn.recv_bytes()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "server shutting down")


async def test_each_response_is_audited_as_one_request(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    async with _connect(stack, key) as conn:
        await _started(conn)
        for tokens in (3, 4):
            await _say(conn, f"audited tokens={tokens}")
            await _turn(conn)
    second, first, socket = await _audit(stack, 3)
    for row, tokens in ((first, 3), (second, 4)):
        assert row["action"] == "WS /v1/realtime response.create"
        assert (row["status"], row["error_code"]) == (200, None)
        assert (row["model"], row["machine"], row["actor"]) == (MODEL, "gpu-1", "test")
        assert row["completion_tokens"] == tokens and row["prompt_tokens"] > 0
        assert 0 < row["ttft_ms"] <= row["duration_ms"]
        assert row["user_agent"].startswith("AsyncOpenAI/Python")
    assert second["prompt_tokens"] > first["prompt_tokens"]  # the second saw the first
    # The socket is a request too: its row spans the session.
    assert (socket["action"], socket["status"], socket["model"]) == ("GET /v1/realtime", 101, MODEL)
    assert socket["duration_ms"] >= first["duration_ms"] + second["duration_ms"]
    async with stack.admin() as admin:
        (usage,) = (await admin.get("/tenants/acme/usage")).json()["usage"]
    assert (usage["requests"], usage["completion_tokens"]) == (3, 7)


async def test_bad_input_gets_error_events_and_the_session_goes_on(
    acme: tuple[Stack, str],
) -> None:
    stack, key = acme
    async with _connect(stack, key) as conn:
        await _started(conn)
        await conn.response.create()  # nothing to respond to yet
        assert (await _error(conn)).error.code == "conversation_empty"
        bad: list[tuple[str | dict[str, Any], str, str | None]] = [
            ("{not json", "invalid_json", None),
            ("[1, 2]", "invalid_json", None),
            ({"event_id": "e1"}, "invalid_request", "type"),
            ({"type": "session.delete"}, "unknown_event_type", "type"),
            (
                {"type": "session.update", "session": {"max_output_tokens": 0}},
                "invalid_request",
                "session.max_output_tokens",
            ),
            (
                {"type": "session.update", "session": {"tools": [{"type": "mcp"}]}},
                "invalid_request",
                "session.tools.0.type",
            ),
            (
                {"type": "conversation.item.create", "item": {"role": "robot"}},
                "invalid_request",
                "item.role",
            ),
            ({"type": "conversation.item.delete", "item_id": "no"}, "item_not_found", "item_id"),
            ({"type": "conversation.item.retrieve", "item_id": "no"}, "item_not_found", "item_id"),
            ({"type": "response.cancel"}, "response_cancel_not_active", None),
            (
                {"type": "response.create", "response": {"conversation": "conv_x"}},
                "invalid_request",
                "response.conversation",
            ),
            ('{"type": "response.create", "response": {"temperature": NaN}}', "invalid_json", None),
            ("x" * (1024 * 1024 + 1), "event_too_large", None),
        ]
        for event, code, param in bad:
            raw = event if isinstance(event, str) else json.dumps(event)
            await conn.send_raw(raw)
            refused = await _error(conn)
            assert (refused.error.code, refused.error.param) == (code, param), raw[:80]
        assert refused.error.message == (
            "an event may have at most 1,048,576 bytes; this one has 1,048,577"
        )
        await conn.send_raw('{"type": "session.delete", "event_id": "e2"}')
        assert (await _error(conn)).error.event_id == "e2"

        await _say(conn, "after all that tokens=2")
        _, done = await _turn(conn)
        assert done.response.status == "completed"


async def test_a_message_past_the_sockets_limit_closes_it(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    async with _connect(stack, key) as conn:
        await _started(conn)
        await conn.send_raw("x" * (4 * 1024 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await conn.recv_bytes()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_the_conversation_is_bounded(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    big = "x" * 1_040_000
    async with _connect(stack, key) as conn:
        await _started(conn)
        for index in range(4):  # about 4.16 MB, under 4 MiB
            item: ConversationItemParam = {
                "type": "message",
                "role": "user",
                "id": f"big{index}",
                "content": [{"type": "input_text", "text": big}],
            }
            await conn.conversation.item.create(item=item)
            await _until(conn, "conversation.item.done")
        await conn.conversation.item.create(item=_user(big))
        full = await _error(conn)
        assert full.error.code == "conversation_full"
        assert "4,194,304 bytes" in full.error.message
        await conn.conversation.item.delete(item_id="big0")
        assert (await _next(conn)).type == "conversation.item.deleted"
        await conn.conversation.item.create(item=_user(big))
        assert (await _next(conn)).type == "conversation.item.added"


async def test_function_tools_round_trip(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "the weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
    async with _connect(stack, key) as conn:
        await _started(conn)
        await conn.session.update(session={"type": "realtime", "tools": [tool]})  # type: ignore[list-item]
        assert (await _next(conn)).type == "session.updated"
        await _say(conn, "what does get_weather say for Paris?")
        await conn.response.create()
        events = await _until(conn, "response.done")
        kinds = [e.type for e in events]
        assert "response.function_call_arguments.delta" in kinds
        (call_done,) = [e for e in events if e.type == "response.function_call_arguments.done"]
        assert call_done.name == "get_weather"
        assert json.loads(call_done.arguments) == {"city": "example"}
        done = events[-1]
        assert isinstance(done, ResponseDoneEvent) and done.response.output is not None
        call = done.response.output[-1]
        assert call.type == "function_call" and call.call_id == call_done.call_id

        await conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": call_done.call_id, "output": "sunny"}
        )
        await _until(conn, "conversation.item.done")
        text, _ = await _turn(conn)
        assert text.startswith("The tool said: sunny")


async def test_a_key_revoked_mid_session_ends_it(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    async with _connect(stack, key) as conn:
        await _started(conn)
        await _say(conn, "hello tokens=2")
        async with stack.admin() as admin:
            (await admin.delete("/tenants/acme/keys/test")).raise_for_status()
        await conn.response.create(event_id="evt_after")
        refused = await _error(conn)
        assert (refused.error.code, refused.error.event_id) == ("invalid_api_key", "evt_after")
        with pytest.raises(ConnectionClosed) as closed:
            await conn.recv_bytes()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_admission_refuses_a_response_past_the_keys_rate(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    key = await stack.key("acme", "slow", rpm=1)
    async with _connect(stack, key) as conn:
        await _started(conn)
        await _say(conn, "one tokens=2")
        _, done = await _turn(conn)
        assert done.response.status == "completed"
        await conn.response.create(event_id="evt_second")
        events = await _until(conn, "response.done")
        assert [e.type for e in events] == ["response.created", "error", "response.done"]
        error = events[1]
        assert isinstance(error, RealtimeErrorEvent)
        assert (error.error.code, error.error.type) == ("rate_limit_exceeded", "rate_limit_error")
        assert error.error.event_id == "evt_second"
        failed = events[-1]
        assert isinstance(failed, ResponseDoneEvent) and failed.response.status == "failed"
        assert failed.response.status_details is not None
        assert failed.response.status_details.error is not None
        assert failed.response.status_details.error.code == "rate_limit_exceeded"
