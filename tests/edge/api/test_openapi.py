"""The OpenAPI document: complete and consistent (tests/e2e/test_openapi.py checks it is true)."""

from __future__ import annotations

import pytest

from edge.api import openapi

DOC = openapi.document("https://acme.example.com")


def _refs(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_every_reference_resolves() -> None:
    schemas = DOC["components"]["schemas"]
    refs = _refs(DOC)
    assert len(refs) >= 10
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas, ref


def test_request_schemas_are_the_validation_models() -> None:
    chat = DOC["components"]["schemas"]["ChatCompletionRequest"]
    assert set(chat["required"]) == {"model", "messages"}
    assert {"max_completion_tokens", "tools", "response_format", "reasoning_effort"} <= set(
        chat["properties"]
    )
    messages = DOC["components"]["schemas"]["MessagesRequest"]
    assert "max_tokens" in messages["required"]


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/v1/models", "get"),
        ("/v1/models/{model}", "get"),
        ("/v1/chat/completions", "post"),
        ("/v1/completions", "post"),
        ("/v1/embeddings", "post"),
        ("/v1/responses", "post"),
        ("/v1/responses/{response_id}", "get"),
        ("/v1/responses/{response_id}", "delete"),
        ("/v1/messages", "post"),
        ("/v1/messages/count_tokens", "post"),
    ],
)
def test_every_public_endpoint_is_described(path: str, method: str) -> None:
    operation = DOC["paths"][path][method]
    assert "200" in operation["responses"]
    assert operation["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
