"""The Anthropic Messages dialect: request validation, the neutral request, and rendering.

Nothing here does I/O. ``to_neutral`` turns a validated ``/v1/messages`` request into the same
Ollama-shaped neutral ``chat`` request the OpenAI dialect builds (DESIGN.md "The neutral model"),
so nothing Anthropic-specific crosses the tunnel; ``MessageRenderer`` turns the neutral events
(DELTA / END) back into Anthropic's SSE events or one message object.

Where Ollama cannot do what Anthropic's API promises, the mapping is documented here:
- ``tool_choice``: ``none`` drops the tools; ``tool`` sends only the named tool, so it is the only
  one the model can call; ``auto`` and ``any`` send all tools. Ollama cannot force a call, so
  ``any``/``tool`` make a call possible, not certain.
- ``thinking``: ``enabled`` (and ``adaptive``/``between_tools``) → ``think: true``, its
  ``budget_tokens`` ignored (Ollama has no budget; ``max_tokens`` caps thinking and text together,
  as on Anthropic). ``disabled`` → ``think: false``. Absent → the model's default, as in the OpenAI
  dialect. Enabled on a model without the ``thinking`` capability is dropped rather than refused,
  because Claude Code sends it without knowing what the model can do.
- ``stop_reason``: ``length`` → ``max_tokens``, a tool call → ``tool_use``, anything else →
  ``end_turn``. Ollama removes a matched stop sequence and reports a plain ``stop`` either way, so
  the edge cannot tell a stop-sequence hit from a natural end: ``stop_sequence`` is never reported.
- Thinking signatures are placeholders: clients must echo a ``signature`` back, and the edge
  ignores it on input (past thinking is passed to Ollama as the message's ``thinking``).
- ``tool_result`` with ``is_error`` gets an ``Error: `` prefix, since Ollama's tool message has no
  such flag and the model should still learn that the tool failed.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Collection
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.errors import ApiError, bad_request
from protocol import Delta, End
from protocol.frames import ToolCall


class _Lenient(BaseModel):
    # Unknown fields (cache_control, citations, metadata, service_tier, …) are ignored: Anthropic
    # clients send extras freely and none of them changes what the model is asked.
    model_config = ConfigDict(extra="ignore")


class TextBlock(_Lenient):
    type: Literal["text"]
    text: str


class ImageSource(_Lenient):
    # Any source type parses, so that a URL or file source gets a clear 400 from to_neutral
    # instead of a union error.
    type: str
    media_type: str | None = None
    data: str | None = None
    url: str | None = None


class ImageBlock(_Lenient):
    type: Literal["image"]
    source: ImageSource


ToolResultPart = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ToolUseBlock(_Lenient):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any] = Field(default_factory=dict)


class ToolResultBlock(_Lenient):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[ToolResultPart] | None = None
    is_error: bool = False


class ThinkingBlock(_Lenient):
    type: Literal["thinking"]
    thinking: str
    signature: str | None = None


class RedactedThinkingBlock(_Lenient):
    type: Literal["redacted_thinking"]
    data: str = ""


ContentBlock = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]

# Tag names of the unions above: pydantic puts them into error locations, params leave them out.
_BLOCK_TAGS = frozenset(
    {"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking"}
)


class Message(_Lenient):
    # "system" is not in Anthropic's documentation, but Claude Code sends system reminders
    # between turns that way; they reach the model as system messages in place.
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlock]


class Tool(_Lenient):
    name: str = Field(min_length=1)
    description: str | None = None
    # Absent on Anthropic's server tools (web search, bash, …), which Ollama cannot run.
    input_schema: dict[str, Any] | None = None
    type: str | None = None


class ToolChoice(_Lenient):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None


class ThinkingConfig(_Lenient):
    type: Literal["enabled", "disabled", "adaptive", "between_tools"]
    budget_tokens: int | None = None


class CountTokensRequest(_Lenient):
    """The body of ``/v1/messages/count_tokens``: a message request without ``max_tokens``."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)  # required, as on Anthropic's API
    stream: bool = False
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)


