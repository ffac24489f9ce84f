"""The OpenAI Responses dialect's requests (``/v1/responses``): validation and the neutral
request. Nothing here does I/O.

A Responses request is first rewritten as a chat-completions request (its ``input`` items become
chat messages, its flat function tools chat tools, ``text.format`` a ``response_format``…), and
``chat.to_neutral`` then builds the neutral ``chat`` request from it: both dialects send exactly
the same thing through the tunnel. ``render.ResponseRenderer`` turns the neutral events back into
Responses SSE events (with a ``sequence_number`` on each) or one response object.

Where Ollama cannot do what the Responses API promises, the mapping is documented here:
- Tools: ``function`` tools are sent, ``namespace`` tools flattened into their functions,
  ``custom`` tools sent as functions of one string, hosted tools (``web_search``,
  ``file_search``, ``mcp``, …) dropped and said so in a header; ``tool_choice`` narrows what is
  sent. ``tools.py`` has the whole mapping, both ways.
- ``reasoning.effort``: ``none``/``minimal`` → ``think: false``, ``xhigh`` → ``high``, others as
  they are. The model's thinking comes back as a ``reasoning`` item whose one ``summary_text`` is
  the whole thinking (Ollama has no summaries); reasoning items sent back as input are skipped.
- ``item_reference`` input items are resolved before this module sees the input
  (``references.py``); one that reaches ``chat_messages`` unresolved is a 400.
- ``instructions`` becomes the first (system) message and, as on OpenAI, is not carried over to a
  response that continues this one through ``previous_response_id``.
- Images only as ``data:`` URLs; ``file_id`` images, remote URLs and ``input_file`` are refused.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge import json_input
from edge.api import chat as openai_chat
from edge.api.responses.tools import CUSTOM_INPUT, Tools, flat_name, resolve_tools
from edge.errors import ApiError, bad_request
from protocol.requests import ChatRequest


class _Lenient(BaseModel):
    # Unknown fields (include, truncation, user, prompt_cache_key, …) are ignored.
    model_config = ConfigDict(extra="ignore")


class TextFormat(_Lenient):
    type: Literal["text", "json_object", "json_schema"] = "text"
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(_Lenient):
    format: TextFormat | None = None
    verbosity: str | None = None


class ReasoningConfig(_Lenient):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: str | None = None


class ResponsesRequest(_Lenient):
    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] = Field(default_factory=list)
    instructions: str | None = None
    # Kept as sent: tools.py reads each type its own way (a namespace holds tools of its own).
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    stream: bool = False
    store: bool | None = None
    previous_response_id: str | None = None
    metadata: dict[str, str] | None = None
    parallel_tool_calls: bool | None = None


def parse_request(body: dict[str, Any]) -> ResponsesRequest:
    """Validate ``body``; a 400 naming the first offending parameter otherwise."""
    try:
        req = ResponsesRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"])
        raise bad_request(f"Invalid value for '{param}': {first['msg']}", param=param) from None
    if isinstance(req.tool_choice, str) and req.tool_choice not in ("none", "auto", "required"):
        raise bad_request(
            "tool_choice must be none, auto, required or a function tool choice",
            param="tool_choice",
        )
    return req


def input_items(req: ResponsesRequest) -> list[dict[str, Any]]:
    """The request's ``input`` as a list of items (a string is one user message)."""
    if isinstance(req.input, str):
        return [{"type": "message", "role": "user", "content": req.input}]
    return list(req.input)


# ---------------------------------------------------------------------- request → neutral


def request_tools(req: ResponsesRequest) -> Tools:
    """``req``'s tools as the model gets them (``tools.py``)."""
    return resolve_tools(req.tools, req.tool_choice)


def to_chat_request(
    req: ResponsesRequest, items: list[dict[str, Any]], tools: Tools | None = None
) -> openai_chat.ChatCompletionRequest:
    """The chat-completions request equivalent to ``req`` whose conversation is ``items`` (the
    stored conversation it continues, if any, then its own input, references resolved);
    ``tools`` is ``request_tools(req)`` when the caller already has it."""
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    messages += chat_messages(items)
    if not messages:
        raise bad_request("input must hold at least one message", param="input")
    chat_tools = (tools if tools is not None else request_tools(req)).chat
    body: dict[str, Any] = {
        "model": req.model,
        "messages": messages,
        "max_completion_tokens": req.max_output_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
    }
    if chat_tools:
        body["tools"] = chat_tools
    fmt = req.text.format if req.text is not None else None
    if fmt is not None and fmt.type == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif fmt is not None and fmt.type == "json_schema":
        if not isinstance(fmt.schema_, dict):
            raise bad_request(
                "text.format.schema must be a JSON schema object", param="text.format.schema"
            )
        body["response_format"] = {"type": "json_schema", "json_schema": {"schema": fmt.schema_}}
    effort = req.reasoning.effort if req.reasoning is not None else None
    if effort is not None:
        body["reasoning_effort"] = "high" if effort == "xhigh" else effort
    return openai_chat.ChatCompletionRequest.model_validate(body)


