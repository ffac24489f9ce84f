"""What the agent's session needs from a runtime: the neutral pieces it yields, the error it
raises, and the ``Backend`` protocol every runtime's client implements (``agent/ollama.py``,
``agent/openai_backend.py``, and ``agent/backends.py`` over several); and what they all say the
same way (docs/ARCHITECTURE.md "The agent's backends").

A backend sees only the neutral request (docs/PROTOCOL.md §7) and yields neutral pieces; it knows
nothing of HTTP dialects or frames. Closing its generator (the stream was cancelled) closes the
HTTP response to the runtime, which is what stops generation on the GPU.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

from protocol import ErrorCode, RemoteProtocolError
from protocol.frames import ToolCall
from protocol.machine import MAX_MODELS, check_model
from protocol.requests import Request, UnsupportedRequest

log = logging.getLogger(__name__)


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


# ------------------------------------------------------------------ shared by the runtimes


def describable(models: list[dict[str, Any]], runtime: str) -> list[dict[str, Any]]:
    """The models HELLO and MODELS can carry: one the edge would refuse would otherwise refuse
    the whole list, and the agent could never log in (PROTOCOL.md §5). ``runtime`` names who
    listed them, for the log."""
    kept = []
    for model in models:
        try:
            check_model(model)
        except RemoteProtocolError as exc:
            log.warning("leaving out a model the tunnel cannot describe: %s", exc)
            continue
        kept.append(model)
    if len(kept) > MAX_MODELS:
        log.warning("%s lists %d models; advertising the first %d", runtime, len(kept), MAX_MODELS)
    return kept[:MAX_MODELS]


def count(value: Any, largest: int) -> int:
    """A count or duration as the tunnel carries it; anything else is unknown: 0."""
    return min(value, largest) if type(value) is int and value > 0 else 0


def unreachable(runtime: str, exc: Exception) -> BackendError:
    """The runtime could not be reached: retryable, so the edge tries another machine."""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return BackendError(
        ErrorCode.BACKEND_UNAVAILABLE, f"cannot reach {runtime}: {reason}", retryable=True
    )


def context_exceeded(prompt: int, context: int, remedy: str) -> BackendError:
    """A prompt longer than the model's context, said plainly with both sizes, whichever
    runtime refused it. The words "prompt is too long" are what Claude Code looks for to
    compact its conversation."""
    relation = ">" if prompt > context else ">="
    return BackendError(
        ErrorCode.CONTEXT_LENGTH_EXCEEDED,
        f"prompt is too long: {prompt} tokens {relation} {context} maximum (the model's context"
        f" on this machine; {remedy}, or shorten the prompt)",
    )
