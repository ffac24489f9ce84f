"""Rendering the Anthropic Messages dialect: neutral events (DELTA / END) as Anthropic's SSE
events or one message object. Where the mapping departs from Anthropic's API, the request
module's docstring says so."""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal

from edge.api import sse
from edge.errors import ApiError
from protocol import Delta, End
from protocol.frames import ToolCall

# Clients must send a thinking block's signature back; the edge ignores it, so it is a marker.
THINKING_SIGNATURE = "llmtunnel-unsigned"


class MessageRenderer:
    """Renders one stream's neutral events as Anthropic SSE events or one message object.

    Streaming keeps at most one text or thinking block open: a change of kind stops it and
    starts the next, with an increasing ``index``; a thinking block gets its signature just
    before it stops. Each tool call is a whole tool_use block (Ollama sends calls whole)."""

    def __init__(self, model: str, input_estimate: int = 0) -> None:
        self.model = model
        self.id = "msg_" + secrets.token_hex(12)
        self.input_estimate = input_estimate
        self._index = -1  # of the last block started
        self._open: Literal["text", "thinking"] | None = None
        self._tool_calls = 0

    def start(self) -> list[sse.Event]:
        message = self._message([], None, self.input_estimate, 0)
        return [("message_start", {"type": "message_start", "message": message})]

    def delta(self, frame: Delta) -> list[sse.Event]:
        events: list[sse.Event] = []
        if frame.thinking:
            events += self._write("thinking", frame.thinking)
        if frame.content:
            events += self._write("text", frame.content)
        for call in frame.tool_calls:
            events += self._stop()
            events += self._tool_use(call)
        return events

    def end(self, end: End) -> list[sse.Event]:
        usage = {"input_tokens": end.prompt_tokens, "output_tokens": end.completion_tokens}
        delta = {"stop_reason": self.stop_reason(end), "stop_sequence": None}
        return [
            *self._stop(),
            ("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
            ("message_stop", {"type": "message_stop"}),
        ]

    @staticmethod
    def error(error: ApiError) -> list[sse.Event]:
        return [("error", error.anthropic_body())]

    def stop_reason(self, end: End) -> str:
        if self._tool_calls or end.finish_reason == "tool_calls":
            return "tool_use"
        return "max_tokens" if end.finish_reason == "length" else "end_turn"

    def body(self, deltas: list[Delta], end: End) -> dict[str, Any]:
        """The whole reply, for a request without ``stream``."""
        content: list[dict[str, Any]] = []
        thinking = "".join(d.thinking for d in deltas)
        if thinking:
            content.append(
                {"type": "thinking", "thinking": thinking, "signature": THINKING_SIGNATURE}
            )
        text = "".join(d.content for d in deltas)
        if text:
            content.append({"type": "text", "text": text})
        for call in (c for d in deltas for c in d.tool_calls):
            self._tool_calls += 1
            content.append(_tool_use_block(call, tool_input(call)))
        return self._message(
            content, self.stop_reason(end), end.prompt_tokens, end.completion_tokens
        )

    def _message(
        self, content: list[dict[str, Any]], stop_reason: str | None, input_tokens: int, output: int
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output},
        }

    def _write(self, kind: Literal["text", "thinking"], text: str) -> list[sse.Event]:
        events: list[sse.Event] = []
        if self._open != kind:
            events += self._stop()
            self._index += 1
            self._open = kind
            block = (
                {"type": "text", "text": ""}
                if kind == "text"
                else {"type": "thinking", "thinking": "", "signature": ""}
            )
            events.append(self._block_start(block))
        delta = (
            {"type": "text_delta", "text": text}
            if kind == "text"
            else {"type": "thinking_delta", "thinking": text}
        )
        events.append(self._block_delta(delta))
        return events

    def _stop(self) -> list[sse.Event]:
        if self._open is None:
            return []
        events: list[sse.Event] = []
        if self._open == "thinking":
            events.append(
                self._block_delta({"type": "signature_delta", "signature": THINKING_SIGNATURE})
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._open = None
        return events

    def _tool_use(self, call: ToolCall) -> list[sse.Event]:
        tool_input(call)  # the SDKs parse the pieces into an object: refuse what cannot be one
        self._index += 1
        self._tool_calls += 1
        # The SDKs accumulate input_json_delta pieces; Ollama's call is whole, so one piece:
        # the JSON text the agent sent (PROTOCOL.md §2), as it came.
        return [
            self._block_start(_tool_use_block(call, {})),
            self._block_delta({"type": "input_json_delta", "partial_json": call["arguments"]}),
            ("content_block_stop", {"type": "content_block_stop", "index": self._index}),
        ]

    def _block_start(self, block: dict[str, Any]) -> sse.Event:
        return (
            "content_block_start",
            {"type": "content_block_start", "index": self._index, "content_block": block},
        )

    def _block_delta(self, delta: dict[str, Any]) -> sse.Event:
        return (
            "content_block_delta",
            {"type": "content_block_delta", "index": self._index, "delta": delta},
        )


def _tool_use_block(call: ToolCall, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": tool_use_id(call["id"]),
        "name": call["name"],
        "input": tool_input,
    }


def tool_input(call: ToolCall) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's ``tool_use.input`` must be. The agent
    sends JSON text (PROTOCOL.md §2); anything but an object there is the machine's fault, a
    502, rather than an ``input`` the client cannot use or one silently replaced by ``{}``."""
    try:
        arguments = json.loads(call["arguments"])
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        raise ApiError(
            502,
            "backend_error",
            "the machine sent tool-call arguments that are not a JSON object",
        )
    return arguments


def tool_use_id(agent_id: str) -> str:
    """Anthropic-style ``toolu_…`` ids from the agent's ``call_…`` ones. Any id works on the way
    back: tool results are matched to their call through the conversation, not the id's form."""
    return "toolu_" + agent_id.removeprefix("call_")
