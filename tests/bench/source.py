"""A fast token source for the benchmarks: Ollama's NDJSON and OpenAI's SSE on raw asyncio.

    python -m tests.bench.source [--host 127.0.0.1] [--port 0]

prints ``listening on PORT`` and serves until terminated. The simulated Ollama
(``llmtunnel sim-ollama``) runs on aiohttp and makes each line with ``json.dumps`` and a fresh
timestamp: its own cost per token is of the order of the tunnel's, so through it the bench would
measure the simulator. This server is an ``asyncio.Protocol`` speaking just enough HTTP/1.1
(keep-alive, ``Content-Length`` request bodies, chunked responses), and every token line is a
prebuilt prefix, a token from a fixed list and a prebuilt suffix. Each token is still written
on its own (one chunk, one ``send``), as Ollama and OpenAI write theirs.

The model name sets the pace: ``fast`` streams as fast as the loop turns (a yield between
tokens), ``delay-10ms`` waits 10 ms per token (any ``delay-Xms``), on a fixed schedule from the
request's arrival, so a late token does not push back the ones after it. ``tokens=N`` in the
last message sets the reply's length (24 when absent), as the simulator's directive does.

Every token ends with ``~`` (and nothing else the server writes holds one), so a client counts
tokens by counting ``~`` in the body, however the proxy in between framed or merged them.

Endpoints: ``GET /api/tags``, ``POST /api/show`` and ``GET /api/version`` in the shapes the
simulator returns (enough for the agent's discovery through the ``ollama`` client);
``POST /api/chat`` and ``POST /api/generate``, streamed (NDJSON) or not;
``GET /v1/models`` (as vLLM lists them, for the agent's OpenAI-compatible backend) and
``POST /v1/chat/completions``, streamed (SSE, with the usage chunk when
``stream_options.include_usage`` asks) or not, with ``usage``; and ``GET /_source/stats``, the
connections accepted, requests answered and replies cut short by their client so far, with when
(``time.monotonic()``) the last was cut.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import json
import re
import signal
import time
from collections import deque
from collections.abc import Callable
from typing import Any

MODELS = ("fast", "delay-10ms")  # what /api/tags lists; any delay-Xms is served
DEFAULT_TOKENS = 24
MAX_TOKENS = 100_000
MAX_HEAD = 16 * 1024
MAX_BODY = 16 * 1024 * 1024
WORDS = (
    "the",
    "tunnel",
    "carries",
    "every",
    "token",
    "from",
    "GPU",
    "box",
    "to",
    "client",
    "and",
    "back",
)
# Token i of a reply: a word and the marker, with a leading space after the first.
TOKENS = tuple(w.encode() + b"~" for w in WORDS)
SPACED = tuple(b" " + t for t in TOKENS)
_TOKENS_RE = re.compile(r"\btokens=(\d+)")
_DELAY_RE = re.compile(r"delay-(\d+(?:\.\d+)?)ms")


def token(i: int) -> bytes:
    return SPACED[i % len(SPACED)] if i else TOKENS[0]


def reply_text(count: int) -> str:
    return b"".join(token(i) for i in range(count)).decode()


def delay_of(model: str) -> float | None:
    """Seconds per token for a model name, None for a model this source does not serve."""
    name = model.removesuffix(":latest")
    if name == "fast":
        return 0.0
    match = _DELAY_RE.fullmatch(name)
    return float(match.group(1)) / 1000 if match else None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _json(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(payload), payload)


# ---------------------------------------------------------------------- discovery shapes


def _details(name: str) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "3.2B",
        "quantization_level": "Q4_K_M",
    }


def _tags() -> dict[str, Any]:
    return {
        "models": [
            {
                "name": name,
                "model": name,
                "modified_at": "2026-10-01T12:00:00.000000000Z",
                "size": 2_000_000_000,
                "digest": hashlib.sha256(name.encode()).hexdigest(),
                "details": _details(name),
            }
            for name in MODELS
        ]
    }


def _show(name: str) -> dict[str, Any]:
    return {
        "license": "bench",
        "modelfile": f"FROM {name}\n",
        "parameters": 'stop "<|end|>"',
        "template": "{{ .Prompt }}",
        "details": _details(name),
        "model_info": {
            "general.architecture": "llama",
            "general.parameter_count": 1,
            "llama.context_length": 131072,
        },
        "capabilities": ["completion", "tools"],
        "modified_at": "2026-10-01T12:00:00.000000000Z",
    }


# ---------------------------------------------------------------------- one request


class Request:
    __slots__ = ("body", "close", "method", "path")

    def __init__(self, method: str, path: str, body: bytes, close: bool) -> None:
        self.method, self.path, self.body, self.close = method, path, body, close


class Reply:
    """What one generation writes: its head, each token's line, the end, or a whole body."""

    __slots__ = ("count", "delay", "end", "head", "line", "whole")

    def __init__(
        self,
        count: int,
        delay: float,
        head: bytes,
        line: Callable[[int], bytes],
        end: Callable[[], bytes],
        whole: Callable[[], bytes] | None,
    ) -> None:
        self.count, self.delay, self.head, self.line, self.end = count, delay, head, line, end
        self.whole = whole  # a non-streamed reply's body, written after every token's delay


