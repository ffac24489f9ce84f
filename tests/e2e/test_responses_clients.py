"""Third-party clients' real Responses requests (tests/e2e/fixtures/, captured from Codex CLI and
Vercel's AI SDK) replayed through the whole path with httpx, and the edge's handling of the
tools and input items those clients send: namespaces, hosted tools, ``item_reference``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.responses import FunctionToolParam, Response, ResponseStreamEvent
from pydantic import TypeAdapter

from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
DROPPED = "x-llmtunnel-dropped-tools"
WEATHER_TOOL: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "look up the weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
    "strict": False,
}


def _fixture(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((FIXTURES / name).read_text())["body"]
    return body


async def _post(stack: Stack, key: str, body: dict[str, Any]) -> httpx.Response:
    async with stack.http() as http:
        return await http.post(
            "/v1/responses", json=body, headers={"Authorization": f"Bearer {key}"}
        )


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    """The SSE events of a streamed reply, each checked against the OpenAI SDK's types."""
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for block in response.text.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        name = next(line[7:] for line in lines if line.startswith("event: "))
        data = json.loads(next(line[6:] for line in lines if line.startswith("data: ")))
        assert data["type"] == name
        STREAM_EVENT.validate_python(data)
        events.append(data)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def _final(events: list[dict[str, Any]]) -> Response:
    assert events[-1]["type"] == "response.completed"
    return Response.model_validate(events[-1]["response"])


async def _storage(stack: Stack, slug: str, on: bool) -> None:
    async with stack.admin() as admin:
        response = await admin.patch(f"/tenants/{slug}", json={"store_responses": on})
        response.raise_for_status()


async def test_codexs_first_request_runs_with_its_namespace_and_web_search(
    acme: tuple[Stack, str],
) -> None:
    stack, key = acme
    body = _fixture("codex_first_request.json")
    assert {t["type"] for t in body["tools"]} == {"function", "namespace", "web_search"}
    reply = await _post(stack, key, body)
    assert reply.status_code == 200, reply.text
    assert reply.headers[DROPPED] == "web_search"
    events = _events(reply)
    final = _final(events)
    # the simulated model called the namespaced tool by its flat name; Codex gets it as declared
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.name, c.namespace) for c in calls] == [("close_agent", "multi_agent_v1")]
    assert json.loads(calls[0].arguments) == {"target": "example"}
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert [e["name"] for e in done] == ["close_agent"]
    assert [item.type for item in final.output] == ["reasoning", "function_call"]
    # the response lists the tools the model had: the namespace, and no web_search
    kinds = [tool.type for tool in final.tools]
    assert "web_search" not in kinds and kinds.count("namespace") == 1
    assert len(kinds) == len(body["tools"]) - 1


