"""The OpenAI Responses dialect (``/v1/responses``): request validation, the neutral request, and
rendering. Nothing here does I/O.

A Responses request is first rewritten as a chat-completions request (its ``input`` items become
chat messages, its flat function tools chat tools, ``text.format`` a ``response_format``…), and
``openai_chat.to_neutral`` then builds the neutral ``chat`` request from it: both dialects send
exactly the same thing through the tunnel. ``ResponseRenderer`` turns the neutral events back into
Responses SSE events (with a ``sequence_number`` on each) or one response object.

Where Ollama cannot do what the Responses API promises, the mapping is documented here:
- ``tool_choice``: ``none`` drops the tools; ``{"type": "function", "name"}`` and
  ``allowed_tools`` send only the named tools; ``auto`` and ``required`` send all. Ollama cannot
  force a call, so ``required`` makes a call possible, not certain.
- Only ``function`` tools: the built-in tools (``web_search``, ``file_search``, …) are refused.
- ``reasoning.effort``: ``none``/``minimal`` → ``think: false``, ``xhigh`` → ``high``, others as
  they are. The model's thinking comes back as a ``reasoning`` item whose one ``summary_text`` is
  the whole thinking (Ollama has no summaries); reasoning items sent back as input are skipped.
- ``instructions`` becomes the first (system) message and, as on OpenAI, is not carried over to a
  response that continues this one through ``previous_response_id``.
- Images only as ``data:`` URLs; ``file_id`` images, remote URLs and ``input_file`` are refused.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge import json_input, openai_chat
from edge.errors import ApiError, bad_request
from protocol import Delta, End
from protocol.frames import ToolCall


class _Lenient(BaseModel):
    # Unknown fields (include, truncation, user, prompt_cache_key, …) are ignored.
    model_config = ConfigDict(extra="ignore")


class ToolParam(_Lenient):
    # Any type parses, so that a built-in tool gets a clear 400 rather than a union error.
    type: str
    name: str | None = None
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


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
    tools: list[ToolParam] | None = None
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


def to_chat_request(
    req: ResponsesRequest, items: list[dict[str, Any]]
) -> openai_chat.ChatCompletionRequest:
    """The chat-completions request equivalent to ``req`` whose conversation is ``items`` (the
    stored conversation it continues, if any, then its own input)."""
    messages: list[dict[str, Any]] = []
    if req.instructions:
        messages.append({"role": "system", "content": req.instructions})
    messages += chat_messages(items)
    if not messages:
        raise bad_request("input must hold at least one message", param="input")
    tools = _tools(req)
    body: dict[str, Any] = {
        "model": req.model,
        "messages": messages,
        "max_completion_tokens": req.max_output_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
    }
    if tools:
        body["tools"] = tools
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
    req: ResponsesRequest, items: list[dict[str, Any]], capabilities: list[str]
) -> dict[str, Any]:
    """The neutral ``chat`` request, built by the chat dialect from ``to_chat_request``."""
    chat = to_chat_request(req, items)
    try:
        return openai_chat.to_neutral(chat, capabilities)
    except ApiError as exc:
        # Name this dialect's parameters, not the chat ones it was rewritten into.
        if exc.param and exc.param.startswith("messages"):
            exc.param = "input"
        elif exc.param == "response_format":
            exc.param = "text.format"
        raise


def require_tools_capability(
    req: ResponsesRequest, capabilities: list[str], tool_models: list[str]
) -> None:
    """400 ``model_does_not_support_tools``, as the chat dialect answers."""
    if _tools(req):
        openai_chat.require_tools_capability(
            openai_chat.ChatCompletionRequest(
                model=req.model,
                messages=[openai_chat.ChatMessage(role="user")],
                tools=[openai_chat.ToolSpec.model_validate(t) for t in _tools(req)],
            ),
            capabilities,
            tool_models,
        )


def _tools(req: ResponsesRequest) -> list[dict[str, Any]]:
    """The chat tools to send: the function tools that ``tool_choice`` leaves callable."""
    if not req.tools:
        return []
    tools: list[dict[str, Any]] = []
    for index, tool in enumerate(req.tools):
        if tool.type != "function":
            raise bad_request(
                f"tools of type {tool.type!r} are not supported: only `function` tools, which "
                "your code runs, work with these models",
                param=f"tools.{index}.type",
            )
        if not tool.name:
            raise bad_request("a function tool needs a name", param=f"tools.{index}.name")
        function: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        if tool.parameters is not None:
            function["parameters"] = tool.parameters
        tools.append({"type": "function", "function": function})
    choice = req.tool_choice
    if choice == "none":
        return []
    if isinstance(choice, dict):
        names = _chosen_names(choice)
        chosen = [t for t in tools if t["function"]["name"] in names]
        if not chosen:
            raise bad_request(
                "tool_choice names no function tool given in `tools`", param="tool_choice"
            )
        return chosen
    return tools


def _chosen_names(choice: dict[str, Any]) -> set[str]:
    kind = choice.get("type")
    if kind == "function" and isinstance(choice.get("name"), str):
        return {choice["name"]}
    if kind == "allowed_tools" and isinstance(choice.get("tools"), list):
        return {
            t["name"]
            for t in choice["tools"]
            if isinstance(t, dict)
            and t.get("type") == "function"
            and isinstance(t.get("name"), str)
        }
    raise bad_request(
        "tool_choice must be none, auto, required, {type: function, name} or allowed_tools "
        "listing function tools",
        param="tool_choice",
    )


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
        elif kind == "function_call":
            call = _function_call(item, where)
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id, output = item.get("call_id"), item.get("output")
            if not isinstance(call_id, str) or not call_id:
                raise bad_request("function_call_output needs its call_id", param=where)
            text = output if isinstance(output, str) else _text_of(output, f"{where}.output")
            out.append({"role": "tool", "tool_call_id": call_id, "content": text})
        elif kind == "reasoning":
            continue  # Ollama takes no past thinking in a turn of this shape; nothing is lost
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


def _text_of(parts: object, where: str) -> str:
    if isinstance(parts, list):
        texts = [p.get("text") for p in parts if isinstance(p, dict)]
        if all(isinstance(t, str) for t in texts):
            return "\n".join(t for t in texts if isinstance(t, str))
    raise bad_request("output must be a string or a list of text parts", param=where)


# ---------------------------------------------------------------------- rendering

Event = tuple[str, dict[str, Any]]  # an SSE event name and its data


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def usage(end: End) -> dict[str, Any]:
    return {
        "input_tokens": end.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": end.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": end.prompt_tokens + end.completion_tokens,
    }


class ResponseRenderer:
    """Renders one stream's neutral events as Responses SSE events, and the response object.

    At most one reasoning or message item is open while streaming; a change of kind, a tool call
    or the end closes it. Each tool call is a whole ``function_call`` item (Ollama sends calls
    whole), its arguments in one delta. ``response()`` is the object as it stands: the
    non-streaming reply is the streaming one with the events thrown away."""

    def __init__(self, req: ResponsesRequest, *, store: bool) -> None:
        self.req = req
        self.store = store
        self.id = _new_id("resp_")
        self.created_at = int(time.time())
        self.status = "in_progress"
        self.output: list[dict[str, Any]] = []
        self._open: Literal["reasoning", "message"] | None = None
        self._sequence = 0
        self._end: End | None = None
        self._error: dict[str, Any] | None = None

    # -- the response object

    def response(self) -> dict[str, Any]:
        req = self.req
        fmt = req.text.format if req.text is not None and req.text.format is not None else None
        text: dict[str, Any] = {
            "format": fmt.model_dump(by_alias=True, exclude_none=True) if fmt else {"type": "text"}
        }
        if req.text is not None and req.text.verbosity is not None:
            text["verbosity"] = req.text.verbosity
        incomplete = self._end is not None and self._end.finish_reason == "length"
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "completed_at": int(time.time()) if self.status == "completed" else None,
            "error": self._error,
            "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens,
            "model": req.model,
            "output": [dict(item) for item in self.output],
            "parallel_tool_calls": True
            if req.parallel_tool_calls is None
            else req.parallel_tool_calls,
            "previous_response_id": req.previous_response_id,
            "reasoning": {
                "effort": req.reasoning.effort if req.reasoning else None,
                "summary": req.reasoning.summary if req.reasoning else None,
            },
            "store": self.store,
            "temperature": req.temperature,
            "text": text,
            "tool_choice": req.tool_choice if req.tool_choice is not None else "auto",
            "tools": [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                    "strict": t.strict,
                }
                for t in req.tools or []
            ],
            "top_p": req.top_p,
            "truncation": "disabled",
            "usage": usage(self._end) if self._end is not None else None,
            "metadata": req.metadata or {},
            "background": False,
        }

    # -- events

    def _event(self, kind: str, **data: Any) -> Event:
        event = (kind, {"type": kind, "sequence_number": self._sequence, **data})
        self._sequence += 1
        return event

    def start(self) -> list[Event]:
        return [
            self._event("response.created", response=self.response()),
            self._event("response.in_progress", response=self.response()),
        ]

    def delta(self, frame: Delta) -> list[Event]:
        events: list[Event] = []
        if frame.thinking:
            events += self._write("reasoning", frame.thinking)
        if frame.content:
            events += self._write("message", frame.content)
        for call in frame.tool_calls:
            events += self._close()
            events += self._function_call(call)
        return events

    def end(self, end: End) -> list[Event]:
        self._end = end
        incomplete = end.finish_reason == "length"
        events = self._close("incomplete" if incomplete else "completed")
        self.status = "incomplete" if incomplete else "completed"
        kind = "response.incomplete" if incomplete else "response.completed"
        return [*events, self._event(kind, response=self.response())]

    def error(self, error: ApiError) -> list[Event]:
        """``response.failed`` (the response so far, with its error), then an ``error`` event.
        The error event also carries the error under ``error``, which is what makes the OpenAI
        SDKs raise ``APIError`` instead of ending the stream quietly."""
        events = self._close("incomplete")
        self.status = "failed"
        self._error = {"code": "server_error", "message": error.message}
        events.append(self._event("response.failed", response=self.response()))
        events.append(
            self._event(
                "error",
                code=error.code,
                message=error.message,
                param=error.param,
                error=error.body()["error"],
            )
        )
        return events

    def _write(self, kind: Literal["reasoning", "message"], text: str) -> list[Event]:
        events: list[Event] = []
        if self._open != kind:
            events += self._close()
            events += self._open_item(kind)
        item, index = self.output[-1], len(self.output) - 1
        if kind == "reasoning":
            item["summary"][0]["text"] += text
            events.append(
                self._event(
                    "response.reasoning_summary_text.delta",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    delta=text,
                )
            )
        else:
            item["content"][0]["text"] += text
            events.append(
                self._event(
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    delta=text,
                    logprobs=[],
                )
            )
        return events

    def _open_item(self, kind: Literal["reasoning", "message"]) -> list[Event]:
        self._open = kind
        index = len(self.output)
        if kind == "reasoning":
            item: dict[str, Any] = {
                "type": "reasoning",
                "id": _new_id("rs_"),
                "summary": [],
                "status": "in_progress",
            }
            part: dict[str, Any] = {"type": "summary_text", "text": ""}
            added = self._event("response.output_item.added", output_index=index, item=dict(item))
            item["summary"] = [dict(part)]
            self.output.append(item)
            return [
                added,
                self._event(
                    "response.reasoning_summary_part.added",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    part=part,
                ),
            ]
        item = {
            "type": "message",
            "id": _new_id("msg_"),
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        part = {"type": "output_text", "text": "", "annotations": []}
        added = self._event("response.output_item.added", output_index=index, item=dict(item))
        item["content"] = [dict(part)]
        self.output.append(item)
        return [
            added,
            self._event(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            ),
        ]

    def _close(self, status: str = "completed") -> list[Event]:
        if self._open is None:
            return []
        item, index = self.output[-1], len(self.output) - 1
        events: list[Event] = []
        if self._open == "reasoning":
            part = item["summary"][0]
            events.append(
                self._event(
                    "response.reasoning_summary_text.done",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    text=part["text"],
                )
            )
            events.append(
                self._event(
                    "response.reasoning_summary_part.done",
                    item_id=item["id"],
                    output_index=index,
                    summary_index=0,
                    part=dict(part),
                )
            )
        else:
            part = item["content"][0]
            events.append(
                self._event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=part["text"],
                    logprobs=[],
                )
            )
            events.append(
                self._event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=dict(part),
                )
            )
        item["status"] = status
        events.append(
            self._event("response.output_item.done", output_index=index, item=_copy(item))
        )
        self._open = None
        return events

    def _function_call(self, call: ToolCall) -> list[Event]:
        index = len(self.output)
        arguments = call["arguments"]  # JSON text already (PROTOCOL.md §2): passed as it came
        item = {
            "type": "function_call",
            "id": "fc_" + call["id"].removeprefix("call_"),
            "call_id": call["id"],
            "name": call["name"],
            "arguments": "",
            "status": "in_progress",
        }
        added = self._event("response.output_item.added", output_index=index, item=dict(item))
        item.update(arguments=arguments, status="completed")
        self.output.append(item)
        return [
            added,
            self._event(
                "response.function_call_arguments.delta",
                item_id=item["id"],
                output_index=index,
                delta=arguments,
            ),
            self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=call["name"],
                arguments=arguments,
            ),
            self._event("response.output_item.done", output_index=index, item=dict(item)),
        ]

    def complete(self, deltas: list[Delta], end: End) -> dict[str, Any]:
        """The whole response, for a request without ``stream``."""
        for frame in deltas:
            self.delta(frame)
        self.end(end)
        return self.response()


def _copy(item: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(item))  # type: ignore[no-any-return]


def output_to_items(response: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored response's output, as input items for the response that continues it."""
    return [item for item in response.get("output", []) if isinstance(item, dict)]
