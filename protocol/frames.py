"""Tunnel frames: one dataclass per frame type, each with a pinned numeric code (PROTOCOL.md §2).

On the wire a frame is a msgpack array ``[type, field, field, …]`` in the field order below, one
frame per WebSocket binary message. Frames are frozen and slotted; ``check()`` enforces what the
field types alone cannot (ranges, sizes), and the codec calls it on every decoded frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from protocol.errors import RemoteProtocolError
from protocol.json_values import INT64_MAX
from protocol.machine import check_models
from protocol.requests import Request, UnsupportedRequest, from_wire, to_wire

MAX_WINDOW = 2**31 - 1
NO_STREAM = 0
MAX_AGENT_VERSION = 64
# END's usage is added up and stored by the edge; its timings are logged (§7).
MAX_TOKENS = 2**32 - 1
MAX_TIMINGS = 16
MAX_TIMING_NAME = 64
MAX_TIMEOUT = 7 * 24 * 3600.0  # OPEN's deadline: a week is already far beyond any request
MAX_HEALTH_REASON = 500  # HEALTH's reason, shown to clients and admins (§5)
MAX_NODES, MAX_NODE_ID, MAX_NODE_URL = 64, 64, 2048  # NODES: the nodes an agent may dial (§11)
MAX_REQUEST_ID = 64  # OPEN's request id: printable ASCII without spaces, empty for none (§2)
_REQUEST_ID = re.compile(rf"[!-~]{{0,{MAX_REQUEST_ID}}}")

JSONMap = dict[str, Any]


class FrameType(IntEnum):
    """Wire codes. Never renumber: a test pins every value (PROTOCOL.md §2)."""

    CHALLENGE = 1
    AUTH = 2
    READY = 3
    HELLO = 4
    MODELS = 5
    OPEN = 6
    DELTA = 7
    END = 8
    ERROR = 9
    CANCEL = 10
    WINDOW = 11
    PING = 12
    PONG = 13
    GOAWAY = 14
    EMBEDDINGS = 15
    HEALTH = 16
    NODES = 17


class Frame:
    """Base of all frames. ``SCHEMA`` lists the accepted Python types of each field, in order;
    the last ``OPTIONAL_FIELDS`` of them may be left out (a field added later, §2)."""

    __slots__ = ()
    TYPE: ClassVar[FrameType]
    SCHEMA: ClassVar[tuple[type | tuple[type, ...], ...]]
    OPTIONAL_FIELDS: ClassVar[int] = 0

    def check(self) -> None:
        """Raise ``RemoteProtocolError`` when a field is out of range."""

    def check_outgoing(self) -> None:
        """``check``, and whatever else a frame about to be sent must pass for its receiver to
        take it (the receiver runs ``check`` on what it decodes)."""
        self.check()


class StreamFrame(Frame):
    """A frame that belongs to one stream (or, for ERROR and WINDOW, to the connection: id 0)."""

    __slots__ = ()
    stream_id: int


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise RemoteProtocolError(message)


def _check_stream_id(stream_id: int, *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    _require(low <= stream_id <= MAX_WINDOW, f"stream id {stream_id} out of range")


@dataclass(frozen=True, slots=True)
class Challenge(Frame):
    """Edge → agent, first frame: prove you hold the machine key (§3)."""

    TYPE = FrameType.CHALLENGE
    SCHEMA = (bytes, str, list)
    nonce: bytes
    edge_host: str
    versions: list[int]

    def check(self) -> None:
        _require(16 <= len(self.nonce) <= 64, f"nonce of {len(self.nonce)} bytes")
        _require(len(self.edge_host) <= 255, "edge host longer than 255 characters")
        _require(
            0 < len(self.versions) <= 16 and all(type(v) is int for v in self.versions),
            "versions must be a short list of integers",
        )


@dataclass(frozen=True, slots=True)
class Auth(Frame):
    """Agent → edge: machine id, chosen version and the Ed25519 signature over §3's message."""

    TYPE = FrameType.AUTH
    SCHEMA = (str, int, bytes)
    machine_id: str
    version: int
    signature: bytes

    def check(self) -> None:
        _require(0 < len(self.machine_id) <= 64, "machine id must be 1 to 64 characters")
        _require(len(self.signature) == 64, f"signature of {len(self.signature)} bytes, not 64")


