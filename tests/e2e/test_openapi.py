"""/openapi.json is served, and what the edge really answers matches what it describes."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from edge.api import openapi
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
USER = [{"role": "user", "content": "hi tokens=3"}]


async def test_the_document_is_served_with_the_callers_host(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    async with stack.http() as http:
        response = await http.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert document["servers"] == [{"url": stack.edge_url}]
    assert "/v1/chat/completions" in document["paths"]


@pytest.mark.parametrize(
    ("method", "path", "body", "shape", "status"),
    [
        ("GET", "/v1/models", None, openapi.ModelList, 200),
        ("GET", "/v1/models/qwen3:8b", None, openapi.Model, 200),
        (
            "POST",
            "/v1/chat/completions",
            {"model": "qwen3:8b", "messages": USER},
            openapi.ChatCompletion,
            200,
        ),
        (
            "POST",
            "/v1/chat/completions",
            {"model": "llama3.2:3b", "messages": USER, "tools": TOOLS},
            openapi.ChatCompletion,
            200,
        ),
        (
            "POST",
            "/v1/completions",
            {"model": "llama3.2:3b", "prompt": "hi"},
            openapi.Completion,
            200,
        ),
        (
            "POST",
            "/v1/messages",
            {
                "model": "qwen3:8b",
                "max_tokens": 64,
                "messages": USER,
                "tools": [{"name": "weather", "input_schema": {"type": "object"}}],
            },
            openapi.AnthropicMessage,
            200,
        ),
        (
            "POST",
            "/v1/embeddings",
            {"model": "nomic-embed-text:latest", "input": ["a", "b"]},
            openapi.EmbeddingList,
            200,
        ),
        (
            "POST",
            "/v1/embeddings",
            {"model": "nomic-embed-text:latest", "input": "a", "encoding_format": "base64"},
            openapi.EmbeddingList,
            200,
        ),
        (
            "POST",
            "/v1/responses",
            {"model": "qwen3:8b", "input": "hi tokens=3"},
            openapi.ResponseObject,
            200,
        ),
        (
            "POST",
            "/v1/messages/count_tokens",
            {"model": "qwen3:8b", "messages": USER},
            openapi.TokenCount,
            200,
        ),
        ("POST", "/v1/chat/completions", {"model": "nope", "messages": USER}, openapi.Error, 404),
        ("POST", "/v1/chat/completions", {"model": "qwen3:8b"}, openapi.Error, 400),
    ],
)
async def test_real_replies_match_the_documented_shapes(
    acme: tuple[Stack, str],
    method: str,
    path: str,
    body: dict[str, object] | None,
    shape: type[BaseModel],
    status: int,
) -> None:
    stack, key = acme
    async with stack.http() as http:
        response = await http.request(
            method, path, json=body, headers={"Authorization": f"Bearer {key}"}
        )
    assert response.status_code == status, response.text
    shape.model_validate(response.json())  # extra="forbid": no undocumented field either
