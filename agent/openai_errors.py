"""What an OpenAI-compatible runtime's errors mean for the tunnel (PROTOCOL.md §6).

Error bodies come in several shapes: OpenAI's ``{"error": {"message", "type", "code"}}``
(llama.cpp, newer vLLM, llama-cpp-python), ``{"object": "error", "message", "code"}`` (older
vLLM, SGLang), FastAPI's ``{"detail": …}`` (a route that does not exist, a 422), a bare
``{"error": "…"}`` or plain text. The runtime's message is kept; its status becomes the code the
edge answers with: 400 stays 400 and 404 stays 404 (or 501 when the runtime has no such route),
a 422 is a 400, 429 and 503 are ``busy`` (another machine is tried).

A prompt longer than the model's context is said as Ollama's is (``context_exceeded``), from
whichever of the runtimes' messages below it came in.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agent.backend import BackendError, context_exceeded
from protocol import ErrorCode

REMEDY = "raise the model's context on the runtime (vLLM --max-model-len, llama.cpp -c)"

_STATUS_CODES = {
    400: (ErrorCode.BAD_REQUEST, False),
    404: (ErrorCode.MODEL_NOT_FOUND, False),
    405: (ErrorCode.UNSUPPORTED, False),
    408: (ErrorCode.BACKEND_TIMEOUT, False),
    413: (ErrorCode.BAD_REQUEST, False),
    422: (ErrorCode.BAD_REQUEST, False),
    429: (ErrorCode.BUSY, True),
    501: (ErrorCode.UNSUPPORTED, False),
    503: (ErrorCode.BUSY, True),
}

# (pattern, group of the context size, group of the prompt's tokens), per runtime's wording.
_MAX = r"maximum context length is (\d+) tokens"
_OVERFLOWS: tuple[tuple[re.Pattern[str], int, int], ...] = tuple(
    (re.compile(pattern), context, prompt)
    for pattern, context, prompt in (
        # vLLM since 0.11: the prompt, or the prompt with the output asked for, is too long.
        (
            _MAX + r"\. However, you requested \d+ output tokens and your prompt contains"
            r" (?:at least )?(\d+) input tokens",
            1,
            2,
        ),
        (_MAX + r" and your request has (\d+) input tokens", 1, 2),
        (_MAX + r"\. However, your request has (\d+) input", 1, 2),
        # Older vLLM, and llama-cpp-python in its words: "(P in the messages, M in the
        # completion)", "(P in your prompt; M for the completion)", M perhaps "None".
        (_MAX + r"[.,] [Hh]owever,? you requested \d+ tokens \((\d+) in", 1, 2),
        (_MAX + r"\. However, you requested (\d+) tokens in", 1, 2),
        # vLLM's engine, past the OpenAI layer's checks.
        (r"decoder prompt \(length (\d+)\) is longer than the maximum model length of (\d+)", 2, 1),
        # SGLang.
        (r"input \((\d+) tokens\) is longer than the model's context length \((\d+) tokens", 2, 1),
        (r"Input length \((\d+) tokens\) exceeds the maximum allowed length \((\d+) tokens", 2, 1),
        (
            r"maximum context length of (\d+) tokens\. You requested a total of \d+ tokens: (\d+)",
            1,
            2,
        ),
        # LM Studio.
        (
            r"keep the first (\d+) tokens when context the overflows\. However, the model is"
            r" loaded with context length of only (\d+)",
            2,
            1,
        ),
        # TGI.
        (r"must be <= (\d+)\. Given: (\d+) `inputs` tokens", 1, 2),
        # llama.cpp, its message alone (the sizes are fields too, read first).
        (r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens", 2, 1),
    )
)


@dataclass(frozen=True, slots=True)
class Overflow:
    """The runtime refused a request for its context: the prompt's tokens and the context's.
    When the prompt itself fits, only the output asked for (``max_tokens``) did not."""

    prompt: int
    context: int

    @property
    def prompt_fits(self) -> bool:
        return self.prompt < self.context

    def error(self) -> BackendError:
        return context_exceeded(self.prompt, self.context, REMEDY)


def overflow(message: str, error: dict[str, Any] | None = None) -> Overflow | None:
    """The sizes in a refusal for the context, if ``message`` (or llama.cpp's ``error``
    object, which carries them as fields) is one."""
    if error is not None and error.get("type") == "exceed_context_size_error":
        prompt, context = error.get("n_prompt_tokens"), error.get("n_ctx")
        if type(prompt) is int and type(context) is int:
            return Overflow(prompt, context)
    for pattern, context_group, prompt_group in _OVERFLOWS:
        match = pattern.search(message)
        if match is not None:
            return Overflow(int(match.group(prompt_group)), int(match.group(context_group)))
    return None


def status_error(status: int, body: bytes, runtime: str, path: str) -> BackendError:
    """The runtime's error reply to ``path`` as the error the stream ends with."""
    message, error = _message(body)
    message = message or f"HTTP {status}"
    refusal = _context_refusal(message, error)
    if refusal is not None:
        return refusal
    if status in (401, 403):
        return BackendError(
            ErrorCode.BACKEND_ERROR,
            f"{runtime} refused the agent's API key (HTTP {status}: {message}); give the agent"
            " its key with --backend openai=URL,key-file=FILE",
        )
    if path == "/embeddings" and status == 500 and "embedding" in message.lower():
        # llama-cpp-python's model loaded without embeddings: a 500 that says so.
        return BackendError(ErrorCode.UNSUPPORTED, f"{runtime} cannot embed: {message}")
    code, retryable = _STATUS_CODES.get(status, (ErrorCode.BACKEND_ERROR, False))
    if code is ErrorCode.MODEL_NOT_FOUND and not _names_a_model(message, error):
        # A 404 that says nothing of a model is a route this runtime does not have (TGI has
        # no /embeddings; llama.cpp without --embeddings says 501 itself).
        return BackendError(ErrorCode.UNSUPPORTED, f"{runtime} does not serve {path} ({message})")
    return BackendError(code, message, retryable=retryable)


