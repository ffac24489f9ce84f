"""/v1/embeddings through the tunnel with the OpenAI SDK, checked against Ollama direct."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncGenerator
from typing import Any

import ollama
import openai
import pytest

from agent.backend import BackendError, Finish, Piece, Vectors
from agent.ollama import OllamaBackend
from agent.pairing import pair
from agent.runner import RunOptions, run_agent
from protocol import ErrorCode
from protocol.requests import EmbedRequest, Request, UnsupportedRequest
from tests.e2e.stack import Agent, Stack

pytestmark = pytest.mark.e2e

MODEL = "nomic-embed-text:latest"


async def test_embeddings_match_ollama_in_float_and_base64(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    texts = ["tunnels carry tokens", "a second input, longer than the first one", "é ü 😀"]
    direct = await ollama.AsyncClient(host=stack.ollama_url).embed(model=MODEL, input=texts)
    client = stack.openai(key)
    floats = await client.embeddings.create(model=MODEL, input=texts)
    assert [d.index for d in floats.data] == [0, 1, 2]
    for item, expected in zip(floats.data, direct.embeddings, strict=True):
        assert item.embedding == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == direct.prompt_eval_count
    assert floats.model == MODEL

    raw = await client.embeddings.with_raw_response.create(
        model=MODEL, input=texts, encoding_format="base64"
    )
    body = raw.http_response.json()
    packed = base64.b64decode(body["data"][1]["embedding"])
    assert struct.unpack(f"<{len(packed) // 4}f", packed) == pytest.approx(
        direct.embeddings[1], rel=1e-6, abs=1e-7
    )
    # Without encoding_format the SDK asks for base64 itself and decodes it: same numbers.
    assert (await client.embeddings.create(model=MODEL, input="x")).data[0].embedding


async def test_a_single_string_and_dimensions(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    reply = await stack.openai(key).embeddings.create(model=MODEL, input="one", dimensions=16)
    assert len(reply.data) == 1
    assert len(reply.data[0].embedding) == 16
    # Ollama ignores a `dimensions` above the model's own size (and must not be asked to make
    # a billion-value vector).
    wide = await stack.openai(key).embeddings.create(model=MODEL, input="one", dimensions=10**9)
    assert len(wide.data[0].embedding) == 768


async def test_many_inputs_cross_several_frames(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    texts = [f"input number {i}" for i in range(400)]  # 400 x 3 KiB: many 256 KiB windows
    reply = await stack.openai(key).embeddings.create(model=MODEL, input=texts)
    assert [d.index for d in reply.data] == list(range(400))
    direct = await ollama.AsyncClient(host=stack.ollama_url).embed(model=MODEL, input=texts[-1:])
    assert reply.data[-1].embedding == pytest.approx(direct.embeddings[0], rel=1e-6, abs=1e-7)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL, "input": []}, "input"),
        ({"model": MODEL, "input": ""}, "input"),
        ({"model": MODEL, "input": [1, 2, 3]}, "input"),
        ({"model": MODEL, "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": MODEL, "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "llama3.2:3b", "input": "x"}, "model"),  # no embedding capability
    ],
)
async def test_bad_embedding_requests_are_400(
    acme: tuple[Stack, str], body: dict[str, Any], param: str
) -> None:
    stack, key = acme
    async with stack.http() as http:
        response = await http.post(
            "/v1/embeddings", json=body, headers={"Authorization": f"Bearer {key}"}
        )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_an_unknown_model_is_404(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    with pytest.raises(openai.NotFoundError):
        await stack.openai(key).embeddings.create(model="nope", input="x")


class _NoEmbeddings(OllamaBackend):
    """A backend that cannot embed (an older agent, or another engine)."""

    async def stream(
        self, request: Request | UnsupportedRequest
    ) -> AsyncGenerator[Piece | Vectors | Finish, None]:
        if isinstance(request, EmbedRequest):
            raise BackendError(ErrorCode.UNSUPPORTED, "this agent cannot run 'embed' requests")
        async for item in super().stream(request):
            yield item


async def test_a_backend_that_cannot_embed_is_501(stack: Stack) -> None:
    await stack.tenant("acme")
    key = await stack.key("acme")
    config = await pair(await stack.pairing_code("acme", "old"), stack.edge_url, stack.ca)
    stop = asyncio.Event()
    backend = _NoEmbeddings(stack.ollama_url)
    task = asyncio.create_task(run_agent(config, backend, RunOptions(), stop))
    stack.agents.append(Agent(config, task, stop, backend))
    await stack.wait_online("acme", "old")
    with pytest.raises(openai.APIStatusError) as caught:
        await stack.openai(key).embeddings.create(model=MODEL, input="x")
    assert caught.value.status_code == 501
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "unsupported"
