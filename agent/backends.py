"""Several runtimes behind one agent, as one ``Backend`` (docs/ARCHITECTURE.md "The agent's
backends").

The machine advertises the models of every backend that answers, merged: a name two backends
list is served by the first one given (the other's is logged and left out). Each request goes
to the backend that listed its model at the last look. Discovery fails only when no backend
answers: the machine is then degraded (PROTOCOL.md §5); one backend down only takes its own
models out of the list, and the session's next look (at once after a request found it
unreachable) puts them back when it answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from agent.backend import Backend, BackendError, Finish, Piece, Vectors
from protocol import ErrorCode
from protocol.machine import MAX_MODELS
from protocol.requests import Request, UnsupportedRequest

log = logging.getLogger(__name__)

# One backend's whole listing (Ollama asks /api/show per model): past this it counts as down,
# so a runtime that hangs cannot hold the others' models back.
DISCOVERY_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Named:
    """A backend and how the agent names it to people: ``openai http://127.0.0.1:8000/v1``."""

    label: str
    backend: Backend


@dataclass(frozen=True, slots=True)
class Listed:
    """One backend's answer to a look: its models, or why it did not answer."""

    named: Named
    models: list[dict[str, Any]] | None
    problem: str = ""


async def look(named: Named) -> Listed:
    """List one backend's models, within ``DISCOVERY_TIMEOUT``."""
    try:
        async with asyncio.timeout(DISCOVERY_TIMEOUT):
            return Listed(named, await named.backend.discover())
    except BackendError as exc:
        return Listed(named, None, str(exc))
    except TimeoutError:
        return Listed(named, None, f"did not list its models within {DISCOVERY_TIMEOUT:g} s")


class Backends:
    """``backends`` (in the order given, which decides a clash of names) as one backend."""

    def __init__(self, backends: list[Named]) -> None:
        if len(backends) < 2:
            raise ValueError("Backends routes between two backends or more")
        self._backends = backends
        self._routes: dict[str, Backend] = {}
        self._down: dict[str, str] = {}  # label → why, as last logged
        self._clashes: set[tuple[str, str]] = set()  # (model, label left out), as last logged

    async def aclose(self) -> None:
        for named in self._backends:
            await named.backend.aclose()

    async def discover(self) -> list[dict[str, Any]]:
        """The merged models of the backends that answer; ``BackendError`` when none does."""
        listings = await asyncio.gather(*(look(named) for named in self._backends))
        self._log_health(listings)
        if all(listed.models is None for listed in listings):
            reasons = "; ".join(f"{listed.named.label}: {listed.problem}" for listed in listings)
            raise BackendError(
                ErrorCode.BACKEND_UNAVAILABLE, f"no backend answers ({reasons})", retryable=True
            )
        routes: dict[str, Backend] = {}
        merged: list[dict[str, Any]] = []
        clashes: set[tuple[str, str]] = set()
        for listed in listings:
            for model in listed.models or ():
                if model["name"] in routes:
                    clashes.add((model["name"], listed.named.label))
                    continue
                routes[model["name"]] = listed.named.backend
                merged.append(model)
        self._log_clashes(clashes)
        self._routes = routes
        if len(merged) > MAX_MODELS:
            log.warning("the backends list %d models; advertising %d", len(merged), MAX_MODELS)
        return sorted(merged, key=lambda m: str(m["name"]))[:MAX_MODELS]

    def stream(
        self, request: Request | UnsupportedRequest
    ) -> AsyncGenerator[Piece | Vectors | Finish, None]:
        """The request on the backend that serves its model: that backend's own generator,
        nothing between it and the session (this is the path every token takes)."""
        backend = self._routes.get(request.model) or self._routes.get(f"{request.model}:latest")
        if backend is not None:
            return backend.stream(request)
        if self._down:  # it may be on a backend that does not answer now: try another machine
            error = BackendError(
                ErrorCode.BACKEND_UNAVAILABLE,
                f"no backend that answers serves {request.model!r} (down: "
                f"{', '.join(sorted(self._down))})",
                retryable=True,
            )
        else:
            error = BackendError(
                ErrorCode.MODEL_NOT_FOUND, f"no backend of this machine serves {request.model!r}"
            )
        return _refused(error)

    def _log_health(self, listings: list[Listed]) -> None:
        for listed in listings:
            label = listed.named.label
            if listed.models is None and self._down.get(label) != listed.problem:
                log.warning(
                    "backend %s is not answering (%s): its models leave", label, listed.problem
                )
                self._down[label] = listed.problem
            elif listed.models is not None and self._down.pop(label, None) is not None:
                log.info("backend %s answers again (%d models)", label, len(listed.models))

    def _log_clashes(self, clashes: set[tuple[str, str]]) -> None:
        for model, label in sorted(clashes - self._clashes):
            log.warning(
                "%s lists %r, which a backend given before it serves: its own is left out",
                label,
                model,
            )
        self._clashes = clashes


async def _refused(error: BackendError) -> AsyncGenerator[Piece | Vectors | Finish, None]:
    raise error
    yield  # an async generator that fails when first read, as a backend's stream would
