"""The OpenAI Responses API through the whole path with the real ``openai`` SDK, checked against
Ollama direct (the simulator behind the agent), and its opt-in per-tenant storage."""

from __future__ import annotations

import json
from typing import Any

import ollama
import openai
import pytest
from openai.types.responses import FunctionToolParam, Response, ResponseInputParam

from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

PROMPT = "Tell me about tunnels tokens=12"

TOOLS: list[FunctionToolParam] = [
    {
        "type": "function",
        "name": name,
        "description": f"look up {name}",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": False,
    }
    for name in ("get_weather", "get_time")
]


async def _direct(stack: Stack, model: str, text: str = PROMPT) -> ollama.ChatResponse:
    """The same request straight to the (simulated) Ollama: what the tunnel must reproduce."""
    client = ollama.AsyncClient(host=stack.ollama_url)
    return await client.chat(
        model=model, messages=[{"role": "user", "content": text}], stream=False
    )


async def _storage(stack: Stack, slug: str, on: bool) -> dict[str, Any]:
    async with stack.admin() as admin:
        response = await admin.patch(f"/tenants/{slug}", json={"store_responses": on})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


def _check_shape(response: Response) -> None:
    """Strict validation (the SDK itself parses without validating)."""
    Response.model_validate(response.model_dump(mode="json", exclude_unset=True))


async def test_create_matches_ollama(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    direct = await _direct(stack, "llama3.2:3b")
    response = await stack.openai(key).responses.create(
        model="llama3.2:3b", input=PROMPT, metadata={"ticket": "42"}
    )
    _check_shape(response)
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == "llama3.2:3b"
    assert [item.type for item in response.output] == ["message"]
    assert response.output_text == direct.message.content
    assert response.usage is not None
    assert response.usage.output_tokens == direct.eval_count == 12
    assert response.usage.input_tokens == direct.prompt_eval_count
    assert response.usage.total_tokens == response.usage.input_tokens + 12
    assert response.metadata == {"ticket": "42"}
    assert response.to_dict()["store"] is False  # storage is off for the tenant


async def test_instructions_become_the_system_message(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    plain = await stack.openai(key).responses.create(model="llama3.2:3b", input=PROMPT)
    told = await stack.openai(key).responses.create(
        model="llama3.2:3b", input=PROMPT, instructions="be very brief and to the point"
    )
    assert told.instructions == "be very brief and to the point"
    assert plain.usage is not None and told.usage is not None
    assert told.usage.input_tokens > plain.usage.input_tokens  # the model saw one more message


async def test_stream_deltas_and_final_response(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    direct = await _direct(stack, "llama3.2:3b")
    async with stack.openai(key).responses.stream(model="llama3.2:3b", input=PROMPT) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 1 and "".join(deltas) == direct.message.content
    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert final.output_text == direct.message.content
    assert final.status == "completed"
    assert final.usage is not None and final.usage.output_tokens == 12
    _check_shape(final)


@pytest.mark.parametrize("model", ["qwen3:8b", "llama3.2:3b"])  # mid-stream and final-chunk calls
async def test_function_calls_and_their_outputs(acme: tuple[Stack, str], model: str) -> None:
    stack, key = acme
    client = stack.openai(key)
    question = "call get_weather and get_time for Paris"
    first = await client.responses.create(model=model, input=question, tools=TOOLS)
    _check_shape(first)
    calls = [item for item in first.output if item.type == "function_call"]
    assert {call.name for call in calls} == {"get_weather", "get_time"}
    assert all(json.loads(call.arguments) == {"city": "example"} for call in calls)
    assert all(call.call_id.startswith("call_") for call in calls)
    assert all(call.id and call.id.startswith("fc_") for call in calls)
    assert len({call.call_id for call in calls}) == 2
    # the same through the stream helper
    async with client.responses.stream(model=model, input=question, tools=TOOLS) as stream:
        argument_deltas = [
            e.delta async for e in stream if e.type == "response.function_call_arguments.delta"
        ]
        final = await stream.get_final_response()
    assert [json.loads(d) for d in argument_deltas] == [{"city": "example"}] * 2
    assert {i.name for i in final.output if i.type == "function_call"} == {
        "get_weather",
        "get_time",
    }
    # the round trip: the output items go back as input, with the tool's answer
    weather = next(call for call in calls if call.name == "get_weather")
    follow_up: ResponseInputParam = [
        {"role": "user", "content": question},
        *[item.model_dump(exclude_none=True) for item in first.output],  # type: ignore[list-item]
        {"type": "function_call_output", "call_id": weather.call_id, "output": "sunny, 21 C"},
    ]
    second = await client.responses.create(model=model, input=follow_up, tools=TOOLS)
    assert "sunny, 21 C" in second.output_text
    assert second.status == "completed"


async def test_max_output_tokens_is_incomplete(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    client = stack.openai(key)
    response = await client.responses.create(
        model="llama3.2:3b", input="go on tokens=50", max_output_tokens=5
    )
    _check_shape(response)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.max_output_tokens == 5
    assert response.usage is not None and response.usage.output_tokens == 5
    stream = await client.responses.create(
        model="llama3.2:3b", input="go on tokens=50", max_output_tokens=5, stream=True
    )
    events = [event async for event in stream]
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.status == "incomplete"


async def test_reasoning_with_a_thinking_model(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    direct = await _direct(stack, "qwen3:8b")
    assert direct.message.thinking
    client = stack.openai(key)
    response = await client.responses.create(model="qwen3:8b", input=PROMPT)
    _check_shape(response)
    assert [item.type for item in response.output] == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.summary[0].text == direct.message.thinking
    assert response.output_text == direct.message.content
    async with client.responses.stream(model="qwen3:8b", input=PROMPT) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    thinking = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    assert thinking == direct.message.thinking
    assert [item.type for item in final.output] == ["reasoning", "message"]
    off = await client.responses.create(
        model="qwen3:8b", input=PROMPT, reasoning={"effort": "none"}
    )
    assert [item.type for item in off.output] == ["message"]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        (
            {
                "model": "gemma3:4b",
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "what is this?"},
                            {
                                "type": "input_image",
                                "image_url": "https://example.com/cat.png",
                                "detail": "auto",
                            },
                        ],
                    }
                ],
            },
            "input.0.content.1",
        ),
        (
            {"model": "qwen3:8b", "input": "hi", "tools": [{"type": "hologram"}]},
            "tools.0.type",
        ),
        ({"model": "tinyllama:1.1b", "input": "call get_weather", "tools": TOOLS}, "tools"),
    ],
)
async def test_bad_requests_name_their_param(
    acme: tuple[Stack, str], kwargs: dict[str, Any], param: str
) -> None:
    stack, key = acme
    with pytest.raises(openai.BadRequestError) as caught:
        await stack.openai(key).responses.create(**kwargs)
    assert caught.value.param == param
    if param == "tools":
        assert caught.value.code == "model_does_not_support_tools"
        assert "qwen3:8b" in caught.value.message and "llama3.2:3b" in caught.value.message