def _metrics(count: int, prompt: int, started: float) -> dict[str, int]:
    total = max(int((time.perf_counter() - started) * 1e9), 1000)
    return {
        "total_duration": total,
        "load_duration": max(total // 20, 1),
        "prompt_eval_count": prompt,
        "prompt_eval_duration": max(total // 10, 1),
        "eval_count": count,
        "eval_duration": max(total - total // 5, 1),
    }


def _ollama(path: str, body: dict[str, Any], delay: float, count: int, prompt: int) -> Reply:
    started = time.perf_counter()
    model = str(body["model"])
    stream = body.get("stream", True) is not False
    created = _now()
    chat = path == "/api/chat"
    head = b'{"model":%b,"created_at":"%b",' % (_json(model), created.encode())
    if chat:
        before, after = head + b'"message":{"role":"assistant","content":"', b'"},"done":false}\n'
    else:
        before, after = head + b'"response":"', b'","done":false}\n'

    def final(content: str) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model, "created_at": _now()}
        if chat:
            out["message"] = {"role": "assistant", "content": content}
        else:
            out["response"] = content
        out.update(done=True, done_reason="stop", **_metrics(count, prompt, started))
        if not chat:
            out["context"] = list(range(1, min(prompt + count, 64) + 1))
        return out

    head_bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
    if not stream:
        return Reply(
            count, delay, b"", lambda i: b"", lambda: b"", lambda: _json(final(reply_text(count)))
        )
    return Reply(
        count,
        delay,
        head_bytes + b"Transfer-Encoding: chunked\r\n\r\n",
        lambda i: _chunk(before + token(i) + after),
        lambda: _chunk(_json(final("")) + b"\n") + b"0\r\n\r\n",
        None,
    )


def _openai(body: dict[str, Any], delay: float, count: int, prompt: int) -> Reply:
    model = str(body["model"])
    stream = body.get("stream") is True
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    ident = "chatcmpl-" + hashlib.sha256(str(time.perf_counter_ns()).encode()).hexdigest()[:24]
    created = int(time.time())
    usage = {"prompt_tokens": prompt, "completion_tokens": count, "total_tokens": prompt + count}
    common = b'{"id":"%b","object":"chat.completion.chunk","created":%d,"model":%b,' % (
        ident.encode(),
        created,
        _json(model),
    )

    def event(delta: bytes, finish: bytes = b"null") -> bytes:
        choice = b'"choices":[{"index":0,"delta":%b,"logprobs":null,"finish_reason":%b}]}' % (
            delta,
            finish,
        )
        return _chunk(b"data: " + common + choice + b"\n\n")

    if not stream:

        def whole() -> bytes:
            return _json(
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply_text(count)},
                            "logprobs": None,
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )

        return Reply(count, delay, b"", lambda i: b"", lambda: b"", whole)

    before = b'data: %b"choices":[{"index":0,"delta":{"content":"' % common
    after = b'"},"logprobs":null,"finish_reason":null}]}\n\n'

    def end() -> bytes:
        out = event(b"{}", b'"stop"')
        if include_usage:
            out += _chunk(b"data: " + common + b'"choices":[],"usage":%b}\n\n' % _json(usage))
        return out + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n"

    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    ) + event(b'{"role":"assistant","content":""}')
    return Reply(count, delay, head, lambda i: _chunk(before + token(i) + after), end, None)


class HttpError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def _plan(path: str, raw: bytes) -> Reply:
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise HttpError(400, {"error": f"invalid JSON: {exc}"}) from None
    if not isinstance(body, dict):
        raise HttpError(400, {"error": "the body must be an object"})
    delay = delay_of(str(body.get("model") or ""))
    if delay is None:
        raise HttpError(404, {"error": f"model '{body.get('model')}' not found"})
    if path == "/api/generate":
        text = str(body.get("prompt") or "")
        prompt = len(text.split()) + 4
    else:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
            raise HttpError(400, {"error": "messages are required"})
        text = str(messages[-1].get("content") or "")
        prompt = sum(len(str(m.get("content") or "").split()) + 4 for m in messages)
    match = _TOKENS_RE.search(text)
    count = min(int(match.group(1)), MAX_TOKENS) if match else DEFAULT_TOKENS
    if path == "/v1/chat/completions":
        return _openai(body, delay, count, prompt)
    return _ollama(path, body, delay, count, prompt)


# ---------------------------------------------------------------------- the connection


def _response(status: int, body: bytes, content_type: bytes = b"application/json") -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 501: b"Not Implemented"}
    return b"HTTP/1.1 %d %b\r\nContent-Type: %b\r\nContent-Length: %d\r\n\r\n%b" % (
        status,
        reason.get(status, b"Error"),
        content_type,
        len(body),
        body,
    )


