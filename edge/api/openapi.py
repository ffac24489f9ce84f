"""``GET /openapi.json``: the public API, described from the models that validate it.

Request schemas come from the same pydantic models the handlers validate with, so the document
cannot drift from what the edge accepts. Responses are rendered by the dialects as plain dicts;
the response models below describe them, and the tests validate real replies against them
(``extra="forbid"``), so a renderer that changes shape fails a test until this file follows.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from edge.api import chat as openai_chat
from edge.api import completions as openai_completions
from edge.api import embeddings as openai_embeddings
from edge.api.anthropic import request as anthropic_messages
from edge.api.responses import request as openai_responses


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Model(_Shape):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(_Shape):
    object: Literal["list"]
    data: list[Model]


class Usage(_Shape):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ToolCallFunction(_Shape):
    name: str
    arguments: str  # a JSON object, encoded


class ToolCall(_Shape):
    id: str
    type: Literal["function"]
    function: ToolCallFunction


class AssistantMessage(_Shape):
    role: Literal["assistant"]
    content: str
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None


class ChatChoice(_Shape):
    index: int
    message: AssistantMessage
    logprobs: None
    finish_reason: Literal["stop", "length", "tool_calls"]


class ChatCompletion(_Shape):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(_Shape):
    text: str
    index: int
    logprobs: None
    finish_reason: Literal["stop", "length"] | None


class Completion(_Shape):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class Embedding(_Shape):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str  # a base64 string with encoding_format: base64


class EmbeddingUsage(_Shape):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(_Shape):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class AnthropicUsage(_Shape):
    input_tokens: int
    output_tokens: int


class AnthropicMessage(_Shape):
    id: str
    type: Literal["message"]
    role: Literal["assistant"]
    model: str
    content: list[dict[str, Any]]  # text, thinking and tool_use blocks
    stop_reason: Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"] | None
    stop_sequence: str | None
    usage: AnthropicUsage


class ResponseObject(BaseModel):
    """The Responses API's object; the full shape is OpenAI's (tests validate replies against
    the OpenAI SDK's own model), so only its frame is spelled out here."""

    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["response"]
    created_at: float
    status: Literal["completed", "incomplete", "failed"]
    model: str
    output: list[dict[str, Any]]


class DeletedResponse(_Shape):
    id: str
    object: Literal["response"]
    deleted: Literal[True]


class TokenCount(_Shape):
    input_tokens: int


class ErrorDetail(_Shape):
    message: str
    type: str
    param: str | None
    code: str


class Error(_Shape):
    error: ErrorDetail


_REQUESTS: dict[str, type[BaseModel]] = {
    "ChatCompletionRequest": openai_chat.ChatCompletionRequest,
    "CompletionRequest": openai_completions.CompletionRequest,
    "EmbeddingRequest": openai_embeddings.EmbeddingRequest,
    "ResponsesRequest": openai_responses.ResponsesRequest,
    "MessagesRequest": anthropic_messages.MessagesRequest,
    "CountTokensRequest": anthropic_messages.CountTokensRequest,
}
_RESPONSES: tuple[type[BaseModel], ...] = (
    ModelList,
    Model,
    ChatCompletion,
    Completion,
    EmbeddingList,
    ResponseObject,
    DeletedResponse,
    AnthropicMessage,
    TokenCount,
    Error,
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(name)}}


_ERRORS = {
    str(status): {"description": text, "content": _json("Error")}
    for status, text in (
        (400, "invalid request"),
        (401, "missing, wrong, revoked or expired key"),
        (403, "model not allowed for this key"),
        (404, "unknown model"),
        (429, "rate limit or token budget"),
        (502, "the backend failed"),
        (503, "no machine online, or all busy"),
        (504, "the backend timed out"),
    )
}


def _operation(
    summary: str, response: str, request: str | None = None, streams: bool = False
) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "success", "content": _json(response)}
    if streams:
        ok["content"]["text/event-stream"] = {
            "schema": {"type": "string", "description": "server-sent events, with stream: true"}
        }
    operation: dict[str, Any] = {"summary": summary, "responses": {"200": ok, **_ERRORS}}
    if request is not None:
        operation["requestBody"] = {"required": True, "content": _json(request)}
    return operation


def document(server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the public API, served at ``server_url``."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (model, "validation") for model in _REQUESTS.values()
    ]
    models += [(model, "serialization") for model in _RESPONSES]
    _, schemas = models_json_schema(models, ref_template="#/components/schemas/{model}")
    model_path = {
        "name": "model",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "a model name or alias; may contain ':' and '/'",
    }
    response_path = {
        "name": "response_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmtunnel",
            "version": "1",
            "description": "OpenAI- and Anthropic-compatible API of private GPU machines.",
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}, {"apiKey": []}],
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
        },
        "paths": {
            "/v1/models": {"get": _operation("Models this key may use", "ModelList")},
            "/v1/models/{model}": {
                "get": {**_operation("One model", "Model"), "parameters": [model_path]}
            },
            "/v1/chat/completions": {
                "post": _operation(
                    "OpenAI chat completion", "ChatCompletion", "ChatCompletionRequest", True
                )
            },
            "/v1/completions": {
                "post": _operation(
                    "OpenAI legacy completion", "Completion", "CompletionRequest", True
                )
            },
            "/v1/embeddings": {
                "post": _operation("OpenAI embeddings", "EmbeddingList", "EmbeddingRequest")
            },
            "/v1/responses": {
                "post": _operation(
                    "OpenAI Responses API", "ResponseObject", "ResponsesRequest", True
                )
            },
            "/v1/responses/{response_id}": {
                "get": {
                    **_operation("A stored response (tenants with storage on)", "ResponseObject"),
                    "parameters": [response_path],
                },
                "delete": {
                    **_operation("Delete a stored response", "DeletedResponse"),
                    "parameters": [response_path],
                },
            },
            "/v1/messages": {
                "post": _operation("Anthropic message", "AnthropicMessage", "MessagesRequest", True)
            },
            "/v1/messages/count_tokens": {
                "post": _operation(
                    "Anthropic token count (an estimate)", "TokenCount", "CountTokensRequest"
                )
            },
        },
    }


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document(f"{request.scheme}://{request.host}"))