@dataclass(frozen=True, slots=True)
class Ready(Frame):
    """Edge → agent: login accepted; the limits both sides apply from now on (§4)."""

    TYPE = FrameType.READY
    SCHEMA = (str, int, int, int, (int, float))
    session_id: str
    max_frame: int
    stream_window: int
    connection_window: int
    heartbeat_interval: float

    def check(self) -> None:
        _require(1024 <= self.max_frame <= 64 * 1024 * 1024, f"max_frame {self.max_frame}")
        _require(0 < self.stream_window <= MAX_WINDOW, f"stream_window {self.stream_window}")
        _require(
            0 < self.connection_window <= MAX_WINDOW,
            f"connection_window {self.connection_window}",
        )
        _require(0 < self.heartbeat_interval <= 3600, "heartbeat interval out of range")


@dataclass(frozen=True, slots=True)
class Hello(Frame):
    """Agent → edge after READY: who it is, how much it takes at once, what it serves (§5)."""

    TYPE = FrameType.HELLO
    SCHEMA = (str, int, list)
    agent_version: str
    max_concurrency: int
    models: list[JSONMap]

    def check(self) -> None:
        _require(
            len(self.agent_version) <= MAX_AGENT_VERSION,
            f"agent version longer than {MAX_AGENT_VERSION} characters",
        )
        _require(1 <= self.max_concurrency <= 100_000, "max_concurrency out of range")
        check_models(self.models)


@dataclass(frozen=True, slots=True)
class Models(Frame):
    """Agent → edge: the model list changed (§5)."""

    TYPE = FrameType.MODELS
    SCHEMA = (list,)
    models: list[JSONMap]

    def check(self) -> None:
        check_models(self.models)


@dataclass(frozen=True, slots=True)
class Health(Frame):
    """Agent → edge: whether its backend answers; ``reason`` says why not (§5)."""

    TYPE = FrameType.HEALTH
    SCHEMA = (bool, str)
    healthy: bool
    reason: str

    def check(self) -> None:
        _require(
            len(self.reason) <= MAX_HEALTH_REASON,
            f"health reason longer than {MAX_HEALTH_REASON} characters",
        )
        _require(not (self.healthy and self.reason), "a healthy HEALTH has no reason")


@dataclass(frozen=True, slots=True)
class Nodes(Frame):
    """Edge → agent: this tunnel's node (``node_id``) and every node that takes tunnels now, as
    ``[id, url]`` pairs, itself included (§11)."""

    TYPE = FrameType.NODES
    SCHEMA = (str, list)
    node_id: str
    nodes: list[list[str]]

    def check(self) -> None:
        _check_node_id(self.node_id)
        _require(len(self.nodes) <= MAX_NODES, f"more than {MAX_NODES} nodes")
        for entry in self.nodes:
            pair = isinstance(entry, list) and len(entry) == 2
            _require(pair and all(type(v) is str for v in entry), "a node is [id, url], 2 strings")
            check_node(entry[0], entry[1])


def check_node(node_id: str, url: str) -> None:
    """One NODES entry's rules (§11); ``RemoteProtocolError`` naming the one broken. Also what
    an edge checks its own ``--node-id``/``--advertise`` and the directory's entries against,
    so that a NODES it builds is never refused."""
    _check_node_id(node_id)
    url_ok = 0 < len(url) <= MAX_NODE_URL and url.startswith(("https://", "http://"))
    _require(url_ok, f"a node URL is http(s)://… of at most {MAX_NODE_URL} characters")


def _check_node_id(node_id: str) -> None:
    ok = 0 < len(node_id) <= MAX_NODE_ID and node_id.isprintable()
    _require(ok, f"a node id is 1 to {MAX_NODE_ID} printable characters")


