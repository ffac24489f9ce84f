"""The OpenAI legacy completions dialect (``POST /v1/completions``): validation, the neutral
request, and rendering.

Nothing here does I/O. A completion is plain text continuation, so it maps onto the neutral
``generate`` op (Ollama's generate API) rather than chat. ``CompletionRenderer`` turns the
neutral events (DELTA / END) into ``text_completion`` chunks or one ``text_completion`` object,
in the same streaming form as chat (``sse.ChunkRenderer``).
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edge.api import sse
from edge.api.chat import StreamOptions, sampling_options
from edge.api.dialect import Call, TextDialect, TextRenderer
from edge.errors import ApiError, bad_request
from protocol import Delta, End
from protocol.requests import GenerateRequest, Options, TextRequest

# What OpenAI generates when max_tokens is not given (or null) on this endpoint.
DEFAULT_MAX_TOKENS = 16

_PROMPT_SHAPES = (
    "prompt must be a string or a list of exactly one string; batches of several prompts and "
    "token-id arrays are not supported"
)


class CompletionRequest(BaseModel):
    # Unknown fields (user, logit_bias, …) are ignored, as in the chat dialect.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    # Any list shape is accepted here and judged in ``_one_prompt``, for one clear message.
    prompt: str | list[Any]
    suffix: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    n: int | None = Field(default=None, ge=1)
    best_of: int | None = Field(default=None, ge=1)
    echo: bool | None = None
    logprobs: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt: str | list[Any]) -> str | list[Any]:
        if isinstance(prompt, list) and not (len(prompt) == 1 and isinstance(prompt[0], str)):
            raise ValueError(_PROMPT_SHAPES)
        return prompt

    @property
    def text(self) -> str:
        """The one prompt, whichever of its two accepted shapes it came in."""
        return self.prompt if isinstance(self.prompt, str) else str(self.prompt[0])


def parse_request(body: dict[str, Any]) -> CompletionRequest:
    """Validate ``body``; a 400 naming the first offending parameter otherwise."""
    try:
        return CompletionRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        # A union's failure carries the member tried ("prompt.str"); the client sent "prompt".
        param = str(first["loc"][0]) if first["loc"] else "body"
        message = first["msg"].removeprefix("Value error, ")
        if param == "prompt" and first["type"] != "missing":
            message = _PROMPT_SHAPES
        raise bad_request(f"Invalid value for '{param}': {message}", param=param) from None


def _unsupported(message: str, param: str) -> ApiError:
    return bad_request(message, param=param, code="unsupported_parameter")


def to_neutral(req: CompletionRequest, capabilities: list[str]) -> GenerateRequest:
    """The neutral ``generate`` request for ``req``.

    ``capabilities`` are the model's when a machine of the tenant serves it, else empty (an
    unknown model is then refused as such, not for one of its capabilities)."""
    if req.n is not None and req.n > 1:
        raise bad_request("n > 1 is not supported: ask for one choice per request", param="n")
    if req.best_of is not None and req.best_of > 1:
        raise bad_request("best_of > 1 is not supported", param="best_of")
    if req.echo:
        raise _unsupported("echo is not supported: the prompt is not repeated", "echo")
    if req.logprobs is not None:
        raise _unsupported("logprobs are not supported on this endpoint", "logprobs")
    if req.suffix and capabilities and "insert" not in capabilities:
        raise ApiError(
            400,
            "model_does_not_support_insert",
            f"The model `{req.model}` cannot fill in between a prompt and a suffix "
            "(no `insert` capability)",
            param="suffix",
        )
    options = Options(num_predict=req.max_tokens or DEFAULT_MAX_TOKENS, **sampling_options(req))
    return GenerateRequest(
        req.model,
        req.text,
        suffix=req.suffix or None,
        options=options,
        # The text_completion shape has no place for reasoning: thinking would only spend the
        # max_tokens (16 by default) before any text came. Ollama's own layer leaves it on.
        think=False if "thinking" in capabilities else None,
    )


class CompletionRenderer(sse.ChunkRenderer):
    """Renders one stream's neutral events as ``text_completion`` chunks or one completion."""

    def __init__(self, model: str, include_usage: bool = False) -> None:
        super().__init__(include_usage)
        self.model = model
        self.id = "cmpl-" + secrets.token_hex(12)
        self.created = int(time.time())

    @staticmethod
    def finish_reason(end: End) -> str:
        return end.finish_reason if end.finish_reason in ("stop", "length") else "stop"

    def _text_chunk(self, text: str, finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}
            ],
        }

    def first_chunk(self) -> dict[str, Any]:
        return self._text_chunk("")

    def delta_chunk(self, frame: Delta) -> dict[str, Any]:
        return self._text_chunk(frame.content)

    def finish_chunk(self, end: End) -> dict[str, Any]:
        return self._text_chunk("", self.finish_reason(end))

    def usage_chunk(self, end: End) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": sse.usage(end),
        }

    def completion(self, deltas: list[Delta], end: End) -> dict[str, Any]:
        body = self._text_chunk("".join(d.content for d in deltas), self.finish_reason(end))
        body["usage"] = sse.usage(end)
        return body


class CompletionsDialect(TextDialect[CompletionRequest]):
    def parse(self, body: dict[str, Any]) -> CompletionRequest:
        return parse_request(body)

    def neutral(self, call: Call[CompletionRequest]) -> TextRequest:
        return to_neutral(call.req, call.capabilities or [])

    def renderer(self, call: Call[CompletionRequest], request: TextRequest) -> TextRenderer:
        options = call.req.stream_options
        return CompletionRenderer(call.req.model, bool(options and options.include_usage))


DIALECT = CompletionsDialect()