async def test_codexs_tool_result_request_reaches_the_model(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    reply = await _post(stack, key, _fixture("codex_tool_result_request.json"))
    assert reply.status_code == 200, reply.text
    assert reply.headers[DROPPED] == "web_search"
    final = _final(_events(reply))
    # the model answered the tool's output (the simulator repeats it)
    assert final.output_text.startswith("The tool said: invalid agent id example")
    assert [item.type for item in final.output] == ["reasoning", "message"]


async def test_codex_with_an_aliased_model_gets_its_custom_apply_patch_call(
    acme: tuple[Stack, str],
) -> None:
    """With a model name Codex knows (here an alias), Codex sends a custom apply_patch tool,
    tool_search and web_search."""
    stack, key = acme
    async with stack.admin() as admin:
        answer = await admin.put("/tenants/acme/aliases/gpt-5.5", json={"model": "qwen3:8b"})
        answer.raise_for_status()
    reply = await _post(stack, key, _fixture("codex_alias_first_request.json"))
    assert reply.status_code == 200, reply.text
    assert reply.headers[DROPPED] == "tool_search, web_search"
    events = _events(reply)
    final = _final(events)
    calls = [item for item in final.output if item.type == "custom_tool_call"]
    assert [(c.name, c.input) for c in calls] == [("apply_patch", "example")]
    assert [e["input"] for e in events if e["type"] == "response.custom_tool_call_input.done"] == [
        "example"
    ]
    reply = await _post(stack, key, _fixture("codex_alias_tool_result_request.json"))
    assert reply.status_code == 200, reply.text
    answer_text = _final(_events(reply)).output_text
    assert answer_text.startswith("The tool said: apply_patch verification failed")


@pytest.mark.parametrize("storing", [False, True])
@pytest.mark.parametrize(
    "fixture", ["ai_sdk_second_step_request.json", "ai_sdk_second_step_stream_request.json"]
)
async def test_the_ai_sdks_second_step_reaches_the_model(
    acme: tuple[Stack, str], fixture: str, storing: bool
) -> None:
    stack, key = acme
    await _storage(stack, "acme", storing)
    body = _fixture(fixture)
    assert body["input"][1]["type"] == "item_reference"  # to step one's reasoning item
    reply = await _post(stack, key, body)
    assert reply.status_code == 200, reply.text
    assert DROPPED not in reply.headers
    streamed = bool(body.get("stream"))
    final = _final(_events(reply)) if streamed else Response.model_validate(reply.json())
    assert final.output_text == "The tool said: sunny, 21 C"


async def test_references_resolve_from_stored_responses(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    await _storage(stack, "acme", True)
    client = stack.openai(key)
    first = await client.responses.create(
        model="qwen3:8b", input="call get_weather for Paris", tools=[WEATHER_TOOL]
    )
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and call.type == "function_call"
    second = await _post(
        stack,
        key,
        {
            "model": "qwen3:8b",
            "tools": [WEATHER_TOOL],
            "input": [
                {"role": "user", "content": "call get_weather for Paris"},
                {"type": "item_reference", "id": reasoning.id},
                {"type": "item_reference", "id": call.id},
                {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
            ],
        },
    )
    assert second.status_code == 200, second.text
    assert Response.model_validate(second.json()).output_text == "The tool said: rain"

    # a message item: the model sees its text (more input tokens than without it)
    told = await client.responses.create(model="llama3.2:3b", input="hi tokens=9")
    message = told.output[0]
    assert message.type == "message"
    alone = await client.responses.create(model="llama3.2:3b", input="and then? tokens=2")
    body = {
        "model": "llama3.2:3b",
        "input": [
            {"type": "item_reference", "id": message.id},
            {"role": "user", "content": "and then? tokens=2"},
        ],
    }
    followed = Response.model_validate((await _post(stack, key, body)).json())
    assert alone.usage is not None and followed.usage is not None
    assert followed.usage.input_tokens > alone.usage.input_tokens + 8

    # an id that names nothing stored, and one of another tenant's responses: 400s naming them
    missing = "fc_" + "0" * 24 + "1"  # of this edge's form, but of no stored response
    await stack.tenant("globex")
    other_key = await stack.key("globex")
    await stack.agent("globex")
    await _storage(stack, "globex", True)
    for who, item_id in ((key, missing), (other_key, call.id)):
        refused = await _post(
            stack,
            who,
            {"model": "qwen3:8b", "input": [{"type": "item_reference", "id": item_id}]},
        )
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["param"] == "input.0" and str(item_id) in error["message"]


async def test_a_reference_that_cannot_be_resolved_without_storage(
    acme: tuple[Stack, str],
) -> None:
    stack, key = acme
    client = stack.openai(key)
    told = await client.responses.create(model="llama3.2:3b", input="hi tokens=3")
    body: dict[str, Any] = {
        "model": "llama3.2:3b",
        "input": [
            {"type": "item_reference", "id": told.output[0].id},
            {"role": "user", "content": "and then?"},
        ],
    }
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(**body)
    assert caught.value.param == "input.0"
    assert str(told.output[0].id) in caught.value.message
    assert "storage is off" in caught.value.message
    # the same with the message sent in full works
    full = copy.deepcopy(body)
    full["input"][0] = told.output[0].model_dump(exclude_none=True)
    assert (await client.responses.create(**full)).status == "completed"


async def test_a_request_with_only_hosted_tools_runs_without_tools(
    acme: tuple[Stack, str],
) -> None:
    stack, key = acme
    client = stack.openai(key)
    raw = await client.responses.with_raw_response.create(
        model="tinyllama:1.1b",  # no `tools` capability: nothing is sent to need it
        input="hi tokens=3",
        tools=[{"type": "web_search"}, {"type": "image_generation"}],
    )
    assert raw.headers[DROPPED] == "web_search, image_generation"
    response = raw.parse()
    assert response.status == "completed" and response.tools == []
    async with client.responses.with_streaming_response.create(
        model="qwen3:8b",
        input="hi tokens=3",
        tools=[{"type": "file_search", "vector_store_ids": ["vs_1"]}],
        stream=True,
    ) as streamed:
        assert streamed.headers[DROPPED] == "file_search"


async def test_tool_choice_naming_a_dropped_tool_is_refused(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    with pytest.raises(openai.BadRequestError) as caught:
        await stack.openai(key).responses.create(
            model="qwen3:8b",
            input="hi",
            tools=[WEATHER_TOOL, {"type": "web_search_preview"}],
            tool_choice={"type": "web_search_preview"},
        )
    assert caught.value.param == "tool_choice"
    assert "web_search_preview" in caught.value.message
