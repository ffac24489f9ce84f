"""One response's request: the conversation and the settings as a chat-completions request, which
the chat dialect turns into the neutral ``chat`` request (so the Realtime API sends Ollama exactly
what chat completions would). Nothing here does I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.api import chat
from edge.api.realtime.conversation import Item
from edge.api.realtime.errors import EventError, invalid
from edge.api.realtime.settings import Settings, named_tools
from edge.errors import ApiError
from protocol.requests import ChatRequest


@dataclass(frozen=True, slots=True)
class Turn:
    """A response as the pipeline's ``Call`` sees it (``edge.api.dialect.ParsedRequest``)."""

    model: str
    stream: bool = True


def chat_messages(items: list[Item]) -> tuple[list[dict[str, Any]], list[str]]:
    """The items as chat-completions messages, and the id of the item each message came from.
    A function call joins the assistant message before it; its output is a ``tool`` message."""
    messages: list[dict[str, Any]] = []
    sources: list[str] = []
    for item in items:
        if item["type"] == "message":
            messages.append({"role": item["role"], "content": _content(item["content"])})
        elif item["type"] == "function_call":
            call = {
                "id": item["call_id"],
                "type": "function",
                "function": {"name": item["name"], "arguments": item["arguments"]},
            }
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
                continue
            messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        else:  # function_call_output
            messages.append(
                {"role": "tool", "tool_call_id": item["call_id"], "content": item["output"]}
            )
        sources.append(item["id"])
    return messages, sources


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if all(part["type"] != "input_image" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return [
        {"type": "image_url", "image_url": {"url": part["image_url"]}}
        if part["type"] == "input_image"
        else {"type": "text", "text": part["text"]}
        for part in parts
    ]


def to_neutral(settings: Settings, items: list[Item], capabilities: list[str]) -> ChatRequest:
    """The neutral request for a response with ``settings`` to the conversation ``items``."""
    assert settings.model is not None
    messages, sources = chat_messages(items)
    if settings.instructions:
        messages.insert(0, {"role": "system", "content": settings.instructions})
        sources.insert(0, "")
    if not messages:
        raise invalid(
            "there is nothing to respond to: create an item (conversation.item.create) or set "
            "instructions first",
            "response",
            code="conversation_empty",
        )
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": messages,
        "stream": True,
        "max_completion_tokens": settings.max_output_tokens,
    }
    tools = named_tools(settings)
    if tools:
        body["tools"] = tools
    if settings.reasoning_effort is not None:
        body["reasoning_effort"] = settings.reasoning_effort
    try:
        return chat.to_neutral(chat.parse_request(body), capabilities)
    except ApiError as exc:
        raise _realtime_param(exc, sources) from None


def _realtime_param(error: ApiError, sources: list[str]) -> EventError:
    """The chat dialect's error, naming the item at fault instead of a chat message."""
    refused = EventError.from_api(error)
    parts = (error.param or "").split(".")
    if parts[0] == "messages" and len(parts) > 1 and parts[1].isdigit():
        source = sources[int(parts[1])] if int(parts[1]) < len(sources) else ""
        refused.param = "item" if source else "instructions"
        if source:
            refused.message = f"item {source!r}: {error.message}"
    return refused
