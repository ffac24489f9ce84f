"""What an API dialect is: pure functions from its request to a neutral one, and from neutral
events back to its wire format (docs/ARCHITECTURE.md "A dialect").

A dialect parses and validates its body into a request object (``ParsedRequest``), builds the
neutral request the tunnel carries (``protocol.requests``), and makes a renderer for the reply.
Everything else (keys, scopes, limits, routing, failover, the first event, audit) is the one
pipeline in ``edge.api.dispatch``; a dialect never sees a socket or a frame queue.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from edge.errors import ErrorShape
from edge.model_names import resolve
from protocol import Delta, End
from protocol.requests import EmbedRequest, TextRequest

if TYPE_CHECKING:
    from edge.api.models import ModelInfo
    from edge.auth import Caller
    from edge.context import EdgeContext
    from edge.errors import ApiError

JSONMap = dict[str, Any]


class ParsedRequest(Protocol):
    """What the pipeline reads of every dialect's validated request."""

    @property
    def model(self) -> str: ...
    @property
    def stream(self) -> bool: ...


P = TypeVar("P", bound=ParsedRequest)
R = TypeVar("R", TextRequest, EmbedRequest)


@dataclass(slots=True)
class Call(Generic[P]):
    """One request on its way through the pipeline, as a dialect sees it."""

    ctx: EdgeContext
    caller: Caller
    req: P
    models: dict[str, ModelInfo]  # what this key may use now, aliases included
    state: dict[str, Any] = field(default_factory=dict)  # a dialect's own, between its steps
    headers: dict[str, str] = field(default_factory=dict)  # a dialect's own, on its reply

    @property
    def capabilities(self) -> list[str] | None:
        """The requested model's capabilities; ``None`` when no machine serves it to this key
        (the pipeline then answers 404 or 503, so a dialect checks nothing against them)."""
        info = self.models.get(self.model)
        return None if info is None else list(info.get("capabilities", ()))

    @property
    def model(self) -> str:
        """The name of the requested model among those the key sees (``qwen3`` is
        ``qwen3:latest`` there), or the name as requested when no machine serves it."""
        return resolve(self.req.model, self.models) or self.req.model


class TextRenderer(Protocol):
    """A text reply in the dialect's form: bytes to stream, or one JSON body."""

    def head(self) -> bytes:
        """What the stream starts with, once the first event is in."""

    def delta(self, frame: Delta) -> bytes: ...

    def end(self, end: End) -> bytes:
        """The last events of a stream that finished (``[DONE]`` and the like included)."""

    def error(self, error: ApiError) -> bytes:
        """The stream's last events when it fails after it started: never a silent cut."""

    def body(self, deltas: list[Delta], end: End) -> JSONMap:
        """The whole reply, for a request without ``stream``."""


class Dialect(ABC, Generic[P, R]):
    """What every dialect has: a request to parse and a neutral request to make of it."""

    errors: ErrorShape = "openai"

    @abstractmethod
    def parse(self, body: JSONMap) -> P:
        """The validated request; ``ApiError`` 400 naming the field otherwise."""

    @abstractmethod
    def neutral(self, call: Call[P]) -> R:
        """The neutral request, checked against the model's capabilities where known."""

    async def prepare(self, call: Call[P]) -> None:
        """Anything the dialect needs from the store before ``neutral`` (default: nothing)."""


class TextDialect(Dialect[P, TextRequest]):
    """A dialect whose replies are text (chat, completions, messages, responses)."""

    @abstractmethod
    def renderer(self, call: Call[P], request: TextRequest) -> TextRenderer: ...

    async def finished(self, call: Call[P], renderer: TextRenderer) -> None:
        """The reply is complete, before the client hears so (default: nothing)."""


class EmbeddingsDialect(Dialect[P, EmbedRequest]):
    """A dialect whose replies are vectors."""

    @abstractmethod
    def body(self, call: Call[P], vectors: list[bytes], end: End) -> bytes:
        """The reply body (JSON text) for the vectors, in input order."""
