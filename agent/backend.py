"""The Ollama backend: model discovery and neutral requests mapped onto the ``ollama`` client.

It sees only the neutral request (DESIGN.md "The neutral model") and yields neutral pieces; it
knows nothing of HTTP dialects or frames. Closing the generator (the stream was cancelled) closes
the HTTP response to Ollama, which is what stops generation on the GPU (OLLAMA.md).
"""

from __future__ import annotations

import json
import logging
import secrets
import struct
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import ollama

from protocol import ErrorCode, RemoteProtocolError
from protocol.frames import MAX_CONTEXT_LENGTH, MAX_MODELS, ToolCall, check_model
from protocol.requests import (
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    Request,
    UnsupportedRequest,
    to_wire,
)

log = logging.getLogger(__name__)

DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"


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
    """The request finished: why, and what it cost."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    timings: dict[str, int]


class BackendError(Exception):
    """The backend refused or failed a request; ``code`` and ``retryable`` go into ERROR."""

    def __init__(self, code: ErrorCode, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


_STATUS_CODES = {
    400: (ErrorCode.BAD_REQUEST, False),
    404: (ErrorCode.MODEL_NOT_FOUND, False),
    501: (ErrorCode.UNSUPPORTED, False),
    503: (ErrorCode.BUSY, True),
}


def _context_error(message: str) -> BackendError | None:
    """Ollama's refusal of a prompt longer than the context (``truncate: false``) carries
    llama.cpp's error as JSON inside the error string; say it plainly, with both sizes. The
    words "prompt is too long" are what Claude Code looks for to compact its conversation."""
    if "exceed_context_size_error" not in message:
        return None
    try:
        inner = json.loads(message)["error"]
        prompt, context = int(inner["n_prompt_tokens"]), int(inner["n_ctx"])
    except (ValueError, KeyError, TypeError):
        return BackendError(ErrorCode.CONTEXT_LENGTH_EXCEEDED, message)
    return BackendError(
        ErrorCode.CONTEXT_LENGTH_EXCEEDED,
        f"prompt is too long: {prompt} tokens > {context} maximum (the model's context on this"
        " machine; raise OLLAMA_CONTEXT_LENGTH on the GPU box, or shorten the prompt)",
    )


def _translate(exc: Exception) -> BackendError:
    """Map the ollama client's exceptions onto protocol error codes, once, here."""
    if isinstance(exc, ollama.ResponseError) and (context := _context_error(exc.error)):
        return context
    if isinstance(exc, ollama.ResponseError):
        code, retryable = _STATUS_CODES.get(exc.status_code, (ErrorCode.BACKEND_ERROR, False))
        return BackendError(code, exc.error, retryable=retryable)
    if isinstance(exc, (ConnectionError, httpx.TransportError)):
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return BackendError(
            ErrorCode.BACKEND_UNAVAILABLE, f"cannot reach Ollama: {reason}", retryable=True
        )
    return BackendError(ErrorCode.BACKEND_ERROR, f"{type(exc).__name__}: {exc}")


_Chunk = TypeVar("_Chunk", ollama.ChatResponse, ollama.GenerateResponse)