@dataclass(frozen=True, slots=True)
class Open(StreamFrame):
    """Edge → agent: start a stream with a neutral request; ``timeout`` seconds, 0 for none (§7).

    ``request`` is typed (``protocol.requests``): on the wire it is the map ``to_wire`` makes,
    and decoding checks every field of it as it checks the frame's own. ``request_id`` is the
    id the edge gave the client's request (its ``x-request-id``), so that the agent's log lines
    for the stream name the request the edge's access line and audit row name (§2)."""

    TYPE = FrameType.OPEN
    SCHEMA = (int, dict, (int, float), str)
    stream_id: int
    request: Request | UnsupportedRequest
    timeout: float
    request_id: str = ""  # the edge's id of the client's request, for the agent's logs

    @classmethod
    def from_wire_values(cls, values: list[Any]) -> Open:
        return cls(values[0], from_wire(values[1]), values[2], values[3])

    def wire_values(self) -> tuple[Any, ...]:
        return (self.stream_id, to_wire(self.request), self.timeout, self.request_id)

    def check(self) -> None:
        _check_stream_id(self.stream_id)
        # NaN fails every comparison, so it fails this one too.
        _require(
            0 <= self.timeout <= MAX_TIMEOUT,
            f"timeout {self.timeout} is not between 0 and {MAX_TIMEOUT:g} s",
        )
        # It goes into log lines as it is: short, and nothing that could break a line (§2).
        _require(
            _REQUEST_ID.fullmatch(self.request_id) is not None,
            f"request id must be at most {MAX_REQUEST_ID} visible ASCII characters",
        )

    def check_outgoing(self) -> None:
        self.check()
        # A request built here must be one the agent takes back: refused on sending, it fails
        # one request; refused on receiving, it would fail the whole tunnel (§6). A received
        # request was just checked field by field by ``from_wire``: only sending needs this.
        from_wire(to_wire(self.request))


ToolCall = dict[str, str]  # {id, name, arguments}: arguments is the JSON text of an object


@dataclass(frozen=True, slots=True)
class Delta(StreamFrame):
    """Agent → edge: coalesced output of one stream: text, thinking and whole tool calls.

    Everything in it is charged against the windows (§8), and a DELTA with nothing in it is
    refused: every frame costs credit, so the frames an edge buffers are bounded by credit."""

    TYPE = FrameType.DELTA
    SCHEMA = (int, str, str, list)
    stream_id: int
    content: str
    thinking: str
    tool_calls: list[ToolCall]

    def check(self) -> None:
        _check_stream_id(self.stream_id)
        for call in self.tool_calls:
            _require(
                isinstance(call, dict)
                and len(call) == 3
                and isinstance(call.get("id"), str)
                and isinstance(call.get("name"), str)
                and isinstance(call.get("arguments"), str),
                "a tool call must be a map of exactly id, name and arguments, all strings",
            )
            # A call always costs credit: its id is never empty, and arguments are at least "{}".
            _require(
                bool(call["id"]) and len(call["arguments"]) >= 2,
                "a tool call needs an id and the JSON text of its arguments",
            )
        _require(
            bool(self.content or self.thinking or self.tool_calls),
            "empty DELTA: no text, no thinking, no tool call",
        )

    @property
    def flow_size(self) -> int:
        """Bytes charged against the windows: the UTF-8 size of the text, the thinking, and each
        tool call's id, name and arguments (§8)."""
        return (
            len(self.content.encode())
            + len(self.thinking.encode())
            + sum(tool_call_size(call) for call in self.tool_calls)
        )


def tool_call_size(call: ToolCall) -> int:
    """What one tool call costs against the windows (§8)."""
    return len(call["id"].encode()) + len(call["name"].encode()) + len(call["arguments"].encode())


