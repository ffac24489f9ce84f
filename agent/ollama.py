"""The Ollama backend: neutral requests onto Ollama's native API (docs/ARCHITECTURE.md "Ollama
as the agent sees it").

Chat and generate stream over the agent's own aiohttp pool (``agent/http_stream.py``), each NDJSON
line parsed once, straight into neutral pieces; discovery (``/api/tags``, ``/api/show``) and
embeddings go through the ``ollama`` client. Closing a stream's generator closes its HTTP
response, which is what stops generation on the GPU.
"""

from __future__ import annotations

import json
import secrets
import struct
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
import ollama
import orjson

from agent.backend import (
    BackendError,
    Finish,
    Piece,
    Vectors,
    context_exceeded,
    count,
    describable,
    unreachable,
)
from agent.http_stream import HttpStatusError, HttpStream, LineTooLong
from protocol import ErrorCode
from protocol.frames import MAX_TOKENS, ToolCall
from protocol.json_values import INT64_MAX
from protocol.machine import MAX_CONTEXT_LENGTH
from protocol.requests import ChatRequest, EmbedRequest, Request, UnsupportedRequest, to_wire

DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
_TIMINGS = ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration")
_STATUS_CODES = {
    400: (ErrorCode.BAD_REQUEST, False),
    404: (ErrorCode.MODEL_NOT_FOUND, False),
    501: (ErrorCode.UNSUPPORTED, False),
    503: (ErrorCode.BUSY, True),
}


def base_url(host: str) -> str:
    """``OLLAMA_HOST`` as Ollama reads it: ``http://`` and port 11434 unless given."""
    scheme, has_scheme, rest = host.partition("://")
    if not has_scheme:
        scheme, rest = "http", host
    parts = urlsplit(f"{scheme}://{rest}")
    port = parts.port or (11434 if not has_scheme else {"https": 443}.get(scheme, 80))
    name = parts.hostname or "127.0.0.1"
    name = f"[{name}]" if ":" in name else name
    path = parts.path.rstrip("/")
    return f"{scheme}://{name}:{port}{path}"


class OllamaBackend:
    """Ollama at ``host``; ``api_key`` for one behind a proxy that asks for it."""

    def __init__(
        self, host: str = DEFAULT_OLLAMA_URL, max_connections: int = 16, api_key: str | None = None
    ) -> None:
        self.host = base_url(host)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Discovery and embeddings: a handful of requests, where the client's shapes help.
        self._client = ollama.AsyncClient(
            host=self.host, timeout=httpx.Timeout(None, connect=10.0), headers=headers
        )
        # The hot path: as many kept-alive connections as requests run at once.
        self._http = HttpStream(self.host, max_connections, headers)

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._client.close()  # type: ignore[no-untyped-call]  # untyped in ollama

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
        return describable(sorted(models, key=lambda m: m["name"]), "Ollama")

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
        chat = isinstance(request, ChatRequest)
        # The wire form is Ollama's shapes already. ``truncate: false`` makes Ollama refuse a
        # prompt longer than the context with a 400 instead of cutting its front (its default).
        body = to_wire(request)
        del body["op"]
        body.update(stream=True, truncate=False)
        lines = self._http.lines("/api/chat" if chat else "/api/generate", _dumps(body))
        called = False
        finish: Finish | None = None
        try:
            # Read to the end of the response even after the final line: a response left early
            # takes its connection with it, and the next request would dial Ollama anew.
            async for batch in lines:
                # The lines that arrived together make one piece: what the session would
                # coalesce into one DELTA anyway, for a fraction of the work per token.
                piece = Piece()
                try:
                    for line in batch:
                        chunk = _chunk(line)
                        _add(piece, chunk, chat)
                        if chunk.get("done") is True:
                            called = called or bool(piece.tool_calls)
                            finish = _finish(chunk, called)
                except BackendError:
                    if piece.content or piece.thinking or piece.tool_calls:
                        yield piece  # what came before Ollama's error line is the client's
                    raise
                called = called or bool(piece.tool_calls)
                if piece.content or piece.thinking or piece.tool_calls:
                    yield piece
        except HttpStatusError as exc:
            raise _status_error(exc) from None
        except (aiohttp.ClientError, LineTooLong) as exc:
            raise unreachable("Ollama", exc) from None
        finally:
            await lines.aclose()
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


# ------------------------------------------------------------------ one NDJSON line


