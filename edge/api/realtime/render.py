"""The Realtime API's server events, as the ``openai`` SDK's realtime client reads them
(``openai.types.realtime``): the session, items, errors, and one response's events made from the
neutral stream. Nothing here does I/O.

A response streams like this (text; a tool call is a ``function_call`` item instead)::

    response.created
    response.output_item.added       conversation.item.added
    response.content_part.added      response.output_text.delta …
    response.output_text.done        response.content_part.done
    response.output_item.done        conversation.item.done
    response.done                    (status completed, incomplete, cancelled or failed)

The model's thinking is not sent (the Realtime API has no item for it); it is counted in the
output tokens, as on OpenAI.
"""

from __future__ import annotations

import copy
from typing import Any

from edge.api.realtime.conversation import Conversation, Item, new_id
from edge.api.realtime.errors import EventError
from edge.api.realtime.settings import Settings
from protocol import Delta, End
from protocol.frames import ToolCall

Event = dict[str, Any]


def event(kind: str, **fields: Any) -> Event:
    return {"type": kind, "event_id": new_id("event_"), **fields}


def error_event(error: EventError) -> Event:
    return event(
        "error",
        error={
            "type": error.type,
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "event_id": error.event_id,
        },
    )


def session(session_id: str, settings: Settings) -> dict[str, Any]:
    """The session as ``session.created`` and ``session.updated`` show it: the whole effective
    configuration."""
    shown: dict[str, Any] = {
        "type": "realtime",
        "object": "realtime.session",
        "id": session_id,
        "model": settings.model,
        "output_modalities": ["text"],
        "instructions": settings.instructions,
        "tools": [dict(tool) for tool in settings.tools],
        "tool_choice": copy.deepcopy(settings.tool_choice),
        "max_output_tokens": settings.max_output_tokens or "inf",
        "truncation": "disabled",  # never cut: a conversation past the context is an error
        "tracing": None,
    }
    if settings.reasoning_effort is not None:
        shown["reasoning"] = {"effort": settings.reasoning_effort}
    return shown


def usage(end: End) -> dict[str, Any]:
    return {
        "total_tokens": end.prompt_tokens + end.completion_tokens,
        "input_tokens": end.prompt_tokens,
        "output_tokens": end.completion_tokens,
        "input_token_details": {
            "text_tokens": end.prompt_tokens,
            "audio_tokens": 0,
            "image_tokens": 0,
            "cached_tokens": 0,
        },
        "output_token_details": {"text_tokens": end.completion_tokens, "audio_tokens": 0},
    }


class ResponseRenderer:
    """One response's events from its neutral stream. Its items go into ``conversation`` as they
    start (the session's, or a scratch one for a response outside it, which bounds the reply all
    the same), each ``conversation.item.added`` naming the item before it."""

    def __init__(
        self,
        settings: Settings,
        conversation: Conversation,
        conversation_id: str | None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.id = new_id("resp_")
        self.settings = settings
        self.conversation = conversation
        self.conversation_id = conversation_id
        self.metadata = metadata
        self.status = "in_progress"
        self.status_details: dict[str, Any] | None = None
        self.output: list[Item] = []
        self._open: Item | None = None  # the assistant message being written
        self._usage: dict[str, Any] | None = None

    def response(self) -> dict[str, Any]:
        return {
            "object": "realtime.response",
            "id": self.id,
            "status": self.status,
            "status_details": self.status_details,
            "output": copy.deepcopy(self.output),
            "conversation_id": self.conversation_id,
            "output_modalities": ["text"],
            "max_output_tokens": self.settings.max_output_tokens or "inf",
            "metadata": self.metadata,
            "usage": self._usage,
        }

    def created(self) -> list[Event]:
        return [event("response.created", response=self.response())]

    def delta(self, frame: Delta) -> list[Event]:
        events: list[Event] = []
        if frame.content:
            events += self._text(frame.content)
        for call in frame.tool_calls:
            events += self._close()
            events += self._function_call(call)
        return events

    def end(self, end: End) -> list[Event]:
        self._usage = usage(end)
        if end.finish_reason == "length":
            return self._done("incomplete", {"type": "incomplete", "reason": "max_output_tokens"})
        return self._done("completed", None)

    def cancelled(self) -> list[Event]:
        return self._done("cancelled", {"type": "cancelled", "reason": "client_cancelled"})

    def failed(self, error: EventError) -> list[Event]:
        details = {
            "type": "failed",
            "error": {"type": error.type, "code": error.code, "message": error.message},
        }
        return self._done("failed", details)

    # -- items

    def _where(self, item: Item) -> dict[str, Any]:
        """Where ``item`` is: always the last output item (a message closes before a call)."""
        assert self.output[-1] is item
        return {"response_id": self.id, "item_id": item["id"], "output_index": len(self.output) - 1}

    def _start(self, item: Item) -> list[Event]:
        previous = self.conversation.add(item)
        self.output.append(item)
        return [
            event(
                "response.output_item.added",
                response_id=self.id,
                output_index=len(self.output) - 1,
                item=copy.deepcopy(item),
            ),
            event("conversation.item.added", previous_item_id=previous, item=copy.deepcopy(item)),
        ]

    def _finish(self, item: Item, status: str) -> list[Event]:
        item["status"] = status
        where = self._where(item)
        return [
            event(
                "response.output_item.done",
                response_id=self.id,
                output_index=where["output_index"],
                item=copy.deepcopy(item),
            ),
            event("conversation.item.done", item=copy.deepcopy(item)),
        ]

    def _text(self, text: str) -> list[Event]:
        events: list[Event] = []
        if self._open is None:
            item: Item = {
                "id": new_id("item_"),
                "object": "realtime.item",
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            events += self._start(item)
            item["content"].append({"type": "output_text", "text": ""})
            self._open = item
            events.append(
                event(
                    "response.content_part.added",
                    **self._where(item),
                    content_index=0,
                    part={"type": "text", "text": ""},
                )
            )
        item = self._open
        self.conversation.grow(item["id"], len(text.encode()))
        item["content"][0]["text"] += text
        events.append(
            event("response.output_text.delta", **self._where(item), content_index=0, delta=text)
        )
        return events

    def _close(self, status: str = "completed") -> list[Event]:
        item, self._open = self._open, None
        if item is None:
            return []
        text = item["content"][0]["text"]
        where = {**self._where(item), "content_index": 0}
        return [
            event("response.output_text.done", **where, text=text),
            event("response.content_part.done", **where, part={"type": "text", "text": text}),
            *self._finish(item, status),
        ]

    def _function_call(self, call: ToolCall) -> list[Event]:
        arguments = call["arguments"]  # JSON text already (PROTOCOL.md §2): passed as it came
        item: Item = {
            "id": new_id("item_"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "call_id": call["id"],
            "name": call["name"],
            "arguments": "",
        }
        events = self._start(item)
        self.conversation.grow(item["id"], len(arguments.encode()))
        item["arguments"] = arguments
        where = {**self._where(item), "call_id": call["id"]}
        return [
            *events,
            event("response.function_call_arguments.delta", **where, delta=arguments),
            event(
                "response.function_call_arguments.done",
                **where,
                name=call["name"],
                arguments=arguments,
            ),
            *self._finish(item, "completed"),
        ]

    def _done(self, status: str, details: dict[str, Any] | None) -> list[Event]:
        events = self._close("completed" if status == "completed" else "incomplete")
        self.status, self.status_details = status, details
        return [*events, event("response.done", response=self.response())]