def stream_error(event: dict[str, Any], runtime: str) -> BackendError:
    """An error sent as an event once the stream had begun (HTTP 200 already): vLLM's
    ``{"error": {…}}``, llama.cpp's ``error:`` field, an ``{"object": "error"}``."""
    message, error = _message(json.dumps(event).encode())
    refusal = _context_refusal(message, error)
    if refusal is not None:
        return refusal
    status = error.get("code") if error is not None else None
    if type(status) is int and status in _STATUS_CODES:
        code, retryable = _STATUS_CODES[status]
        return BackendError(code, message, retryable=retryable)
    return BackendError(ErrorCode.BACKEND_ERROR, f"{runtime}: {message}")


def _context_refusal(message: str, error: dict[str, Any] | None) -> BackendError | None:
    found = overflow(message, error)
    if found is not None:
        return found.error()
    code = error.get("code") if error is not None else None
    kind = error.get("type") if error is not None else None
    # llama.cpp before late 2025 said it without sizes.
    if (
        code == "context_length_exceeded"
        or kind == "exceed_context_size_error"
        or "exceeds the available context size" in message
    ):
        return BackendError(ErrorCode.CONTEXT_LENGTH_EXCEEDED, message)
    return None


def _names_a_model(message: str, error: dict[str, Any] | None) -> bool:
    code = error.get("code") if error is not None else None
    return "model" in message.lower() or code == "model_not_found"


def _message(body: bytes) -> tuple[str, dict[str, Any] | None]:
    """The message of an error body, and its error object when it has one."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip(), None
    if not isinstance(data, dict):
        return body.decode(errors="replace").strip(), None
    error = data.get("error", data)
    while isinstance(error, dict) and isinstance(error.get("error"), dict):
        error = error["error"]  # an error event that wraps the error response whole
    if isinstance(error, str):
        return error, None
    if not isinstance(error, dict):
        return str(error), None
    message = error.get("message")
    if message is None and "detail" in error:
        message = _detail(error["detail"])
    return (str(message) if message is not None else json.dumps(error)), error


def _detail(detail: Any) -> str:
    """FastAPI's ``detail``: a string, or a 422's list of ``{loc, msg}``."""
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(detail)
