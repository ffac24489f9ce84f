"""Rendering the OpenAI Responses dialect: neutral events as Responses SSE events (each with a
``sequence_number``) or one response object.

An output item's id carries its response's: ``{rs_|msg_|fc_|ctc_}{the response id's hex}{the
item's index in hex}``. An ``item_reference`` to it then names the stored response to look in
(``references.py``), and the store needs no index of items."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from edge.api.responses.request import ResponsesRequest
from edge.api.responses.tools import CUSTOM_INPUT, Tools, resolve_tools
from edge.errors import ApiError
from protocol import Delta, End
from protocol.frames import ToolCall

Event = tuple[str, dict[str, Any]]  # an SSE event name and its data
ItemKind = Literal["reasoning", "message"]


@dataclass(frozen=True, slots=True)
class _Kind:
    """How the Responses API writes one kind of streamed item: the model's thinking as a
    ``reasoning`` item with one ``summary_text`` part, its text as a ``message`` with one
    ``output_text`` part. Both stream the same way; only these names differ."""

    id_prefix: str
    item: dict[str, Any]  # the item's fields after type and id, parts empty
    parts: str  # the field holding the parts
    part: dict[str, Any]  # the one part, empty
    index: str  # how events name the part's index
    part_added: str
    part_done: str
    text_delta: str
    text_done: str
    text_extra: dict[str, Any]  # fields the text events carry besides the text


_KINDS: dict[str, _Kind] = {
    "reasoning": _Kind(
        "rs_",
        {"summary": [], "status": "in_progress"},
        "summary",
        {"type": "summary_text", "text": ""},
        "summary_index",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        {},
    ),
    "message": _Kind(
        "msg_",
        {"role": "assistant", "status": "in_progress", "content": []},
        "content",
        {"type": "output_text", "text": "", "annotations": []},
        "content_index",
        "response.content_part.added",
        "response.content_part.done",
        "response.output_text.delta",
        "response.output_text.done",
        {"logprobs": []},
    ),
}


RESPONSE_PREFIX = "resp_"
RESPONSE_HEX = 24  # the hex digits of a response id after its prefix
ITEM_PREFIXES = ("rs_", "msg_", "fc_", "ctc_")


def response_of(item_id: str) -> str | None:
    """The id of the response an output item of this edge belongs to, read from the item's id;
    ``None`` for an id this edge did not make."""
    for prefix in ITEM_PREFIXES:
        if item_id.startswith(prefix):
            rest = item_id[len(prefix) :]
            head, index = rest[:RESPONSE_HEX], rest[RESPONSE_HEX:]
            if len(head) == RESPONSE_HEX and index and _is_hex(head + index):
                return RESPONSE_PREFIX + head
    return None


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


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

    def __init__(self, req: ResponsesRequest, *, store: bool, tools: Tools | None = None) -> None:
        self.req = req
        self.store = store
        self.tools = tools if tools is not None else resolve_tools(req.tools, req.tool_choice)
        self.id = RESPONSE_PREFIX + secrets.token_hex(RESPONSE_HEX // 2)
        self.created_at = int(time.time())
        self.status = "in_progress"
        self.output: list[dict[str, Any]] = []
        self._open: ItemKind | None = None
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
            "tools": _copy(self.tools.echo),  # what the model was given (tools.py)
            "top_p": req.top_p,
            "truncation": "disabled",
            "usage": usage(self._end) if self._end is not None else None,
            "metadata": req.metadata or {},
            "background": False,
        }

    # -- events

    def _item_id(self, prefix: str) -> str:
        """The id of the next output item (see the module's docstring)."""
        return f"{prefix}{self.id.removeprefix(RESPONSE_PREFIX)}{len(self.output):x}"

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

    def _write(self, kind: ItemKind, text: str) -> list[Event]:
        events: list[Event] = []
        if self._open != kind:
            events += self._close()
            events += self._open_item(kind)
        spec, item, where = _KINDS[kind], self.output[-1], self._where()
        item[spec.parts][0]["text"] += text
        events.append(self._event(spec.text_delta, **where, delta=text, **spec.text_extra))
        return events

    def _open_item(self, kind: ItemKind) -> list[Event]:
        self._open = kind
        spec = _KINDS[kind]
        item = {"type": kind, "id": self._item_id(spec.id_prefix), **spec.item}
        index = len(self.output)
        added = self._event("response.output_item.added", output_index=index, item=_copy(item))
        item[spec.parts] = [dict(spec.part)]
        self.output.append(item)
        return [added, self._event(spec.part_added, **self._where(), part=dict(spec.part))]

    def _close(self, status: str = "completed") -> list[Event]:
        if self._open is None:
            return []
        spec, item, where = _KINDS[self._open], self.output[-1], self._where()
        part = item[spec.parts][0]
        item["status"] = status
        self._open = None
        return [
            self._event(spec.text_done, **where, text=part["text"], **spec.text_extra),
            self._event(spec.part_done, **where, part=dict(part)),
            self._event(
                "response.output_item.done", output_index=where["output_index"], item=_copy(item)
            ),
        ]

    def _where(self) -> dict[str, Any]:
        """Where the open item's one part is, as its events name it."""
        item, spec = self.output[-1], _KINDS[self.output[-1]["type"]]
        return {"item_id": item["id"], "output_index": len(self.output) - 1, spec.index: 0}

    def _function_call(self, call: ToolCall) -> list[Event]:
        if call["name"] in self.tools.custom:
            return self._custom_tool_call(call)
        index = len(self.output)
        arguments = call["arguments"]  # JSON text already (PROTOCOL.md §2): passed as it came
        item = {
            "type": "function_call",
            "id": self._item_id("fc_"),
            "call_id": call["id"],
            **self.tools.call_name(call["name"]),  # a namespaced tool's call as declared
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
                name=item["name"],
                arguments=arguments,
            ),
            self._event("response.output_item.done", output_index=index, item=dict(item)),
        ]

    def _custom_tool_call(self, call: ToolCall) -> list[Event]:
        """A call of a custom tool (tools.py): its ``input`` is the one string argument the
        model was asked for; arguments of another shape are passed as their JSON text."""
        index = len(self.output)
        try:
            arguments = json.loads(call["arguments"])
        except ValueError:
            arguments = None
        text = arguments.get(CUSTOM_INPUT) if isinstance(arguments, dict) else None
        if not isinstance(text, str):
            text = call["arguments"]
        item = {
            "type": "custom_tool_call",
            "id": self._item_id("ctc_"),
            "call_id": call["id"],
            **self.tools.call_name(call["name"]),
            "input": "",
        }
        added = self._event("response.output_item.added", output_index=index, item=dict(item))
        item["input"] = text
        self.output.append(item)
        return [
            added,
            self._event(
                "response.custom_tool_call_input.delta",
                item_id=item["id"],
                output_index=index,
                delta=text,
            ),
            self._event(
                "response.custom_tool_call_input.done",
                item_id=item["id"],
                output_index=index,
                input=text,
            ),
            self._event("response.output_item.done", output_index=index, item=dict(item)),
        ]

    def body(self, deltas: list[Delta], end: End) -> dict[str, Any]:
        """The whole response, for a request without ``stream``."""
        for frame in deltas:
            self.delta(frame)
        self.end(end)
        return self.response()


def _copy(item: Any) -> Any:
    return json.loads(json.dumps(item))


def output_to_items(response: dict[str, Any]) -> list[dict[str, Any]]:
    """A stored response's output, as input items for the response that continues it."""
    return [item for item in response.get("output", []) if isinstance(item, dict)]
