"""The OpenAI chat-completions dialect (``POST /v1/chat/completions``): request validation, the
neutral request, and rendering.

Nothing here does I/O. ``to_neutral`` turns a validated request into the neutral ``chat``
request that crosses the tunnel (docs/PROTOCOL.md §7); ``ChatRenderer`` turns the neutral events
(DELTA / END) back into chunks or one completion object.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge import json_input
from edge.api import sse
from edge.api.dialect import Call, TextDialect, TextRenderer
from edge.errors import bad_request
from protocol import Delta, End
from protocol.requests import ChatRequest, Message, Options, TextRequest, Tool, ToolCall


class _Lenient(BaseModel):
    # Unknown fields are ignored, as OpenAI-compatible servers do: clients send extras freely.
    model_config = ConfigDict(extra="ignore")


class FunctionCall(_Lenient):
    name: str
    arguments: str = "{}"


class FunctionToolCall(_Lenient):
    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[FunctionToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None


class FunctionSpec(_Lenient):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolSpec(_Lenient):
    type: Literal["function"]
    function: FunctionSpec


class StreamOptions(_Lenient):
    include_usage: bool = False


class ResponseFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatCompletionRequest(_Lenient):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    n: int | None = Field(default=None, ge=1)
    tools: list[ToolSpec] | None = None
    tool_choice: str | dict[str, Any] | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None


def parse_request(body: dict[str, Any]) -> ChatCompletionRequest:
    """Validate ``body``; a 400 naming the first offending parameter otherwise."""
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"])
        raise bad_request(f"Invalid value for '{param}': {first['msg']}", param=param) from None


def to_neutral(req: ChatCompletionRequest, capabilities: list[str]) -> ChatRequest:
    """The neutral ``chat`` request for ``req``, checked against the model's ``capabilities``."""
    if req.n is not None and req.n > 1:
        raise bad_request("n > 1 is not supported: ask for one choice per request", param="n")
    tools = req.tools if req.tool_choice != "none" else None
    return ChatRequest(
        req.model,
        _messages(req.messages, "vision" in capabilities),
        tuple(_tool(spec.function) for spec in tools or ()),
        Options(num_predict=req.max_completion_tokens or req.max_tokens, **sampling_options(req)),
        _format(req.response_format) if req.response_format is not None else None,
        _think(req.reasoning_effort) if req.reasoning_effort is not None else None,
    )


def _tool(function: FunctionSpec) -> Tool:
    return Tool(function.name, function.description, function.parameters)


def sampling_options(req: BaseModel) -> dict[str, Any]:
    """The OpenAI sampling fields the client set, and its stop strings, as ``Options`` fields:
    only what was set, since unlike Ollama's own layer the edge never forces temperature/top_p."""
    options: dict[str, Any] = {}
    for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty"):
        value = getattr(req, name, None)
        if value is not None:
            options[name] = value
    stop = getattr(req, "stop", None)
    if stop is not None:
        options["stop"] = (stop,) if isinstance(stop, str) else tuple(stop)
    return options


def _format(response_format: ResponseFormat) -> str | dict[str, Any] | None:
    if response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return "json"
    schema = (response_format.json_schema or {}).get("schema")
    if not isinstance(schema, dict):
        raise bad_request(
            "response_format.json_schema.schema must be a JSON schema object",
            param="response_format",
        )
    return schema


def _think(effort: str) -> bool | str:
    if effort in ("none", "minimal"):
        return False
    return effort


def _messages(messages: list[ChatMessage], vision: bool) -> tuple[Message, ...]:
    tool_names: dict[str, str] = {}
    out: list[Message] = []
    for index, message in enumerate(messages):
        text, images = _content(message.content, index)
        if images and not vision:
            raise bad_request(
                "this model does not accept images (no `vision` capability)",
                param=f"messages.{index}.content",
            )
        calls = tuple(_tool_call(call, index) for call in message.tool_calls or ())
        tool_names.update({call.id: call.name for call in calls})
        answered = message.tool_call_id if message.role == "tool" else None
        out.append(
            Message(
                "system" if message.role == "developer" else message.role,
                text,
                tuple(images),
                calls,
                tool_names.get(answered, "") if answered else "",
                answered or "",
            )
        )
    return tuple(out)