def to_neutral(
    req: ResponsesRequest,
    items: list[dict[str, Any]],
    capabilities: list[str],
    tools: Tools | None = None,
) -> ChatRequest:
    """The neutral ``chat`` request, built by the chat dialect from ``to_chat_request``."""
    chat = to_chat_request(req, items, tools)
    try:
        return openai_chat.to_neutral(chat, capabilities)
    except ApiError as exc:
        # Name this dialect's parameters, not the chat ones it was rewritten into.
        if exc.param and exc.param.startswith("messages"):
            exc.param = "input"
        elif exc.param == "response_format":
            exc.param = "text.format"
        raise


def chat_messages(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Responses input items as chat-completions messages. Function calls join the assistant
    turn before them; each function call output becomes a ``tool`` message."""
    out: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"input.{index}"
        if not isinstance(item, dict):
            raise bad_request("an input item must be an object", param=where)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            out.append(_message(item, where))
        elif kind in ("function_call", "custom_tool_call"):
            call = _function_call(item, where) if kind == "function_call" else _custom(item, where)
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str) or not call_id:
                raise bad_request("function_call_output needs its call_id", param=where)
            text = output if isinstance(output, str) else _text_of(output, f"{where}.output")
            out.append({"role": "tool", "tool_call_id": call_id, "content": text})
        elif kind == "reasoning":
            continue  # Ollama takes no past thinking in a turn of this shape; nothing is lost
        elif kind == "item_reference":
            raise bad_request(
                f"item_reference {item.get('id')!r} could not be resolved", param=where
            )
        else:
            raise bad_request(f"input items of type {kind!r} are not supported", param=where)
    return out


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise bad_request(
            "role must be user, assistant, system or developer", param=f"{where}.role"
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise bad_request("content must be a string or a list of parts", param=f"{where}.content")
    parts: list[dict[str, Any]] = []
    for number, part in enumerate(content):
        at = f"{where}.content.{number}"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text") and isinstance(part.get("text"), str):
            parts.append({"type": "text", "text": part["text"]})
        elif kind == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "text", "text": part["refusal"]})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
                raise bad_request(
                    "only base64 `data:` image URLs are supported; remote image URLs and file "
                    "ids are not fetched",
                    param=at,
                )
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:
            raise bad_request(f"unsupported content part type {kind!r}", param=at)
    if all(p["type"] == "text" for p in parts):
        return {"role": role, "content": "\n".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _function_call(item: dict[str, Any], where: str) -> dict[str, Any]:
    call_id, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments", "{}")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise bad_request("a function_call item needs call_id and name", param=where)
    namespace = item.get("namespace")
    if isinstance(namespace, str) and namespace:
        name = flat_name(namespace, name)  # the name the model was given (tools.py)
    try:
        parsed = json_input.loads(arguments) if isinstance(arguments, str) else None
    except json_input.JsonInputError:
        parsed = None
    if not isinstance(parsed, dict):
        raise bad_request(
            "function_call arguments must be a JSON object encoded as a string",
            param=f"{where}.arguments",
        )
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _custom(item: dict[str, Any], where: str) -> dict[str, Any]:
    """A custom tool's call as the function call the model made (tools.py)."""
    call_id, name, text = item.get("call_id"), item.get("name"), item.get("input")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise bad_request("a custom_tool_call item needs call_id and name", param=where)
    if not isinstance(text, str):
        raise bad_request("a custom_tool_call's input must be a string", param=f"{where}.input")
    namespace = item.get("namespace")
    if isinstance(namespace, str) and namespace:
        name = flat_name(namespace, name)
    arguments = json.dumps({CUSTOM_INPUT: text}, ensure_ascii=False)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _text_of(parts: object, where: str) -> str:
    if isinstance(parts, list):
        texts = [p.get("text") for p in parts if isinstance(p, dict)]
        if all(isinstance(t, str) for t in texts):
            return "\n".join(t for t in texts if isinstance(t, str))
    raise bad_request("output must be a string or a list of text parts", param=where)
