"""Legacy completions and model lookup through the whole path with the OpenAI SDK, checked
against Ollama's generate API called directly."""

from __future__ import annotations

from typing import Any

import ollama
import openai
import pytest

from llmtunnel import sim_ollama
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

MODEL = "llama3.2:3b"
PROMPT = "Tell me about tunnels tokens=12"


async def _direct(
    stack: Stack, prompt: str = PROMPT, model: str = MODEL, **kwargs: Any
) -> ollama.GenerateResponse:
    """The same request straight to the (simulated) Ollama: what the tunnel must reproduce."""
    client = ollama.AsyncClient(host=stack.ollama_url)
    reply: ollama.GenerateResponse = await client.generate(
        model=model, prompt=prompt, stream=False, **kwargs
    )
    return reply


async def test_completion_matches_ollama_generate(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    direct = await _direct(stack)
    reply = await stack.openai(key).completions.create(model=MODEL, prompt=PROMPT)
    assert reply.object == "text_completion"
    assert reply.id.startswith("cmpl-")
    assert reply.model == MODEL
    assert len(reply.choices) == 1
    assert reply.choices[0].text == direct.response
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == direct.prompt_eval_count
    assert reply.usage.completion_tokens == direct.eval_count == 12
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 12


async def test_a_list_of_one_prompt_is_served(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    reply = await stack.openai(key).completions.create(model=MODEL, prompt=[PROMPT])
    assert reply.choices[0].text == (await _direct(stack)).response


async def test_streaming_completion_matches_and_ends_properly(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    direct = await _direct(stack)
    stream = await stack.openai(key).completions.create(
        model=MODEL, prompt=PROMPT, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert {c.object for c in chunks} == {"text_completion"}
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == direct.response
    finish = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finish == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == direct.eval_count == 12
    assert chunks[-1].usage.prompt_tokens == direct.prompt_eval_count


async def test_streaming_without_usage_ends_on_the_finish_chunk(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    stream = await stack.openai(key).completions.create(model=MODEL, prompt=PROMPT, stream=True)
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


async def test_max_tokens_cuts_with_finish_reason_length(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    client = stack.openai(key)
    reply = await client.completions.create(model=MODEL, prompt="go on tokens=50", max_tokens=5)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    direct = await _direct(stack, "go on tokens=50", options={"num_predict": 5})
    assert reply.choices[0].text == direct.response
    # Without max_tokens, OpenAI's default of 16 applies (the model would say 50).
    default = await client.completions.create(model=MODEL, prompt="go on tokens=50")
    assert default.choices[0].finish_reason == "length"
    assert default.usage is not None and default.usage.completion_tokens == 16


async def test_stop_strings_end_the_text_before_them(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    prompt = "alpha beta tokens=30"
    whole = (await _direct(stack, prompt)).response or ""
    assert "client" in whole
    for stop in ("client", ["client", "nothing-like-this"]):
        reply = await stack.openai(key).completions.create(
            model=MODEL, prompt=prompt, stop=stop, max_tokens=30
        )
        text = reply.choices[0].text
        assert text == whole[: whole.index(" client")]
        assert reply.choices[0].finish_reason == "stop"


async def test_a_thinking_model_spends_no_tokens_thinking(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    direct = await _direct(stack, model="qwen3:8b", think=False, options={"num_predict": 16})
    thinking = await _direct(stack, model="qwen3:8b", options={"num_predict": 16})
    assert thinking.thinking  # left alone, the model would think first
    reply = await stack.openai(key).completions.create(model="qwen3:8b", prompt=PROMPT)
    assert reply.choices[0].text == direct.response != thinking.response
    assert reply.usage is not None and reply.usage.completion_tokens == 12


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"prompt": ["one", "two"]}, "prompt"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": [[1, 2], [3]]}, "prompt"),
        ({"n": 2}, "n"),
        ({"best_of": 2}, "best_of"),
        ({"echo": True}, "echo"),
        ({"logprobs": 2}, "logprobs"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"suffix": "return x"}, "suffix"),  # no simulated model has the insert capability
    ],
)
async def test_bad_inputs_are_400_naming_the_parameter(
    acme: tuple[Stack, str], extra: dict[str, Any], param: str
) -> None:
    stack, key = acme
    body: dict[str, Any] = {"model": MODEL, "prompt": PROMPT, **extra}
    with pytest.raises(openai.BadRequestError) as caught:
        await stack.openai(key).completions.create(**body)
    assert caught.value.param == param
    assert caught.value.status_code == 400


async def test_an_unknown_model_is_404(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    with pytest.raises(openai.NotFoundError) as caught:
        await stack.openai(key).completions.create(model="nope:1b", prompt=PROMPT)
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"


async def test_a_mid_stream_failure_raises_while_iterating(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    stream = await stack.openai(key).completions.create(
        model=MODEL, prompt="go fail-after=3", stream=True
    )
    texts: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        async for chunk in stream:
            texts.extend(choice.text for choice in chunk.choices)
            assert all(choice.finish_reason is None for choice in chunk.choices)
    assert "".join(texts) == "go the tunnel"
    assert "llama runner process has terminated" in caught.value.message


async def test_a_failure_before_the_reply_is_a_status(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    with pytest.raises(openai.APIStatusError) as caught:
        await stack.openai(key).completions.create(model=MODEL, prompt="go fail-after=3")
    assert caught.value.status_code == 502
    assert caught.value.code == "backend_error"


async def test_retrieve_a_model(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    client = stack.openai(key)
    model = await client.models.retrieve("qwen3:8b")
    listed = {m.id: m for m in (await client.models.list()).data}
    assert (model.id, model.object, model.owned_by) == ("qwen3:8b", "model", "acme")
    assert model.created == listed["qwen3:8b"].created
    for unknown in ("nope:1b", "library/nope:1b"):
        with pytest.raises(openai.NotFoundError) as caught:
            await client.models.retrieve(unknown)
        assert caught.value.code == "model_not_found"
        assert caught.value.param == "model"
        assert unknown in caught.value.message


async def test_retrieve_a_model_whose_name_holds_a_slash(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    name = "library/qwen3:8b"
    model = sim_ollama.SimModel(name, "qwen3", "8.2B", ("completion",))
    runner = await sim_ollama.serve("127.0.0.1", 0, sim_ollama.SimConfig(models=(model,)))
    try:
        url = f"http://127.0.0.1:{sim_ollama.bound_port(runner)}"
        await stack.agent("acme", "gpu-2", ollama_url=url)
        client = stack.openai(key)
        assert (await client.models.retrieve(name)).id == name  # the SDK sends library%2F…
        async with stack.http() as http:
            raw = await http.get(f"/v1/models/{name}", headers={"Authorization": f"Bearer {key}"})
        assert raw.status_code == 200
        assert raw.json() == {
            "id": name,
            "object": "model",
            "created": listed_created(await client.models.list(), name),
            "owned_by": "acme",
        }
        reply = await client.completions.create(model=name, prompt=PROMPT)
        assert reply.usage is not None and reply.usage.completion_tokens == 12
    finally:
        for agent in stack.agents[1:]:
            await agent.stop()
        await runner.cleanup()


def listed_created(models: Any, name: str) -> int:
    created: int = next(m.created for m in models.data if m.id == name)
    return created


async def test_a_key_scoped_to_models_sees_and_uses_only_those(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    async with stack.admin() as admin:
        response = await admin.post(
            "/tenants/acme/keys", json={"name": "scoped", "models": [MODEL]}
        )
        response.raise_for_status()
        client = stack.openai(response.json()["secret"])
    assert (await client.models.retrieve(MODEL)).id == MODEL
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("qwen3:8b")  # hidden, as /v1/models hides it
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await client.completions.create(model="qwen3:8b", prompt=PROMPT)
    assert caught.value.code == "model_not_allowed"
    reply = await client.completions.create(model=MODEL, prompt=PROMPT)
    assert reply.choices[0].finish_reason == "stop"
