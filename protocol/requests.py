"""Neutral requests: what an OPEN asks a machine to do (PROTOCOL.md §7).

Every API dialect at the edge is turned into one of these, and every backend on the agent serves
them; neither end sees the other's dialects. They are frozen dataclasses, validated when decoded
from an OPEN exactly as frames are, so a field is either well-formed or the frame is refused.

On the wire a request is a map in Ollama's shapes (``to_wire``/``from_wire``), so that the Ollama
backend sends what it received nearly as it is:

    {op: "chat", model, messages: [message], tools?: [tool], options?, format?, think?}
    {op: "generate", model, prompt, suffix?, system?, options?, format?, think?}
    {op: "embed", model, input: [str], dimensions?, truncate?}  (truncate: true if absent)

A message is ``{role, content, images?: [base64], tool_calls?: [{id?, function: {name,
arguments: map}}], tool_name?, tool_call_id?, thinking?}``; a tool is ``{type: "function",
function: {name, description?, parameters?}}``; options are Ollama's names (``num_predict``,
``temperature``, ``top_p``, ``top_k``, ``seed``, ``presence_penalty``, ``frequency_penalty``,
``stop``). Keys not listed here are refused: a peer cannot smuggle anything past the checks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from protocol.errors import RemoteProtocolError
from protocol.json_values import INT64_MAX, INT64_MIN, check_json

JSONMap = dict[str, Any]
Role = Literal["system", "user", "assistant", "tool"]
ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})
THINK_LEVELS = frozenset({"low", "medium", "high"})
MAX_MODEL_NAME = 256


def _fail(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"neutral request: {message}")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model made earlier in the conversation (arguments as an object)."""

    name: str
    arguments: JSONMap
    id: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str = ""
    images: tuple[str, ...] = ()  # base64, without a data: prefix
    tool_calls: tuple[ToolCall, ...] = ()
    tool_name: str = ""  # on a tool message: which tool answered (Ollama matches by name)
    tool_call_id: str = ""  # on a tool message: which call it answers (OpenAI matches by id)
    thinking: str = ""


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters: JSONMap | None = None  # a JSON schema


@dataclass(frozen=True, slots=True)
class Options:
    """Sampling options, only those the client set (the model's defaults stand otherwise)."""

    num_predict: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    stop: tuple[str, ...] = ()


NO_OPTIONS = Options()
Format = str | JSONMap | None  # "json", a JSON schema, or none
Think = bool | str | None  # on/off, a level ("low" | "medium" | "high"), or the model's default


@dataclass(frozen=True, slots=True)
class ChatRequest:
    OP: ClassVar[str] = "chat"
    model: str
    messages: tuple[Message, ...]
    tools: tuple[Tool, ...] = ()
    options: Options = NO_OPTIONS
    format: Format = None
    think: Think = None


@dataclass(frozen=True, slots=True)
class GenerateRequest:
    """Plain text continuation (legacy completions)."""

    OP: ClassVar[str] = "generate"
    model: str
    prompt: str
    suffix: str | None = None
    system: str | None = None
    options: Options = NO_OPTIONS
    format: Format = None
    think: Think = None


@dataclass(frozen=True, slots=True)
class EmbedRequest:
    OP: ClassVar[str] = "embed"
    model: str
    input: tuple[str, ...]
    dimensions: int | None = None
    truncate: bool = True  # a long input is cut to the context, not refused (as OpenAI does)


Request = ChatRequest | GenerateRequest | EmbedRequest
TextRequest = ChatRequest | GenerateRequest


def with_model(request: Request, model: str) -> Request:
    """The same request for ``model`` (an alias resolved to what the machines serve)."""
    return dataclasses.replace(request, model=model)


def with_num_predict(request: TextRequest, limit: int) -> TextRequest:
    """The same request with at most ``limit`` tokens generated."""
    options = dataclasses.replace(request.options, num_predict=limit)
    return dataclasses.replace(request, options=options)


# ---------------------------------------------------------------------- encoding


