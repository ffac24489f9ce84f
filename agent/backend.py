"""What the agent's session needs from a runtime: the neutral pieces it yields, the error it
raises, and the ``Backend`` protocol every runtime's client implements (``agent/ollama.py``).

A backend sees only the neutral request (docs/ARCHITECTURE.md "The neutral model") and yields
neutral pieces; it knows nothing of HTTP dialects or frames. Closing its generator (the stream
was cancelled) closes the HTTP response to the runtime, which is what stops generation on the GPU.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol import ErrorCode
from protocol.frames import ToolCall
from protocol.requests import Request, UnsupportedRequest


@dataclass(slots=True)
class Piece:
    """Some output of a running request."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Vectors:
    """Embeddings of an ``embed`` request, in input order, each as little-endian float32."""

    vectors: list[bytes]


@dataclass(frozen=True, slots=True)
class Finish:
    """The request finished: why, and what it cost. ``usage_reported`` is false when the
    runtime counted no tokens (the counts are then 0, and the edge bounds them: PROTOCOL.md §7)."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    timings: dict[str, int]
    usage_reported: bool = True


class BackendError(Exception):
    """The backend refused or failed a request; ``code`` and ``retryable`` go into ERROR."""

    def __init__(self, code: ErrorCode, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class Backend(Protocol):
    """A runtime on this machine, as the session uses it."""

    async def discover(self) -> list[dict[str, Any]]:
        """The models it serves (PROTOCOL.md §2's model maps); ``BackendError`` when it does
        not answer, which the session reports as HEALTH (§5)."""
        ...

    def stream(
        self, request: Request | UnsupportedRequest
    ) -> AsyncGenerator[Piece | Vectors | Finish, None]:
        """Run a neutral request: pieces, then one ``Finish``; ``BackendError`` on failure."""
        ...

    async def aclose(self) -> None:
        """Close its connections to the runtime."""
        ...