class OllamaBackend:
    def __init__(self, host: str = DEFAULT_OLLAMA_URL, max_connections: int = 16) -> None:
        self.host = host
        self._client = ollama.AsyncClient(
            host=host,
            # No overall timeout: a long generation is normal. Connecting must be quick, though.
            timeout=httpx.Timeout(None, connect=10.0),
            # As many connections as concurrent requests, but few kept idle: httpcore scans its
            # whole pool on every request, and at 64 idle connections that cost more than the
            # reconnects it saves (./dev bench (d): 100 vs 150 requests/s).
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=8),
        )

    async def discover(self) -> list[dict[str, Any]]:
        """Every local model with its capabilities, from ``/api/tags`` and ``/api/show``; those
        the tunnel cannot describe (PROTOCOL.md §2's bounds) are left out and logged."""
        try:
            listing = await self._client.list()
            models = []
            for entry in listing.models:
                if entry.model is None:
                    continue
                shown = await self._client.show(entry.model)
                models.append(_model_info(entry, shown))
        except Exception as exc:
            raise _translate(exc) from exc
        return _describable(sorted(models, key=lambda m: m["name"]))

    async def stream(
        self, request: Request | UnsupportedRequest
    ) -> AsyncGenerator[Piece | Vectors | Finish, None]:
        """Run a neutral request; ``BackendError`` for every failure. Close it (``aclose``) to
        stop the request early."""
        if isinstance(request, UnsupportedRequest):
            raise BackendError(ErrorCode.UNSUPPORTED, f"this agent cannot run {request.op!r}")
        if isinstance(request, EmbedRequest):
            async for item in self._embed(request):
                yield item
            return
        try:
            chunks: AsyncIterator[ollama.ChatResponse | ollama.GenerateResponse]
            if isinstance(request, ChatRequest):
                chunks = await self._stream(ollama.ChatResponse, "/api/chat", request)
            else:
                chunks = await self._stream(ollama.GenerateResponse, "/api/generate", request)
            called = False
            finish: Finish | None = None
            # Read to the end of the response even after the final chunk: a response closed
            # early takes its connection with it, and every request would dial Ollama anew.
            async for chunk in chunks:
                piece = _piece(chunk)
                called = called or bool(piece.tool_calls)
                if piece.content or piece.thinking or piece.tool_calls:
                    yield piece
                if chunk.done:
                    finish = _finish(chunk, called)
        except Exception as exc:
            raise _translate(exc) from exc
        if finish is None:
            raise BackendError(ErrorCode.BACKEND_ERROR, "Ollama ended the stream unfinished")
        yield finish

    async def _embed(self, request: EmbedRequest) -> AsyncIterator[Vectors | Finish]:
        try:
            reply = await self._client.embed(
                model=request.model,
                input=list(request.input),
                truncate=request.truncate,
                dimensions=request.dimensions,
            )
        except Exception as exc:
            raise _translate(exc) from exc
        vectors = [struct.pack(f"<{len(v)}f", *v) for v in reply.embeddings]
        yield Vectors(vectors)
        timings = {
            name: value
            for name in ("total_duration", "load_duration")
            if (value := getattr(reply, name, None))
        }
        yield Finish("stop", reply.prompt_eval_count or 0, 0, timings)

    async def _stream(
        self, kind: type[_Chunk], path: str, request: ChatRequest | GenerateRequest
    ) -> AsyncIterator[_Chunk]:
        """POST the request (its wire form is Ollama's shapes already) and stream the reply.

        ``truncate: false`` makes Ollama refuse a prompt longer than the context with a 400
        instead of silently cutting it from the front (its default). The client's ``chat()`` and
        ``generate()`` do not take that field yet, so the body goes through its request method.
        """
        body = to_wire(request)
        del body["op"]
        body.update(stream=True, truncate=False)
        return await self._client._request(kind, "POST", path, json=body, stream=True)


def _piece(chunk: ollama.ChatResponse | ollama.GenerateResponse) -> Piece:
    if isinstance(chunk, ollama.GenerateResponse):
        return Piece(chunk.response or "", chunk.thinking or "")
    message = chunk.message
    calls = [
        # The client drops Ollama's own call ids and indexes, so the agent makes its own. The
        # arguments travel as compact JSON text (PROTOCOL.md §2): what OpenAI clients expect
        # as is, and what the windows charge by its size (§8). ASCII escapes keep a lone
        # surrogate from the model encodable.
        {
            "id": "call_" + secrets.token_hex(12),
            "name": call.function.name,
            "arguments": json.dumps(dict(call.function.arguments), separators=(",", ":")),
        }
        for call in message.tool_calls or ()
    ]
    return Piece(message.content or "", message.thinking or "", calls)


def _finish(chunk: ollama.ChatResponse | ollama.GenerateResponse, called_tools: bool) -> Finish:
    if called_tools:
        reason = "tool_calls"
    elif chunk.done_reason == "length":
        reason = "length"
    else:
        reason = "stop"
    timings = {
        name: value
        for name in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
        if (value := getattr(chunk, name, None))
    }
    return Finish(reason, chunk.prompt_eval_count or 0, chunk.eval_count or 0, timings)


def _describable(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The models HELLO and MODELS can carry: one the edge would refuse would otherwise refuse
    the whole list, and the agent could never log in (PROTOCOL.md §5)."""
    kept = []
    for model in models:
        try:
            check_model(model)
        except RemoteProtocolError as exc:
            log.warning("leaving out a model the tunnel cannot describe: %s", exc)
            continue
        kept.append(model)
    if len(kept) > MAX_MODELS:
        log.warning("Ollama lists %d models; advertising the first %d", len(kept), MAX_MODELS)
    return kept[:MAX_MODELS]


def _model_info(entry: ollama.ListResponse.Model, shown: ollama.ShowResponse) -> dict[str, Any]:
    details = entry.details
    info: dict[str, Any] = {
        "name": entry.model,
        "capabilities": list(shown.capabilities or []),
        "family": details.family if details and details.family else "",
        "parameter_size": details.parameter_size if details and details.parameter_size else "",
        "quantization": details.quantization_level
        if details and details.quantization_level
        else "",
    }
    model_info = shown.modelinfo or {}
    architecture = model_info.get("general.architecture")
    context = model_info.get(f"{architecture}.context_length") if architecture else None
    if type(context) is int and 0 <= context <= MAX_CONTEXT_LENGTH:  # else unknown, not wrong
        info["context_length"] = context
    return info
