"""An OpenAI-compatible runtime as a backend: vLLM, SGLang, llama.cpp's ``llama-server``, LM
Studio, llama-cpp-python, TGI (docs/ARCHITECTURE.md "The agent's backends").

Neutral requests become OpenAI bodies (``agent/openai_wire.py``), streamed over the agent's
aiohttp pool (``agent/http_stream.py``, with the runtime's key when it has one); each SSE line
is parsed once into neutral pieces (``agent/openai_stream.py``). Closing a stream's generator
closes its HTTP response, and vLLM, llama.cpp and llama-cpp-python stop generating when their
client goes away. Discovery reads ``/v1/models`` and the extras some runtimes have
(``agent/openai_models.py``).

Two refusals are worked around once, before anything was generated: a runtime that refuses
``stream_options`` is asked again without it (and never again; usage is then not reported,
§7); and a runtime that refuses ``max_tokens`` because prompt and output together exceed the
context (vLLM does, where Ollama and llama.cpp just stop at the context) is asked again for what
fits, since ``max_tokens`` is a cap, as Ollama's ``num_predict`` is.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import aiohttp

from agent.backend import BackendError, Finish, Piece, Vectors, count, describable, unreachable
from agent.http_stream import HttpStatusError, HttpStream, LineTooLong
from agent.openai_errors import overflow, status_error
from agent.openai_models import Listing, add_lm_studio, add_props, describe, parse_models
from agent.openai_stream import DONE, Reply, event
from agent.openai_wire import JSONMap, chat_body, completion_body, dumps, embeddings_body
from protocol import ErrorCode
from protocol.frames import MAX_TOKENS
from protocol.requests import (
    ChatRequest,
    EmbedRequest,
    Request,
    TextRequest,
    UnsupportedRequest,
)

log = logging.getLogger(__name__)

DISCOVERY_TIMEOUT = 10.0  # listing the models; a runtime busy generating still answers that
_RETRIES = 2  # the two workarounds above, each at most once
KEEPALIVE = 4.0


class OpenAIBackend:
    """The runtime whose OpenAI base URL (ending in ``/v1``) is ``url``."""

    def __init__(
        self,
        url: str,
        max_connections: int = 16,
        api_key: str | None = None,
        capabilities: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.runtime = f"the runtime at {self.url}"
        self._root = self.url.removesuffix("/v1")  # llama.cpp's /props, LM Studio's /api/v0
        self._has_key = api_key is not None
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # Idle connections closed before the runtime's server closes them (uvicorn: 5 s).
        self._http = HttpStream(self.url, max_connections, headers, keepalive=KEEPALIVE)
        self._capabilities = dict(capabilities or {})
        self._ask_usage = True  # until the runtime refuses stream_options
        self._missing: set[str] = set()  # extras this runtime answered 404 to

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ discovery

    async def discover(self) -> list[dict[str, Any]]:
        """The runtime's models with their capabilities and context; ``BackendError`` saying
        what is wrong when it does not answer as an OpenAI-compatible server."""
        try:
            async with asyncio.timeout(DISCOVERY_TIMEOUT):
                listing = parse_models(await self._http.fetch("/models"))
                await self._extras(listing)
        except HttpStatusError as exc:
            raise self._listing_refused(exc) from None
        except TimeoutError:
            raise BackendError(
                ErrorCode.BACKEND_UNAVAILABLE,
                f"{self.runtime} did not list its models within {DISCOVERY_TIMEOUT:g} s",
                retryable=True,
            ) from None
        except (aiohttp.ClientError, LineTooLong) as exc:
            raise unreachable(self.runtime, exc) from None
        except ValueError as exc:
            raise BackendError(
                ErrorCode.BACKEND_ERROR,
                f"{self.url}/models is not an OpenAI model list ({exc}); is {self.url} the"
                " runtime's OpenAI base URL?",
            ) from None
        return describable(describe(listing, self._capabilities), self.runtime)

    async def _extras(self, listing: Listing) -> None:
        if listing.llama_cpp and len(listing.ids) == 1:
            props = await self._optional("/props")
            if props is not None:
                add_props(listing, props)
        elif not listing.llama_cpp and any(name not in listing.context for name in listing.ids):
            lm_studio = await self._optional("/api/v0/models")
            if lm_studio is not None:
                add_lm_studio(listing, lm_studio)

    async def _optional(self, path: str) -> bytes | None:
        """An extra only some runtimes have; one that answers 404 is not asked again."""
        if path in self._missing:
            return None
        try:
            body = await self._http.fetch(path, base_url=self._root)
            json.loads(body)
        except HttpStatusError as exc:
            if exc.status in (404, 405):
                self._missing.add(path)
            return None
        except ValueError:
            self._missing.add(path)
            return None
        return body

    def _listing_refused(self, exc: HttpStatusError) -> BackendError:
        refused = status_error(exc.status, exc.body, self.runtime, "/models")
        if exc.status in (401, 403):
            problem = "refused the agent's API key" if self._has_key else "asks for an API key"
            message = (
                f"{self.runtime} {problem} (HTTP {exc.status}); give it with"
                " --backend openai=URL,key-file=FILE (or --backend-key-file FILE)"
            )
        elif exc.status == 404:
            message = (
                f"{self.url}/models answered 404: is {self.url} the runtime's OpenAI base URL"
                " (vLLM's is http://HOST:8000/v1)?"
            )
        else:
            message = f"{self.url}/models answered HTTP {exc.status}: {refused}"
        return BackendError(ErrorCode.BACKEND_ERROR, message)

    # ------------------------------------------------------------------ requests

    async def stream(
        self, request: Request | UnsupportedRequest
    ) -> AsyncGenerator[Piece | Vectors | Finish, None]:
        """The runtime's answer to ``request``, piece by piece, then its ``Finish``; closing the
        generator closes the HTTP response, and the runtime stops. Every failure is a
        ``BackendError``."""
        if isinstance(request, EmbedRequest):
            async for vectors in self._embed(request):
                yield vectors
        elif isinstance(request, UnsupportedRequest):
            raise BackendError(ErrorCode.UNSUPPORTED, f"this agent cannot run {request.op!r}")
        else:
            async for piece in self._text(request):
                yield piece

    async def _text(self, request: TextRequest) -> AsyncIterator[Piece | Finish]:
        """Chat or a plain completion, asked again if a workaround applies (module docstring)."""
        chat = isinstance(request, ChatRequest)
        if isinstance(request, ChatRequest):
            path, body = "/chat/completions", chat_body(request, self._ask_usage)
        else:
            path, body = "/completions", completion_body(request, self._ask_usage)
        for attempt in range(_RETRIES + 1):
            try:
                async for item in self._reply(path, body, chat):
                    yield item
                return
            except HttpStatusError as exc:  # only ever before the first line (HttpStream)
                again = self._again(body, exc) if attempt < _RETRIES else None
                if again is None:
                    raise status_error(exc.status, exc.body, self.runtime, path) from None
                body = again

    async def _reply(self, path: str, body: JSONMap, chat: bool) -> AsyncIterator[Piece | Finish]:
        reply = Reply(self.runtime, chat)
        done = False
        lines = self._http.lines(path, dumps(body))
        try:
            # Read to the end, past [DONE]: a response left early takes its connection with it.
            async for batch in lines:
                # The events that arrived together make one piece, as on the Ollama path: what
                # the session would coalesce into one DELTA anyway, for less work per token.
                piece = Piece()
                try:
                    for line in batch:
                        chunk = event(line, self.runtime)
                        if isinstance(chunk, dict):
                            reply.chunk(chunk, piece)
                        else:
                            done = done or chunk is DONE
                except BackendError:
                    if piece.content or piece.thinking or piece.tool_calls:
                        yield piece  # what came before the runtime's error is the client's
                    raise
                if piece.content or piece.thinking or piece.tool_calls:
                    yield piece
        except aiohttp.ClientPayloadError as exc:
            raise BackendError(
                ErrorCode.BACKEND_ERROR, f"{self.runtime} broke off its reply ({exc})"
            ) from None
        except (aiohttp.ClientError, LineTooLong) as exc:
            raise unreachable(self.runtime, exc) from None
        finally:
            await lines.aclose()
        if not done and reply.finish_reason is None:
            raise BackendError(
                ErrorCode.BACKEND_ERROR,
                f"{self.runtime} ended the stream before it finished (its log may say why)",
            )
        leftover = reply.leftover()
        if leftover is not None:
            yield leftover
        yield reply.finish()

    def _again(self, body: JSONMap, exc: HttpStatusError) -> JSONMap | None:
        """The body to ask with again after ``exc``, if one of the workarounds applies."""
        text = exc.body.decode(errors="replace")
        if exc.status in (400, 422) and "stream_options" in body and "stream_options" in text:
            log.info("%s refuses stream_options: usage will not be reported", self.runtime)
            self._ask_usage = False
            return {k: v for k, v in body.items() if k != "stream_options"}
        if exc.status != 400 or "max_tokens" not in body:
            return None
        try:
            error = json.loads(exc.body).get("error")
        except (ValueError, AttributeError):
            error = None
        found = overflow(text, error if isinstance(error, dict) else None)
        if found is None or not found.prompt_fits:
            return None
        room = found.context - found.prompt
        return {**body, "max_tokens": room} if room < body["max_tokens"] else None

    async def _embed(self, request: EmbedRequest) -> AsyncIterator[Vectors | Finish]:
        try:
            reply = await self._http.fetch("/embeddings", dumps(embeddings_body(request)))
        except HttpStatusError as exc:
            raise status_error(exc.status, exc.body, self.runtime, "/embeddings") from None
        except (aiohttp.ClientError, LineTooLong) as exc:
            raise unreachable(self.runtime, exc) from None
        vectors, usage = self._vectors(reply, len(request.input))
        yield Vectors(vectors)
        prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        if type(prompt) is int:
            yield Finish("stop", count(prompt, MAX_TOKENS), 0, {})
        else:
            yield Finish("stop", 0, 0, {}, usage_reported=False)

    def _vectors(self, reply: bytes, inputs: int) -> tuple[list[bytes], Any]:
        """The embeddings in input order, as float32 (a base64 one is that already)."""
        try:
            data = json.loads(reply)
            items = sorted(data["data"], key=lambda item: item["index"])
            vectors = [_float32(item["embedding"]) for item in items]
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            raise BackendError(
                ErrorCode.BACKEND_ERROR, f"{self.runtime} sent malformed embeddings ({exc})"
            ) from None
        if len(vectors) != inputs:
            raise BackendError(
                ErrorCode.BACKEND_ERROR,
                f"{self.runtime} sent {len(vectors)} embeddings for {inputs} inputs",
            )
        return vectors, data.get("usage")


def _float32(embedding: Any) -> bytes:
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding, validate=True)
        if not raw or len(raw) % 4:
            raise ValueError("a base64 embedding that is not float32")
        return raw
    if not isinstance(embedding, list) or not embedding:
        raise ValueError("an embedding that is not a list of numbers")
    return struct.pack(f"<{len(embedding)}f", *embedding)