def to_wire(request: Request | UnsupportedRequest) -> JSONMap:
    """The map OPEN carries (the module docstring shows its shape)."""
    wire: JSONMap = {"op": request.OP, "model": request.model}
    if isinstance(request, UnsupportedRequest):
        return wire
    if isinstance(request, EmbedRequest):
        wire["input"] = list(request.input)
        wire["truncate"] = request.truncate
        if request.dimensions is not None:
            wire["dimensions"] = request.dimensions
        return wire
    if isinstance(request, ChatRequest):
        wire["messages"] = [_message_to_wire(m) for m in request.messages]
        if request.tools:
            wire["tools"] = [_tool_to_wire(t) for t in request.tools]
    else:
        wire["prompt"] = request.prompt
        for name in ("suffix", "system"):
            if (value := getattr(request, name)) is not None:
                wire[name] = value
    options = options_to_wire(request.options)
    if options:
        wire["options"] = options
    if request.format is not None:
        wire["format"] = request.format
    if request.think is not None:
        wire["think"] = request.think
    return wire


def _message_to_wire(message: Message) -> JSONMap:
    wire: JSONMap = {"role": message.role, "content": message.content}
    if message.images:
        wire["images"] = list(message.images)
    if message.tool_calls:
        wire["tool_calls"] = [_call_to_wire(call) for call in message.tool_calls]
    for name in ("tool_name", "tool_call_id", "thinking"):
        if value := getattr(message, name):
            wire[name] = value
    return wire


def _call_to_wire(call: ToolCall) -> JSONMap:
    wire: JSONMap = {"function": {"name": call.name, "arguments": call.arguments}}
    if call.id:
        wire["id"] = call.id
    return wire


def _tool_to_wire(tool: Tool) -> JSONMap:
    function: JSONMap = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.parameters is not None:
        function["parameters"] = tool.parameters
    return {"type": "function", "function": function}


def options_to_wire(options: Options) -> JSONMap:
    """Ollama's ``options`` map: only what is set."""
    wire = {
        name: value
        for name in _OPTION_FIELDS
        if name != "stop" and (value := getattr(options, name)) is not None
    }
    if options.stop:
        wire["stop"] = list(options.stop)
    return wire


_OPTION_FIELDS = tuple(f.name for f in dataclasses.fields(Options))


# ---------------------------------------------------------------------- decoding


class _Fields:
    """Reads one map's fields, each checked; ``done()`` refuses the keys nobody asked for."""

    def __init__(self, data: object, where: str) -> None:
        if not isinstance(data, dict):
            raise _fail(f"{where} must be a map")
        self._data: dict[Any, Any] = data
        self._where = where
        self._seen: set[str] = set()

    def get(self, name: str, check: Callable[[Any], bool], expected: str) -> Any:
        self._seen.add(name)
        value = self._data.get(name)
        if value is not None and not check(value):
            raise _fail(f"{self._where}.{name} must be {expected}")
        return value

    def required(self, name: str, check: Callable[[Any], bool], expected: str) -> Any:
        value = self.get(name, check, expected)
        if value is None:
            raise _fail(f"{self._where} has no {name}")
        return value

    def done(self) -> None:
        if self._data.keys() <= self._seen:  # the common case, one set operation
            return
        unknown = sorted(str(key) for key in self._data if key not in self._seen)
        if unknown:
            raise _fail(f"{self._where} has unknown fields {unknown}")


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_int(value: Any) -> bool:
    return type(value) is int and INT64_MIN <= value <= INT64_MAX


def _is_number(value: Any) -> bool:
    return _is_int(value) or (type(value) is float and math.isfinite(value))


def _is_strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_map(value: Any) -> bool:
    return isinstance(value, dict)


def _is_list(value: Any) -> bool:
    return isinstance(value, list)