class Counters:
    """What ``GET /_source/stats`` reports: connections accepted and requests answered, so a
    benchmark can tell how often a proxy dialed the source anew."""

    connections = 0
    requests = 0
    # When (time.monotonic(), shared by every process on the machine) the last reply cut short
    # by its client going away was; and how many were: the cancellation scenario reads them.
    aborted = 0
    last_aborted_at = 0.0


class Connection(asyncio.Protocol):
    """One client connection: requests parsed as they arrive, answered in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: deque[Request] = deque()
        self.task: asyncio.Task[None] | None = None
        self.paused = False
        self.resumed: asyncio.Future[None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        Counters.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.task:
            if not self.task.done():
                Counters.aborted += 1
                Counters.last_aborted_at = time.monotonic()
            self.task.cancel()
        if self.resumed and not self.resumed.done():
            self.resumed.set_result(None)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.resumed and not self.resumed.done():
            self.resumed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            request = self._parse()
            if request is None:
                break
            self.pending.append(request)
        if self.pending and self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._serve())

    def _parse(self) -> Request | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self._fail(400, "request head too large")
            return None
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        try:
            method, path, version = lines[0].split(" ", 2)
        except ValueError:
            self._fail(400, "bad request line")
            return None
        length, close = 0, version == "HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                self._fail(501, "chunked request bodies are not supported")
                return None
            elif name == "connection":
                close = value.strip().lower() == "close"
        if length > MAX_BODY:
            self._fail(400, "body too large")
            return None
        if len(self.buffer) < end + 4 + length:
            return None
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        return Request(method, path.split("?", 1)[0], body, close)

    def _fail(self, status: int, message: str) -> None:
        self.buffer.clear()
        if self.transport and not self.closed:
            self.transport.write(_response(status, _json({"error": message})))
            self.transport.close()
        self.closed = True

    async def _serve(self) -> None:
        try:
            while self.pending and not self.closed:
                request = self.pending.popleft()
                await self._answer(request)
                if request.close and self.transport:
                    self.transport.close()
                    return
        finally:
            self.task = None

    async def _drain(self) -> None:
        if self.paused and not self.closed:
            self.resumed = asyncio.get_running_loop().create_future()
            await self.resumed

    async def _answer(self, request: Request) -> None:
        assert self.transport is not None
        write = self.transport.write
        route = (request.method, request.path)
        if route == ("GET", "/_source/stats"):
            stats = {
                "connections": Counters.connections,
                "requests": Counters.requests,
                "aborted": Counters.aborted,
                "last_aborted_at": Counters.last_aborted_at,
            }
            write(_response(200, _json(stats)))
            return
        Counters.requests += 1
        if route == ("GET", "/api/tags"):
            write(_response(200, _json(_tags())))
            return
        if route == ("GET", "/api/version"):
            write(_response(200, b'{"version":"0.13.5"}'))
            return
        if route == ("GET", "/v1/models"):  # as vLLM lists them
            data = [
                {"id": name, "object": "model", "owned_by": "vllm", "max_model_len": 131072}
                for name in MODELS
            ]
            write(_response(200, _json({"object": "list", "data": data})))
            return
        if route == ("GET", "/"):
            write(_response(200, b"Ollama is running", b"text/plain"))
            return
        if route == ("POST", "/api/show"):
            try:
                name = str(json.loads(request.body).get("model") or "")
            except (ValueError, AttributeError):
                name = ""
            if delay_of(name) is None:
                write(_response(404, _json({"error": f"model '{name}' not found"})))
            else:
                write(_response(200, _json(_show(name))))
            return
        if request.method != "POST" or request.path not in (
            "/api/chat",
            "/api/generate",
            "/v1/chat/completions",
        ):
            write(_response(404, b'{"error":"404 page not found"}'))
            return
        try:
            reply = _plan(request.path, request.body)
        except HttpError as exc:
            body: dict[str, Any] = exc.body
            if request.path.startswith("/v1/"):  # OpenAI's shape of the same error
                body = {"error": {"message": exc.body["error"], "type": "invalid_request_error"}}
            write(_response(exc.status, _json(body)))
            return
        await self._generate(reply)

    async def _generate(self, reply: Reply) -> None:
        assert self.transport is not None
        write, loop = self.transport.write, asyncio.get_running_loop()
        started = loop.time()
        if reply.head:
            write(reply.head)
        for i in range(reply.count):
            if reply.delay:
                wait = started + (i + 1) * reply.delay - loop.time()
                await asyncio.sleep(wait if wait > 0 else 0)
            elif reply.whole is None:
                await asyncio.sleep(0)  # let other streams and reads in between tokens
            if self.paused:
                await self._drain()
            if self.closed:
                return
            if reply.whole is None:
                write(reply.line(i))
        if reply.whole is not None:
            write(_response(200, reply.whole()))
        else:
            write(reply.end())


# ---------------------------------------------------------------------- serving


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Connection, host, port, backlog=4096)
    print(f"listening on {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    arguments = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(arguments.host, arguments.port))