_Request = TypeVar("_Request", bound=CountTokensRequest)


def parse_request(body: dict[str, Any]) -> MessagesRequest:
    """Validate a ``/v1/messages`` body; a 400 naming the offending parameter otherwise."""
    return _parse(MessagesRequest, body)


def parse_count_request(body: dict[str, Any]) -> CountTokensRequest:
    """Validate a ``/v1/messages/count_tokens`` body."""
    return _parse(CountTokensRequest, body)


def _parse(model: type[_Request], body: dict[str, Any]) -> _Request:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        # `content` is "string or blocks": pydantic reports both branches, and the deepest error
        # is the one about what the client actually sent.
        errors = exc.errors()
        first = max(errors, key=lambda error: len(error["loc"]))
        param = _param(first["loc"])
        raise bad_request(f"Invalid value for '{param}': {first['msg']}", param=param) from None


def _param(loc: tuple[int | str, ...]) -> str:
    """``messages.0.content.1.source`` from pydantic's location with its union labels."""
    parts: list[str] = []
    previous: int | str | None = None
    for part in loc:
        union_label = isinstance(part, str) and ("[" in part or part == "str")
        block_tag = isinstance(previous, int) and part in _BLOCK_TAGS
        if not (union_label or block_tag):
            parts.append(str(part))
        if not union_label:
            previous = part
    return ".".join(parts)


def require_tools_capability(
    req: CountTokensRequest, capabilities: Collection[str], tool_models: list[str]
) -> None:
    """400 ``model_does_not_support_tools`` when tools go to a model that cannot call them
    (the same answer the OpenAI dialect gives)."""
    if _tools(req) and "tools" not in capabilities:
        others = ", ".join(tool_models) or "none is online"
        raise ApiError(
            400,
            "model_does_not_support_tools",
            f"The model `{req.model}` does not support tools. Models that do: {others}",
            param="tools",
        )


def to_neutral(req: CountTokensRequest, capabilities: Collection[str] | None) -> dict[str, Any]:
    """The neutral ``chat`` request for ``req``. ``capabilities`` is ``None`` when the model is
    not known here (the dispatch then answers 404, or 503 with no machine online) and no
    capability is checked."""
    neutral: dict[str, Any] = {"op": "chat", "model": req.model}
    vision = capabilities is None or "vision" in capabilities
    messages = _system(req.system) + _messages(req.messages, vision)
    neutral["messages"] = messages
    tools = _tools(req)
    if tools:
        neutral["tools"] = [_tool(tool, index) for index, tool in enumerate(tools)]
    options = _options(req) if isinstance(req, MessagesRequest) else {}
    if options:
        neutral["options"] = options
    if req.thinking is not None:
        if req.thinking.type == "disabled":
            neutral["think"] = False
        elif capabilities is None or "thinking" in capabilities:
            neutral["think"] = True
    return neutral


def _options(req: MessagesRequest) -> dict[str, Any]:
    # Only what the client set: the model's own defaults stay in force otherwise.
    options: dict[str, Any] = {"num_predict": req.max_tokens}
    for name in ("temperature", "top_p", "top_k"):
        value = getattr(req, name)
        if value is not None:
            options[name] = value
    if req.stop_sequences:
        options["stop"] = list(req.stop_sequences)
    return options


def _tools(req: CountTokensRequest) -> list[Tool]:
    choice = req.tool_choice
    if not req.tools or (choice is not None and choice.type == "none"):
        return []
    if choice is not None and choice.type == "tool":
        named = [tool for tool in req.tools if tool.name == choice.name]
        if not named:
            raise bad_request(
                f"tool_choice names the tool {choice.name!r}, which is not in `tools`",
                param="tool_choice.name",
            )
        return named
    return req.tools