def _dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _chunk(line: bytes) -> dict[str, Any]:
    """One line of Ollama's reply as a map; an ``{"error": …}`` line (an error after the
    stream began, OLLAMA.md "Errors") is raised as Ollama's refusal. orjson: the agent parses
    one line per token, and the standard parser was a tenth of its CPU (README "Benchmarks")."""
    try:
        chunk = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise BackendError(ErrorCode.BACKEND_ERROR, "Ollama sent a line that is not JSON") from None
    if not isinstance(chunk, dict):
        raise BackendError(ErrorCode.BACKEND_ERROR, "Ollama sent a line that is not an object")
    if "error" in chunk:
        raise _refusal(str(chunk["error"]), ErrorCode.BACKEND_ERROR, retryable=False)
    return chunk


def _add(piece: Piece, chunk: dict[str, Any], chat: bool) -> None:
    """Add one line's output to ``piece``."""
    if not chat:
        piece.content += _text(chunk.get("response"))
        piece.thinking += _text(chunk.get("thinking"))
        return
    message = chunk.get("message")
    if not isinstance(message, dict):
        return
    piece.content += _text(message.get("content"))
    piece.thinking += _text(message.get("thinking"))
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        piece.tool_calls.extend(_tool_call(call) for call in calls)


def _tool_call(call: Any) -> ToolCall:
    """Ollama's ids and indexes are not always there (OLLAMA.md), so the agent makes its own
    ids. The arguments travel as compact JSON text (PROTOCOL.md §2): what OpenAI clients expect
    as is, and what the windows charge by its size (§8). ASCII escapes keep a lone surrogate
    from the model encodable."""
    function = call.get("function") if isinstance(call, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    arguments = function.get("arguments", {}) if isinstance(function, dict) else None
    if not isinstance(name, str) or not isinstance(arguments, dict):
        raise BackendError(ErrorCode.BACKEND_ERROR, "Ollama sent a malformed tool call")
    return {
        "id": "call_" + secrets.token_hex(12),
        "name": name,
        "arguments": json.dumps(arguments, separators=(",", ":")),
    }


def _finish(chunk: dict[str, Any], called_tools: bool) -> Finish:
    if called_tools:
        reason = "tool_calls"
    elif chunk.get("done_reason") == "length":
        reason = "length"
    else:
        reason = "stop"
    timings = {name: value for name in _TIMINGS if (value := count(chunk.get(name), INT64_MAX))}
    prompt = count(chunk.get("prompt_eval_count"), MAX_TOKENS)
    return Finish(reason, prompt, count(chunk.get("eval_count"), MAX_TOKENS), timings)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


# ------------------------------------------------------------------ errors


def _refusal(message: str, code: ErrorCode, *, retryable: bool) -> BackendError:
    context = _context_error(message)
    return context if context is not None else BackendError(code, message, retryable=retryable)


def _status_error(exc: HttpStatusError) -> BackendError:
    """Ollama's error reply, ``{"error": "<message>"}``, as a protocol error code."""
    try:
        message = str(json.loads(exc.body)["error"])
    except (ValueError, KeyError, TypeError):
        message = exc.body.decode(errors="replace").strip() or f"HTTP {exc.status}"
    code, retryable = _STATUS_CODES.get(exc.status, (ErrorCode.BACKEND_ERROR, False))
    return _refusal(message, code, retryable=retryable)


def _context_error(message: str) -> BackendError | None:
    """Ollama's refusal of a prompt longer than the context (``truncate: false``) carries
    llama.cpp's error as JSON inside the error string; say it plainly, with both sizes."""
    if "exceed_context_size_error" not in message:
        return None
    try:
        inner = json.loads(message)["error"]
        prompt, context = int(inner["n_prompt_tokens"]), int(inner["n_ctx"])
    except (ValueError, KeyError, TypeError):
        return BackendError(ErrorCode.CONTEXT_LENGTH_EXCEEDED, message)
    return context_exceeded(prompt, context, "raise OLLAMA_CONTEXT_LENGTH on the GPU box")


def _translate(exc: Exception) -> BackendError:
    """The ``ollama`` client's exceptions (discovery, embeddings) as protocol error codes."""
    if isinstance(exc, ollama.ResponseError):
        code, retryable = _STATUS_CODES.get(exc.status_code, (ErrorCode.BACKEND_ERROR, False))
        return _refusal(exc.error, code, retryable=retryable)
    if isinstance(exc, (ConnectionError, httpx.TransportError)):
        return unreachable("Ollama", exc)
    return BackendError(ErrorCode.BACKEND_ERROR, f"{type(exc).__name__}: {exc}")


# ------------------------------------------------------------------ discovery


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