async def test_a_mid_stream_failure_raises_in_the_sdk(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    received: list[str] = []
    types: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        async with stack.openai(key).responses.stream(
            model="llama3.2:3b", input="go fail-after=3 tokens=20"
        ) as stream:
            async for event in stream:
                types.append(event.type)
                if event.type == "response.output_text.delta":
                    received.append(event.delta)
    assert received  # the stream had started: this is the error event, not an HTTP error
    assert types[-1] == "response.failed"  # reported before the error event raises
    assert "llama runner process has terminated" in caught.value.message


async def test_storage_off_refuses_retrieve_and_previous_response_id(
    acme: tuple[Stack, str],
) -> None:
    stack, key = acme
    client = stack.openai(key)
    response = await client.responses.create(model="llama3.2:3b", input="hi tokens=3")
    with pytest.raises(openai.NotFoundError) as missing:
        await client.responses.retrieve(response.id)
    assert "storage is off" in missing.value.message
    with pytest.raises(openai.NotFoundError):
        await client.responses.delete(response.id)
    with pytest.raises(openai.BadRequestError) as refused:
        await client.responses.create(
            model="llama3.2:3b", input="and then?", previous_response_id=response.id
        )
    assert refused.value.param == "previous_response_id"
    assert "storage is off" in refused.value.message


async def test_storage_on_keeps_continues_and_deletes(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    assert (await _storage(stack, "acme", True))["store_responses"] is True
    client = stack.openai(key)
    first = await client.responses.create(model="llama3.2:3b", input=PROMPT)
    assert first.to_dict()["store"] is True
    fetched = await client.responses.retrieve(first.id)
    assert fetched.model_dump() == first.model_dump()
    alone = await client.responses.create(model="llama3.2:3b", input="and then? tokens=4")
    followed = await client.responses.create(
        model="llama3.2:3b", input="and then? tokens=4", previous_response_id=first.id
    )
    assert alone.usage is not None and followed.usage is not None and first.usage is not None
    # the model saw the earlier turn (question and answer) before the new question
    assert followed.usage.input_tokens > alone.usage.input_tokens + first.usage.output_tokens
    assert followed.previous_response_id == first.id
    # a chain: the second continuation sees both earlier turns
    third = await client.responses.create(
        model="llama3.2:3b", input="more tokens=2", previous_response_id=followed.id
    )
    assert third.usage is not None and third.usage.input_tokens > followed.usage.input_tokens
    # store=false is not kept
    unkept = await client.responses.create(model="llama3.2:3b", input="hi tokens=2", store=False)
    assert unkept.to_dict()["store"] is False
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(unkept.id)
    # streamed responses are kept too
    async with client.responses.stream(model="llama3.2:3b", input="hi tokens=3") as stream:
        streamed = await stream.get_final_response()
    assert (await client.responses.retrieve(streamed.id)).output_text == streamed.output_text
    await client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError) as gone:
        await client.responses.retrieve(first.id)
    assert gone.value.code == "response_not_found"
    with pytest.raises(openai.NotFoundError):
        await client.responses.delete(first.id)


async def test_delete_answers_a_deleted_object(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    await _storage(stack, "acme", True)
    response = await stack.openai(key).responses.create(model="llama3.2:3b", input="hi tokens=2")
    async with stack.http() as http:
        answer = await http.delete(
            f"/v1/responses/{response.id}", headers={"Authorization": f"Bearer {key}"}
        )
    assert answer.status_code == 200
    assert answer.json() == {"id": response.id, "object": "response", "deleted": True}


async def test_another_tenant_cannot_see_a_stored_response(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    await stack.tenant("globex")
    other_key = await stack.key("globex")
    await _storage(stack, "acme", True)
    await _storage(stack, "globex", True)
    response = await stack.openai(key).responses.create(model="llama3.2:3b", input="hi tokens=2")
    other = stack.openai(other_key)
    with pytest.raises(openai.NotFoundError) as caught:
        await other.responses.retrieve(response.id)
    assert caught.value.code == "response_not_found"
    with pytest.raises(openai.NotFoundError):
        await other.responses.delete(response.id)
    with pytest.raises(openai.BadRequestError) as refused:
        await other.responses.create(
            model="llama3.2:3b", input="hi", previous_response_id=response.id
        )
    assert refused.value.param == "previous_response_id"
    # still there for its own tenant
    assert (await stack.openai(key).responses.retrieve(response.id)).id == response.id


async def test_turning_storage_off_deletes_what_was_kept(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    await _storage(stack, "acme", True)
    client = stack.openai(key)
    response = await client.responses.create(model="llama3.2:3b", input="hi tokens=2")
    result = await _storage(stack, "acme", False)
    assert result["store_responses"] is False and result["deleted_responses"] == 1
    await _storage(stack, "acme", True)
    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.retrieve(response.id)
    assert caught.value.code == "response_not_found"
    async with stack.admin() as admin:
        tenants = (await admin.get("/tenants")).json()["tenants"]
        audit = (await admin.get("/tenants/acme/audit")).json()["events"]
    assert {t["slug"]: t["store_responses"] for t in tenants} == {"acme": True}
    assert [e["subject"] for e in audit if e["action"] == "tenant.updated"][:3] == [
        "store_responses=on",
        "store_responses=off",
        "store_responses=on",
    ]


async def test_the_cli_turns_storage_on_and_off(acme: tuple[Stack, str]) -> None:
    import asyncio

    from typer.testing import CliRunner

    from llmtunnel.cli import app

    stack, key = acme
    common = ["--edge", stack.edge_url, "--admin-key", stack.admin_key, "--ca-file", stack.ca]

    def run(*args: str) -> str:
        result = CliRunner().invoke(app, ["admin", *common, "tenant", "update", "acme", *args])
        assert result.exit_code == 0, result.output
        return result.output

    on = json.loads(await asyncio.to_thread(run, "--store-responses", "--json"))
    assert on["slug"] == "acme" and on["store_responses"] is True
    response = await stack.openai(key).responses.create(model="llama3.2:3b", input="hi tokens=2")
    assert (await stack.openai(key).responses.retrieve(response.id)).id == response.id
    text = await asyncio.to_thread(run, "--no-store-responses")
    assert "response storage off" in text and "1 stored responses deleted" in text
    with pytest.raises(openai.NotFoundError):
        await stack.openai(key).responses.retrieve(response.id)
    missing = await asyncio.to_thread(
        CliRunner().invoke, app, ["admin", *common, "tenant", "update", "acme"]
    )
    assert missing.exit_code != 0