def _tool_call(call: FunctionToolCall, index: int) -> ToolCall:
    try:
        arguments = json_input.loads(call.function.arguments or "{}")
    except json_input.JsonInputError:
        raise bad_request(
            "tool call arguments must be a JSON object encoded as a string",
            param=f"messages.{index}.tool_calls",
        ) from None
    if not isinstance(arguments, dict):
        raise bad_request("tool call arguments must be a JSON object", param=f"messages.{index}")
    return ToolCall(call.function.name, arguments, call.id)


def _content(content: str | list[dict[str, Any]] | None, index: int) -> tuple[str, list[str]]:
    if content is None or isinstance(content, str):
        return content or "", []
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        kind = part.get("type")
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            images.append(_image(part.get("image_url"), index))
        else:
            raise bad_request(
                f"unsupported content part type {kind!r}", param=f"messages.{index}.content"
            )
    return "\n".join(texts), images


def _image(image_url: object, index: int) -> str:
    url = image_url.get("url") if isinstance(image_url, dict) else None
    if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
        raise bad_request(
            "only base64 `data:` image URLs are supported; remote image URLs are not fetched",
            param=f"messages.{index}.content",
        )
    return url.split(";base64,", 1)[1]


class ChatRenderer(sse.ChunkRenderer):
    """Renders one stream's neutral events as OpenAI chat-completion chunks or one completion."""

    def __init__(self, model: str, include_usage: bool = False) -> None:
        super().__init__(include_usage)
        self.model = model
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        self._tool_index = 0

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }

    def first_chunk(self) -> dict[str, Any]:
        return self._chunk({"role": "assistant", "content": ""})

    def delta_chunk(self, frame: Delta) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if frame.thinking:
            delta["reasoning_content"] = frame.thinking
        if frame.content:
            delta["content"] = frame.content
        if frame.tool_calls:
            delta["tool_calls"] = [self._tool_call(call) for call in frame.tool_calls]
        return self._chunk(delta)

    def _tool_call(self, call: dict[str, str]) -> dict[str, Any]:
        # Ollama leaves index 0 on every call; SDK stream helpers need distinct, sequential ones.
        index, self._tool_index = self._tool_index, self._tool_index + 1
        return {
            "index": index,
            "id": call["id"],
            "type": "function",
            # JSON text already (PROTOCOL.md §2), which is what OpenAI's field holds: as it came.
            "function": {"name": call["name"], "arguments": call["arguments"]},
        }

    def finish_reason(self, end: End) -> str:
        if self._tool_index:
            return "tool_calls"
        return end.finish_reason if end.finish_reason in ("stop", "length") else "stop"

    def finish_chunk(self, end: End) -> dict[str, Any]:
        return self._chunk({}, self.finish_reason(end))

    def usage_chunk(self, end: End) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": sse.usage(end),
        }

    def completion(self, deltas: list[Delta], end: End) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(d.content for d in deltas),
        }
        thinking = "".join(d.thinking for d in deltas)
        if thinking:
            message["reasoning_content"] = thinking
        calls = [self._tool_call(c) for d in deltas for c in d.tool_calls]
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": self.finish_reason(end),
                }
            ],
            "usage": sse.usage(end),
        }


class ChatDialect(TextDialect[ChatCompletionRequest]):
    def parse(self, body: dict[str, Any]) -> ChatCompletionRequest:
        return parse_request(body)

    def neutral(self, call: Call[ChatCompletionRequest]) -> TextRequest:
        return to_neutral(call.req, call.capabilities or [])

    def renderer(self, call: Call[ChatCompletionRequest], request: TextRequest) -> TextRenderer:
        options = call.req.stream_options
        return ChatRenderer(call.req.model, bool(options and options.include_usage))


DIALECT = ChatDialect()
