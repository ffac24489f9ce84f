"""The OpenAI embeddings dialect (``POST /v1/embeddings``): request validation, the neutral
``embed`` request, rendering.

Vectors cross the tunnel as little-endian float32 (PROTOCOL.md §2), which is exactly what
``encoding_format: base64`` sends; ``float`` writes each value with 9 significant digits, enough
to give back the same float32. Nothing here does I/O.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.api.dialect import Call, EmbeddingsDialect
from edge.errors import bad_request
from protocol import End
from protocol.requests import EmbedRequest

MAX_INPUTS = 2048  # OpenAI's own limit per request


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @property
    def stream(self) -> bool:
        return False  # embeddings come whole

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input  # type: ignore[return-value]


def parse_request(body: dict[str, Any]) -> EmbeddingRequest:
    """Validate ``body``; a 400 naming the offending parameter otherwise."""
    try:
        req = EmbeddingRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = str(first["loc"][0]) if first["loc"] else None
        raise bad_request(f"Invalid value for '{param}': {first['msg']}", param=param) from None
    texts = req.input if isinstance(req.input, list) else [req.input]
    if not texts:
        raise bad_request("input must not be empty", param="input")
    if not all(isinstance(text, str) for text in texts):
        raise bad_request(
            "token arrays are not supported: send the text (Ollama tokenizes it)", param="input"
        )
    if any(text == "" for text in texts):
        raise bad_request("input must not contain empty strings", param="input")
    if len(texts) > MAX_INPUTS:
        raise bad_request(f"at most {MAX_INPUTS} inputs per request", param="input")
    return req


def to_neutral(req: EmbeddingRequest) -> EmbedRequest:
    # truncate: as OpenAI does, a long input is cut to the context, not refused.
    return EmbedRequest(req.model, tuple(req.texts), req.dimensions, truncate=True)


def render(req: EmbeddingRequest, vectors: list[bytes], end: End) -> str:
    """The response body, as JSON text (written by hand so each float keeps 9 digits)."""
    items = []
    for index, vector in enumerate(vectors):
        if req.encoding_format == "base64":
            embedding = json.dumps(base64.b64encode(vector).decode())
        else:
            values = struct.unpack(f"<{len(vector) // 4}f", vector)
            embedding = "[" + ",".join(f"{value:.9g}" for value in values) + "]"
        items.append(f'{{"object":"embedding","index":{index},"embedding":{embedding}}}')
    usage = {"prompt_tokens": end.prompt_tokens, "total_tokens": end.prompt_tokens}
    return (
        f'{{"object":"list","data":[{",".join(items)}],'
        f'"model":{json.dumps(req.model)},"usage":{json.dumps(usage)}}}'
    )


class EmbeddingsApi(EmbeddingsDialect[EmbeddingRequest]):
    def parse(self, body: dict[str, Any]) -> EmbeddingRequest:
        return parse_request(body)

    def neutral(self, call: Call[EmbeddingRequest]) -> EmbedRequest:
        return to_neutral(call.req)

    def body(self, call: Call[EmbeddingRequest], vectors: list[bytes], end: End) -> bytes:
        return render(call.req, vectors, end).encode()


DIALECT = EmbeddingsApi()
