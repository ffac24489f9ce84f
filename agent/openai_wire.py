"""Neutral requests as OpenAI-compatible request bodies (vLLM, SGLang, llama.cpp's server, LM
Studio, llama-cpp-python): ``chat`` → ``/chat/completions``, ``generate`` → ``/completions``,
``embed`` → ``/embeddings`` (docs/ARCHITECTURE.md "The agent's backends").

Only what the client set goes to the runtime: an option left out of the neutral request is left
out of the body, so the runtime's (or the model's generation config's) default stands, as on
Ollama. What the agent adds: ``stream`` and ``stream_options.include_usage`` (usage comes in the
stream's last chunk), and ``chat_template_kwargs.enable_thinking`` when the client turned
thinking on or off (the switch vLLM, SGLang and llama.cpp read for Qwen3-style templates).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from agent.backend import BackendError
from protocol import ErrorCode
from protocol.requests import (
    ChatRequest,
    EmbedRequest,
    Format,
    GenerateRequest,
    Message,
    Options,
    Think,
)

JSONMap = dict[str, Any]

# Neutral option → OpenAI field. ``top_k`` is no OpenAI field, but every runtime above reads it.
_OPTIONS = {
    "num_predict": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
# The first bytes of an image, for the media type of its data: URL (the neutral request keeps
# base64 alone, as Ollama takes it).
_MAGIC = (
    (b"\x89PNG", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"RIFF", "image/webp"),
)


def chat_body(request: ChatRequest, usage: bool) -> JSONMap:
    """The streaming ``/chat/completions`` body for ``request``; ``usage`` asks for the usage
    chunk."""
    body: JSONMap = {"model": request.model, "messages": _messages(request.messages)}
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    key: value
                    for key, value in (
                        ("name", tool.name),
                        ("description", tool.description),
                        ("parameters", tool.parameters),
                    )
                    if value is not None
                },
            }
            for tool in request.tools
        ]
    _common(body, request.options, request.format, usage)
    _think(body, request.think)
    return body


def completion_body(request: GenerateRequest, usage: bool) -> JSONMap:
    """The streaming ``/completions`` body: the prompt as it is, no template. Thinking is left
    to the model (a plain completion has no template to switch it in)."""
    if request.system is not None:
        raise BackendError(
            ErrorCode.UNSUPPORTED,
            "a system prompt on a plain completion is not supported by an OpenAI-compatible"
            " runtime (its /completions has no template to put it in)",
        )
    body: JSONMap = {"model": request.model, "prompt": request.prompt}
    if request.suffix is not None:
        body["suffix"] = request.suffix
    _common(body, request.options, request.format, usage)
    return body


def embeddings_body(request: EmbedRequest) -> JSONMap:
    """The ``/embeddings`` body. ``truncate`` has no OpenAI field: the runtime's own handling
    of an input longer than the context stands (most refuse it with a 400)."""
    body: JSONMap = {"model": request.model, "input": list(request.input)}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    return body


def dumps(body: JSONMap) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _common(body: JSONMap, options: Options, output: Format, usage: bool) -> None:
    for name, field in _OPTIONS.items():
        value = getattr(options, name)
        if value is not None:
            body[field] = value
    if options.stop:
        body["stop"] = list(options.stop)
    if output == "json":
        body["response_format"] = {"type": "json_object"}
    elif isinstance(output, dict):
        schema = {"name": "response", "schema": output}
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    body["stream"] = True
    if usage:
        body["stream_options"] = {"include_usage": True}


def _think(body: JSONMap, think: Think) -> None:
    """A level is OpenAI's ``reasoning_effort``; on or off is the chat template's
    ``enable_thinking``, which templates that do not think ignore."""
    if isinstance(think, str):
        body["reasoning_effort"] = think
    elif think is not None:
        body["chat_template_kwargs"] = {"enable_thinking": think}


# ------------------------------------------------------------------ messages


def _messages(messages: tuple[Message, ...]) -> list[JSONMap]:
    """OpenAI's messages. Calls the client sent without ids get ids here, and a tool answer
    without ``tool_call_id`` answers the earliest unanswered call of its tool (Ollama matches
    by name, OpenAI by id). Earlier thinking is not sent: no OpenAI field takes it."""
    out: list[JSONMap] = []
    pending: list[tuple[str, str]] = []  # (id, name) of calls not answered yet
    for index, message in enumerate(messages):
        wire: JSONMap = {"role": message.role, "content": _content(message)}
        if message.tool_calls:
            calls = []
            for number, call in enumerate(message.tool_calls):
                call_id = call.id or f"call_{index}_{number}"
                pending.append((call_id, call.name))
                arguments = json.dumps(call.arguments, separators=(",", ":"))
                function = {"name": call.name, "arguments": arguments}
                calls.append({"id": call_id, "type": "function", "function": function})
            wire["tool_calls"] = calls
        if message.role == "tool":
            wire["tool_call_id"] = _answered(message, pending)
        out.append(wire)
    return out


def _answered(message: Message, pending: list[tuple[str, str]]) -> str:
    if message.tool_call_id:
        answered = message.tool_call_id
    else:
        named = [call for call in pending if call[1] == message.tool_name] or pending
        answered = named[0][0] if named else "call_unknown"
    pending[:] = [call for call in pending if call[0] != answered]
    return answered


def _content(message: Message) -> str | list[JSONMap]:
    if not message.images:
        return message.content
    parts: list[JSONMap] = [{"type": "text", "text": message.content}] if message.content else []
    for image in message.images:
        url = f"data:{_media_type(image)};base64,{image}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def _media_type(image: str) -> str:
    try:
        head = base64.b64decode(image[:16], validate=False)
    except (binascii.Error, ValueError):
        head = b""
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), "image/png")