def _is_model(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_MODEL_NAME


def _is_format(value: Any) -> bool:
    return value == "json" or isinstance(value, dict)


def _is_think(value: Any) -> bool:
    # isinstance first: a list or a map is no member of a set, it is unhashable.
    return isinstance(value, bool) or (isinstance(value, str) and value in THINK_LEVELS)


def from_wire(data: object) -> Request | UnsupportedRequest:
    """The typed request OPEN carries; ``RemoteProtocolError`` naming the field otherwise."""
    check_json(data, "OPEN request")
    fields = _Fields(data, "request")
    op = fields.required("op", _is_str, "a string")
    model = fields.required("model", _is_model, f"a name of 1 to {MAX_MODEL_NAME} characters")
    request: Request | UnsupportedRequest
    if op == "embed":
        request = EmbedRequest(
            model,
            tuple(fields.required("input", _is_strings, "a list of strings")),
            fields.get("dimensions", lambda v: _is_int(v) and v > 0, "a positive integer"),
            fields.get("truncate", lambda v: isinstance(v, bool), "true or false") is not False,
        )
    elif op == "chat":
        messages = fields.required("messages", _is_list, "a list")
        tools = fields.get("tools", _is_list, "a list") or []
        request = ChatRequest(
            model,
            tuple(_message(m, f"messages.{i}") for i, m in enumerate(messages)),
            tuple(_tool(t, f"tools.{i}") for i, t in enumerate(tools)),
            _options(fields.get("options", _is_map, "a map")),
            fields.get("format", _is_format, '"json" or a JSON schema'),
            fields.get("think", _is_think, "true, false or a level"),
        )
    elif op == "generate":
        request = GenerateRequest(
            model,
            fields.required("prompt", _is_str, "a string"),
            fields.get("suffix", _is_str, "a string"),
            fields.get("system", _is_str, "a string"),
            _options(fields.get("options", _is_map, "a map")),
            fields.get("format", _is_format, '"json" or a JSON schema'),
            fields.get("think", _is_think, "true, false or a level"),
        )
    else:
        return UnsupportedRequest(op, model)
    fields.done()
    return request


@dataclass(frozen=True, slots=True)
class UnsupportedRequest:
    """An op this side does not know. The agent refuses the stream, not the connection, with
    ``unsupported`` (§7), so that a newer edge can ask an older agent for something new; its
    other fields are not read."""

    op: str
    model: str

    @property
    def OP(self) -> str:  # read like the ClassVar of the known requests
        return self.op


def _message(data: object, where: str) -> Message:
    fields = _Fields(data, where)
    role = fields.required(
        "role", lambda v: isinstance(v, str) and v in ROLES, "system, user, assistant or tool"
    )
    calls = fields.get("tool_calls", _is_list, "a list") or []
    message = Message(
        role,
        fields.get("content", _is_str, "a string") or "",
        tuple(fields.get("images", _is_strings, "a list of strings") or ()),
        tuple(_tool_call(c, f"{where}.tool_calls.{i}") for i, c in enumerate(calls)),
        fields.get("tool_name", _is_str, "a string") or "",
        fields.get("tool_call_id", _is_str, "a string") or "",
        fields.get("thinking", _is_str, "a string") or "",
    )
    fields.done()
    return message


def _tool_call(data: object, where: str) -> ToolCall:
    fields = _Fields(data, where)
    call_id = fields.get("id", _is_str, "a string") or ""
    function = _Fields(fields.required("function", _is_map, "a map"), f"{where}.function")
    call = ToolCall(
        function.required("name", _is_str, "a string"),
        function.required("arguments", _is_map, "a map"),
        call_id,
    )
    function.done()
    fields.done()
    return call


def _tool(data: object, where: str) -> Tool:
    fields = _Fields(data, where)
    fields.get("type", lambda v: v == "function", '"function"')
    function = _Fields(fields.required("function", _is_map, "a map"), f"{where}.function")
    tool = Tool(
        function.required("name", _is_str, "a string"),
        function.get("description", _is_str, "a string"),
        function.get("parameters", _is_map, "a map"),
    )
    function.done()
    fields.done()
    return tool


def _options(data: object) -> Options:
    if data is None:
        return NO_OPTIONS
    fields = _Fields(data, "options")
    options = Options(
        fields.get("num_predict", _is_int, "an integer"),
        fields.get("temperature", _is_number, "a number"),
        fields.get("top_p", _is_number, "a number"),
        fields.get("top_k", _is_int, "an integer"),
        fields.get("seed", _is_int, "an integer"),
        fields.get("presence_penalty", _is_number, "a number"),
        fields.get("frequency_penalty", _is_number, "a number"),
        tuple(fields.get("stop", _is_strings, "a list of strings") or ()),
    )
    fields.done()
    return options