def _tool(tool: Tool, index: int) -> dict[str, Any]:
    if tool.input_schema is None:
        raise bad_request(
            f"tool {tool.name!r} has no input_schema; only client tools are supported, "
            f"not Anthropic's server tools (type {tool.type!r})",
            param=f"tools.{index}",
        )
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description is not None:
        function["description"] = tool.description
    return {"type": "function", "function": function}


def _system(system: str | list[TextBlock] | None) -> list[dict[str, Any]]:
    if isinstance(system, list):
        system = "\n".join(block.text for block in system)
    return [{"role": "system", "content": system}] if system else []


def _messages(messages: list[Message], vision: bool) -> list[dict[str, Any]]:
    tool_names: dict[str, str] = {}  # tool_use id → name, for Ollama's `tool_name`
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        param = f"messages.{index}.content"
        if isinstance(message.content, str):
            out.append({"role": message.role, "content": message.content})
        elif message.role == "system":
            out.append({"role": "system", "content": _text_only(message.content, param)})
        elif message.role == "assistant":
            out.append(_assistant(message.content, param, tool_names))
        else:
            out.extend(_user(message.content, param, tool_names, vision))
    return out


def _text_only(blocks: list[ContentBlock], param: str) -> str:
    texts = []
    for number, block in enumerate(blocks):
        if not isinstance(block, TextBlock):
            raise bad_request(
                f"a system message holds text blocks only, not {block.type!r}",
                param=f"{param}.{number}",
            )
        texts.append(block.text)
    return "\n".join(texts)


def _assistant(
    blocks: list[ContentBlock], param: str, tool_names: dict[str, str]
) -> dict[str, Any]:
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for number, block in enumerate(blocks):
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ThinkingBlock):
            thinking.append(block.thinking)
        elif isinstance(block, ToolUseBlock):
            calls.append({"function": {"name": block.name, "arguments": block.input}})
            tool_names[block.id] = block.name
        elif not isinstance(block, RedactedThinkingBlock):  # opaque to any model but Claude
            raise bad_request(
                f"a {block.type!r} block cannot appear in an assistant turn",
                param=f"{param}.{number}",
            )
    item: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if thinking:
        item["thinking"] = "".join(thinking)
    if calls:
        item["tool_calls"] = calls
    return item


def _user(
    blocks: list[ContentBlock], param: str, tool_names: dict[str, str], vision: bool
) -> list[dict[str, Any]]:
    """One user turn becomes Ollama messages in order: each tool_result a ``tool`` message,
    the text and images between them a ``user`` message."""
    out: list[dict[str, Any]] = []
    texts: list[str] = []
    images: list[str] = []

    def flush() -> None:
        if texts or images:
            item: dict[str, Any] = {"role": "user", "content": "\n".join(texts)}
            if images:
                item["images"] = list(images)
            out.append(item)
        texts.clear()
        images.clear()

    for number, block in enumerate(blocks):
        where = f"{param}.{number}"
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ImageBlock):
            images.append(_image(block, where, vision))
        elif isinstance(block, ToolResultBlock):
            flush()
            out.append(_tool_result(block, where, tool_names, vision))
        elif isinstance(block, ToolUseBlock):
            raise bad_request("a tool_use block belongs in an assistant turn", param=where)
        # thinking blocks in a user turn carry nothing for the model: skipped
    flush()
    return out


def _tool_result(
    block: ToolResultBlock, where: str, tool_names: dict[str, str], vision: bool
) -> dict[str, Any]:
    if block.content is None or isinstance(block.content, str):
        text, images = block.content or "", []
    else:
        text = "\n".join(part.text for part in block.content if isinstance(part, TextBlock))
        images = [
            _image(part, f"{where}.content.{n}", vision)
            for n, part in enumerate(block.content)
            if isinstance(part, ImageBlock)
        ]
    item: dict[str, Any] = {"role": "tool", "content": "Error: " + text if block.is_error else text}
    name = tool_names.get(block.tool_use_id)
    if name is not None:
        item["tool_name"] = name
    if images:
        item["images"] = images
    return item