@dataclass(frozen=True, slots=True)
class End(StreamFrame):
    """Agent → edge: the stream finished normally (§7). ``usage_reported`` is false when the
    runtime counted no tokens (both counts are then 0): the edge counts conservatively (§7).

    The field came later, so it is written only when false, and read as true when left out
    (§2): agents and edges from before it keep working together with those after it."""

    TYPE = FrameType.END
    SCHEMA = (int, str, int, int, dict, bool)
    OPTIONAL_FIELDS = 1  # usage_reported may be left out
    stream_id: int
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    timings: dict[str, int]
    usage_reported: bool = True

    def wire_values(self) -> tuple[Any, ...]:
        fields = (
            self.stream_id,
            self.finish_reason,
            self.prompt_tokens,
            self.completion_tokens,
            self.timings,
        )
        return fields if self.usage_reported else (*fields, False)

    def check(self) -> None:
        _check_stream_id(self.stream_id)
        _require(
            0 <= self.prompt_tokens <= MAX_TOKENS and 0 <= self.completion_tokens <= MAX_TOKENS,
            f"token counts must be from 0 to {MAX_TOKENS}",
        )
        _require(len(self.timings) <= MAX_TIMINGS, f"more than {MAX_TIMINGS} timings")
        for name, value in self.timings.items():
            _require(
                isinstance(name, str)
                and len(name) <= MAX_TIMING_NAME
                and type(value) is int
                and 0 <= value <= INT64_MAX,
                f"a timing must be a name of at most {MAX_TIMING_NAME} characters and an integer"
                f" from 0 to {INT64_MAX}",
            )


@dataclass(frozen=True, slots=True)
class Error(StreamFrame):
    """Either way: stream 0 closes the connection, any other id ends that stream (§6)."""

    TYPE = FrameType.ERROR
    SCHEMA = (int, str, str, bool)
    stream_id: int
    code: str
    message: str
    retryable: bool

    def check(self) -> None:
        _check_stream_id(self.stream_id, allow_zero=True)


@dataclass(frozen=True, slots=True)
class Cancel(StreamFrame):
    """Edge → agent: stop the stream (client gone, deadline); the agent aborts the backend call."""

    TYPE = FrameType.CANCEL
    SCHEMA = (int, str)
    stream_id: int
    reason: str

    def check(self) -> None:
        _check_stream_id(self.stream_id)


@dataclass(frozen=True, slots=True)
class Window(StreamFrame):
    """Edge → agent: more credit for a stream, or for the connection when stream id is 0 (§8)."""

    TYPE = FrameType.WINDOW
    SCHEMA = (int, int)
    stream_id: int
    increment: int

    def check(self) -> None:
        _check_stream_id(self.stream_id, allow_zero=True)
        _require(0 < self.increment <= MAX_WINDOW, f"window increment {self.increment}")


@dataclass(frozen=True, slots=True)
class Ping(Frame):
    """Either way: answer with PONG carrying the same payload (§9)."""

    TYPE = FrameType.PING
    SCHEMA = (int,)
    payload: int


@dataclass(frozen=True, slots=True)
class Pong(Frame):
    TYPE = FrameType.PONG
    SCHEMA = (int,)
    payload: int


@dataclass(frozen=True, slots=True)
class GoAway(Frame):
    """Either way: no new streams; running ones finish, then the connection closes (§10)."""

    TYPE = FrameType.GOAWAY
    SCHEMA = (str,)
    reason: str


@dataclass(frozen=True, slots=True)
class Embeddings(StreamFrame):
    """Agent → edge: embedding vectors of one ``embed`` stream, inputs ``index`` onwards (§7).

    Each vector is little-endian float32, as OpenAI's base64 encoding has it: 4 bytes a
    dimension instead of msgpack's 9 per float64. Flow-controlled by its byte size (§8)."""

    TYPE = FrameType.EMBEDDINGS
    SCHEMA = (int, int, list)
    stream_id: int
    index: int
    vectors: list[bytes]

    def check(self) -> None:
        _check_stream_id(self.stream_id)
        _require(0 <= self.index <= MAX_WINDOW, f"embedding index {self.index} out of range")
        _require(bool(self.vectors), "EMBEDDINGS without vectors")
        for vector in self.vectors:
            _require(
                isinstance(vector, bytes) and len(vector) > 0 and len(vector) % 4 == 0,
                "an embedding must be a non-empty run of float32 (bytes, a multiple of 4)",
            )

    @property
    def flow_size(self) -> int:
        return sum(len(vector) for vector in self.vectors)


FRAME_CLASSES: dict[int, type[Frame]] = {
    cls.TYPE: cls
    for cls in (
        Challenge,
        Auth,
        Ready,
        Hello,
        Models,
        Open,
        Delta,
        End,
        Error,
        Cancel,
        Window,
        Ping,
        Pong,
        GoAway,
        Embeddings,
        Health,
        Nodes,
    )
}
