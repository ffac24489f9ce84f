"""The Anthropic Messages dialect's requests: validation and the neutral request.

Nothing here does I/O. ``to_neutral`` turns a validated ``/v1/messages`` request into the same
neutral ``chat`` request the OpenAI dialect builds (docs/PROTOCOL.md §7), so nothing
Anthropic-specific crosses the tunnel; ``render.MessageRenderer`` turns the neutral events
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
from collections.abc import Collection
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.errors import bad_request
from protocol import requests as neutral
from protocol.requests import ChatRequest, Options


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


def to_neutral(req: CountTokensRequest, capabilities: Collection[str] | None) -> ChatRequest:
    """The neutral ``chat`` request for ``req``. ``capabilities`` is ``None`` when the model is
    not known here (the pipeline then answers 404, or 503 with no machine online) and no
    capability is checked."""
    vision = capabilities is None or "vision" in capabilities
    think: bool | None = None
    if req.thinking is not None:
        if req.thinking.type == "disabled":
            think = False
        elif capabilities is None or "thinking" in capabilities:
            think = True
    return ChatRequest(
        req.model,
        _system(req.system) + _messages(req.messages, vision),
        tuple(_tool(tool, index) for index, tool in enumerate(_tools(req))),
        _options(req) if isinstance(req, MessagesRequest) else Options(),
        think=think,
    )


def _options(req: MessagesRequest) -> Options:
    # Only what the client set: the model's own defaults stay in force otherwise.
    return Options(
        num_predict=req.max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        top_k=req.top_k,
        stop=tuple(req.stop_sequences or ()),
    )


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


def _tool(tool: Tool, index: int) -> neutral.Tool:
    if tool.input_schema is None:
        raise bad_request(
            f"tool {tool.name!r} has no input_schema; only client tools are supported, "
            f"not Anthropic's server tools (type {tool.type!r})",
            param=f"tools.{index}",
        )
    return neutral.Tool(tool.name, tool.description, tool.input_schema)


def _system(system: str | list[TextBlock] | None) -> tuple[neutral.Message, ...]:
    if isinstance(system, list):
        system = "\n".join(block.text for block in system)
    return (neutral.Message("system", system),) if system else ()


def _messages(messages: list[Message], vision: bool) -> tuple[neutral.Message, ...]:
    tool_names: dict[str, str] = {}  # tool_use id → name, for Ollama's `tool_name`
    out: list[neutral.Message] = []
    for index, message in enumerate(messages):
        param = f"messages.{index}.content"
        if isinstance(message.content, str):
            out.append(neutral.Message(message.role, message.content))
        elif message.role == "system":
            out.append(neutral.Message("system", _text_only(message.content, param)))
        elif message.role == "assistant":
            out.append(_assistant(message.content, param, tool_names))
        else:
            out.extend(_user(message.content, param, tool_names, vision))
    return tuple(out)


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
) -> neutral.Message:
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[neutral.ToolCall] = []
    for number, block in enumerate(blocks):
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ThinkingBlock):
            thinking.append(block.thinking)
        elif isinstance(block, ToolUseBlock):
            calls.append(neutral.ToolCall(block.name, block.input, block.id))
            tool_names[block.id] = block.name
        elif not isinstance(block, RedactedThinkingBlock):  # opaque to any model but Claude
            raise bad_request(
                f"a {block.type!r} block cannot appear in an assistant turn",
                param=f"{param}.{number}",
            )
    return neutral.Message(
        "assistant", "".join(texts), tool_calls=tuple(calls), thinking="".join(thinking)
    )


def _user(
    blocks: list[ContentBlock], param: str, tool_names: dict[str, str], vision: bool
) -> list[neutral.Message]:
    """One user turn becomes neutral messages in order: each tool_result a ``tool`` message,
    the text and images between them a ``user`` message."""
    out: list[neutral.Message] = []
    texts: list[str] = []
    images: list[str] = []

    def flush() -> None:
        if texts or images:
            out.append(neutral.Message("user", "\n".join(texts), tuple(images)))
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
) -> neutral.Message:
    if block.content is None or isinstance(block.content, str):
        text, images = block.content or "", []
    else:
        text = "\n".join(part.text for part in block.content if isinstance(part, TextBlock))
        images = [
            _image(part, f"{where}.content.{n}", vision)
            for n, part in enumerate(block.content)
            if isinstance(part, ImageBlock)
        ]
    return neutral.Message(
        "tool",
        "Error: " + text if block.is_error else text,
        tuple(images),
        tool_name=tool_names.get(block.tool_use_id, ""),
        tool_call_id=block.tool_use_id,
    )


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


def estimate_input_tokens(request: ChatRequest) -> int:
    """An estimate of the prompt's tokens: the characters of every message's text, thinking and
    tool calls plus the tools' JSON, divided by ``CHARS_PER_TOKEN``, plus ``TOKENS_PER_MESSAGE``
    per message and ``TOKENS_PER_IMAGE`` per image. Not the model's tokenizer, which the edge does
    not have; ``usage.input_tokens`` of a reply is exact."""
    wire = neutral.to_wire(request)  # the tools and calls measured as the tunnel carries them
    chars = len(json.dumps(wire["tools"])) if wire.get("tools") else 0
    tokens = 0
    for message in wire["messages"]:
        chars += len(message.get("content", "")) + len(message.get("thinking", ""))
        if message.get("tool_calls"):
            chars += len(json.dumps(message["tool_calls"]))
        tokens += TOKENS_PER_MESSAGE + TOKENS_PER_IMAGE * len(message.get("images", ()))
    return max(1, tokens + math.ceil(chars / CHARS_PER_TOKEN))