def _image(block: ImageBlock, where: str, vision: bool) -> str:
    if not vision:
        raise bad_request("this model does not accept images (no `vision` capability)", param=where)
    source = block.source
    if source.type != "base64" or not source.data:
        raise bad_request(
            f"only base64 image sources are supported; {source.type!r} sources are not fetched",
            param=f"{where}.source",
        )
    return source.data  # Ollama wants the bare base64, which is what Anthropic sends


# Rough prompt-size heuristic for count_tokens and message_start (the real count arrives at END):
# about four characters per token, the usual figure for BPE tokenizers on English text and code.
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4  # role markers of the chat template
TOKENS_PER_IMAGE = 768  # between small vision encoders (256) and Anthropic's cap (~1,600)


def estimate_input_tokens(neutral: dict[str, Any]) -> int:
    """An estimate of the prompt's tokens: the characters of every message's text, thinking and
    tool calls plus the tools' JSON, divided by ``CHARS_PER_TOKEN``, plus ``TOKENS_PER_MESSAGE``
    per message and ``TOKENS_PER_IMAGE`` per image. Not the model's tokenizer, which the edge does
    not have; ``usage.input_tokens`` of a reply is exact."""
    chars = len(json.dumps(neutral["tools"])) if neutral.get("tools") else 0
    tokens = 0
    for message in neutral["messages"]:
        chars += len(message.get("content", "")) + len(message.get("thinking", ""))
        if message.get("tool_calls"):
            chars += len(json.dumps(message["tool_calls"]))
        tokens += TOKENS_PER_MESSAGE + TOKENS_PER_IMAGE * len(message.get("images", ()))
    return max(1, tokens + math.ceil(chars / CHARS_PER_TOKEN))


# Clients must send a thinking block's signature back; the edge ignores it, so it is a marker.
THINKING_SIGNATURE = "llmtunnel-unsigned"

Event = tuple[str, dict[str, Any]]  # an SSE event name and its data


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

    def start(self) -> list[Event]:
        message = self._message([], None, self.input_estimate, 0)
        return [("message_start", {"type": "message_start", "message": message})]

    def delta(self, frame: Delta) -> list[Event]:
        events: list[Event] = []
        if frame.thinking:
            events += self._write("thinking", frame.thinking)
        if frame.content:
            events += self._write("text", frame.content)
        for call in frame.tool_calls:
            events += self._stop()
            events += self._tool_use(call)
        return events

    def end(self, end: End) -> list[Event]:
        usage = {"input_tokens": end.prompt_tokens, "output_tokens": end.completion_tokens}
        delta = {"stop_reason": self.stop_reason(end), "stop_sequence": None}
        return [
            *self._stop(),
            ("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}),
            ("message_stop", {"type": "message_stop"}),
        ]

    @staticmethod
    def error(error: ApiError) -> Event:
        return ("error", error.anthropic_body())

    def stop_reason(self, end: End) -> str:
        if self._tool_calls or end.finish_reason == "tool_calls":
            return "tool_use"
        return "max_tokens" if end.finish_reason == "length" else "end_turn"

    def message(self, deltas: list[Delta], end: End) -> dict[str, Any]:
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

    def _write(self, kind: Literal["text", "thinking"], text: str) -> list[Event]:
        events: list[Event] = []
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

    def _stop(self) -> list[Event]:
        if self._open is None:
            return []
        events: list[Event] = []
        if self._open == "thinking":
            events.append(
                self._block_delta({"type": "signature_delta", "signature": THINKING_SIGNATURE})
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._open = None
        return events

    def _tool_use(self, call: ToolCall) -> list[Event]:
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

    def _block_start(self, block: dict[str, Any]) -> Event:
        return (
            "content_block_start",
            {"type": "content_block_start", "index": self._index, "content_block": block},
        )

    def _block_delta(self, delta: dict[str, Any]) -> Event:
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
