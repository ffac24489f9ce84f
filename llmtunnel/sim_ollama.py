"""A simulated Ollama server: Ollama's HTTP API as it really behaves, without a GPU.

The demo, the end-to-end tests and the benchmarks run against it. It follows ``shared/OLLAMA.md``,
quirks included: NDJSON streaming by default, tool calls with object arguments and ``index`` 0 on
every call (one model sends them only in its final chunk), thinking on by default for thinking
models, durations in nanoseconds with zero values omitted, ``{"error": "…"}`` bodies with Ollama's
statuses and messages, and an error line with HTTP 200 once a stream has begun.

Replies are deterministic so tests can predict them: the words of the last user message, then
filler. Directives in that message steer it: ``tokens=N`` replies exactly N tokens, and
``fail-after=N`` breaks the stream after N tokens as a crashed runner would.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_REPLY_TOKENS = 24
MAX_REPLY_TOKENS = 100_000
EMBEDDING_DIMENSIONS = 768
_FILLER = [
    "the",
    "tunnel",
    "carries",
    "every",
    "token",
    "from",
    "the",
    "GPU",
    "box",
    "to",
    "the",
    "client",
    "and",
    "back",
    "again",
]
_THOUGHTS = ["Let", " me", " think", " about", " this."]


@dataclass(frozen=True, slots=True)
class SimModel:
    name: str
    family: str
    parameter_size: str
    capabilities: tuple[str, ...]
    context_length: int = 8192
    tool_calls_in_final_chunk: bool = False
    quantization_level: str = "Q4_K_M"

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.name.encode()).hexdigest()


DEFAULT_MODELS: tuple[SimModel, ...] = (
    SimModel("qwen3:8b", "qwen3", "8.2B", ("completion", "tools", "thinking"), 40960),
    SimModel(
        "llama3.2:3b",
        "llama",
        "3.2B",
        ("completion", "tools"),
        131072,
        tool_calls_in_final_chunk=True,
    ),
    SimModel("gemma3:4b", "gemma3", "4.3B", ("completion", "vision"), 131072),
    SimModel("tinyllama:1.1b", "llama", "1.1B", ("completion",), 2048),
    SimModel(
        "nomic-embed-text:latest",
        "nomic-bert",
        "137M",
        ("embedding",),
        2048,
        quantization_level="F16",
    ),
)


@dataclass
class SimConfig:
    tokens_per_second: float = 0.0  # 0: as fast as possible
    models: tuple[SimModel, ...] = DEFAULT_MODELS
    version: str = "0.13.5"
    max_queue: int = 512
    num_parallel: int = 0  # 0: unlimited; otherwise extra requests wait, as OLLAMA_NUM_PARALLEL


@dataclass
class SimStats:
    started: int = 0
    completed: int = 0
    cancelled: int = 0
    active: int = 0
    queued: int = 0  # waiting for a parallel slot


CONFIG_KEY = web.AppKey("sim_config", SimConfig)
STATS_KEY = web.AppKey("sim_stats", SimStats)


class OllamaError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Slots:
    """OLLAMA_NUM_PARALLEL and OLLAMA_MAX_QUEUE: run a few, queue some, refuse the rest."""

    def __init__(self, parallel: int, max_queue: int, stats: SimStats) -> None:
        self._semaphore = asyncio.Semaphore(parallel) if parallel else None
        self._max_queue = max_queue
        self._stats = stats

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._semaphore is None:
            yield
            return
        if self._semaphore.locked() and self._stats.queued >= self._max_queue:
            raise OllamaError(
                503, "server busy, please try again.  maximum pending requests exceeded"
            )
        self._stats.queued += 1
        try:
            await self._semaphore.acquire()
        finally:
            self._stats.queued -= 1
        try:
            yield
        finally:
            self._semaphore.release()


# ---------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise OllamaError(400, f"invalid character in request body: {exc}") from None
    if not isinstance(body, dict):
        raise OllamaError(400, "json: cannot unmarshal array into Go value of type api.ChatRequest")
    return body


def _model(request: web.Request, body: dict[str, Any]) -> SimModel:
    name = body.get("model") or body.get("name")
    if not name:
        raise OllamaError(400, "model is required")
    for model in request.app[CONFIG_KEY].models:
        if model.name == name or model.name == f"{name}:latest":
            return model
    raise OllamaError(404, f"model '{name}' not found")


def _thinking_on(model: SimModel, think: object) -> bool:
    wants = think not in (None, False)
    if wants and "thinking" not in model.capabilities:
        raise OllamaError(400, f'"{model.name}" does not support thinking')
    # A thinking model thinks unless told not to (think absent means on).
    return "thinking" in model.capabilities and think is not False


def _directive(text: str, name: str) -> int | None:
    match = re.search(rf"\b{name}=(\d+)", text)
    return min(int(match.group(1)), MAX_REPLY_TOKENS) if match else None


def _words(text: str) -> list[str]:
    return [w for w in text.split() if "=" not in w]


def _reply_tokens(prompt: str, count: int) -> list[str]:
    words = _words(prompt) + _FILLER
    return [(" " if i else "") + words[i % len(words)] for i in range(count)]


def _arguments(parameters: object) -> dict[str, Any]:
    schema = parameters if isinstance(parameters, dict) else {}
    properties = schema.get("properties") or {}
    values = {"string": "example", "number": 1, "integer": 1, "boolean": True}
    return {
        name: values.get((properties.get(name) or {}).get("type", "string"), "example")
        for name in schema.get("required") or []
    }


def _tool_calls(tools: list[Any], text: str) -> list[dict[str, Any]]:
    calls = []
    for tool in tools:
        function = tool.get("function", {}) if isinstance(tool, dict) else {}
        name = function.get("name")
        if isinstance(name, str) and name and name in text:
            calls.append(
                {
                    "id": "call_" + secrets.token_hex(4),
                    # Ollama's quirk: many parsers leave index 0 on every call.
                    "function": {
                        "index": 0,
                        "name": name,
                        "arguments": _arguments(function.get("parameters")),
                    },
                }
            )
    return calls


def _prompt_tokens(texts: list[str], tools: object) -> int:
    count = sum(len(t.split()) for t in texts) + 4 * len(texts)
    if tools:
        count += len(json.dumps(tools)) // 4
    return max(count, 1)


@dataclass
class _Plan:
    """What one generation will produce."""

    thinking: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    done_reason: str = "stop"
    fail_after: int | None = None
    prompt_tokens: int = 1


def _plan(
    model: SimModel, prompt: str, options: dict[str, Any], think: bool, tool_reply: str | None
) -> _Plan:
    plan = _Plan(thinking=list(_THOUGHTS) if think else [])
    if tool_reply is not None:
        plan.content = _reply_tokens(f"The tool said: {tool_reply}", len(tool_reply.split()) + 3)
    else:
        count = _directive(prompt, "tokens") or DEFAULT_REPLY_TOKENS
        plan.content = _reply_tokens(prompt, count)
    plan.fail_after = _directive(prompt, "fail-after")
    limit = options.get("num_predict")
    if isinstance(limit, int) and limit >= 0 and limit < len(plan.thinking) + len(plan.content):
        keep = max(0, limit - len(plan.thinking))
        plan.thinking = plan.thinking[:limit]
        plan.content = plan.content[:keep]
        plan.done_reason = "length"
    stops = options.get("stop") or []
    if isinstance(stops, str):
        stops = [stops]
    _cut_at_stop(plan, [stop for stop in stops if isinstance(stop, str) and stop])
    return plan


def _cut_at_stop(plan: _Plan, stops: list[str]) -> None:
    """Drop the tokens from the one where a stop string begins, as Ollama does."""
    text = "".join(plan.content)
    found = [text.find(stop) for stop in stops if stop in text]
    if not found:
        return
    cut, length, keep = min(found), 0, 0
    for token in plan.content:
        if length + len(token) > cut:
            break
        length += len(token)
        keep += 1
    plan.content = plan.content[:keep]
    plan.done_reason = "stop"


def _metrics(plan: _Plan, started: float) -> dict[str, Any]:
    total = max(int((time.perf_counter() - started) * 1e9), 1000)
    generated = len(plan.thinking) + len(plan.content)
    metrics = {
        "total_duration": total,
        "load_duration": max(total // 20, 1),
        "prompt_eval_count": plan.prompt_tokens,
        "prompt_eval_duration": max(total // 10, 1),
        "eval_count": generated,
        "eval_duration": max(total - total // 5, 1),
    }
    return {k: v for k, v in metrics.items() if v}  # Ollama omits zero values


# ---------------------------------------------------------------------- generation


async def _generate(
    request: web.Request,
    plan: _Plan,
    stream: bool,
    chunk: Any,
    final_extra: dict[str, Any],
    calls_in_final: bool,
) -> web.StreamResponse:
    """Run ``plan``; ``chunk(content, thinking, tool_calls)`` shapes one line of this endpoint."""
    config, stats = request.app[CONFIG_KEY], request.app[STATS_KEY]
    started = time.perf_counter()
    delay = 1 / config.tokens_per_second if config.tokens_per_second > 0 else 0.0
    async with request.app[_SLOTS_KEY].slot():
        stats.started += 1
        stats.active += 1
        finished = False
        response: web.StreamResponse
        try:
            if not stream:
                response = await _whole(request, plan, chunk, final_extra, started, delay)
            else:
                response = await _stream(
                    request, plan, chunk, final_extra, started, delay, calls_in_final
                )
            finished = True
            return response
        finally:
            stats.active -= 1
            if finished:
                stats.completed += 1
            else:
                stats.cancelled += 1


async def _pace(delay: float) -> None:
    await asyncio.sleep(delay)  # also yields, so a fast stream never starves other requests


async def _whole(
    request: web.Request,
    plan: _Plan,
    chunk: Any,
    final_extra: dict[str, Any],
    started: float,
    delay: float,
) -> web.Response:
    for _ in plan.thinking + plan.content:
        await _pace(delay)
    if plan.fail_after is not None:
        raise OllamaError(500, "llama runner process has terminated: exit status 2")
    body = chunk("".join(plan.content), "".join(plan.thinking), plan.tool_calls)
    body.update(done=True, done_reason=plan.done_reason, **_metrics(plan, started), **final_extra)
    return web.json_response(body)


async def _stream(
    request: web.Request,
    plan: _Plan,
    chunk: Any,
    final_extra: dict[str, Any],
    started: float,
    delay: float,
    calls_in_final: bool,
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)

    async def line(payload: dict[str, Any]) -> None:
        await response.write(json.dumps(payload, separators=(",", ":")).encode() + b"\n")

    for token in plan.thinking:
        await _pace(delay)
        await line(chunk("", token, None) | {"done": False})
    for index, token in enumerate(plan.content):
        if plan.fail_after is not None and index >= plan.fail_after:
            await line({"error": "llama runner process has terminated: exit status 2"})
            await response.write_eof()
            return response
        await _pace(delay)
        await line(chunk(token, "", None) | {"done": False})
    if plan.tool_calls and not calls_in_final:
        await line(chunk("", "", plan.tool_calls) | {"done": False})
    final = chunk("", "", plan.tool_calls if calls_in_final and plan.tool_calls else None)
    final.update(done=True, done_reason=plan.done_reason, **_metrics(plan, started), **final_extra)
    await line(final)
    await response.write_eof()
    return response


# ---------------------------------------------------------------------- endpoints

routes = web.RouteTableDef()


@routes.get("/")
async def root(request: web.Request) -> web.Response:
    return web.Response(text="Ollama is running")


@routes.get("/api/version")
async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": request.app[CONFIG_KEY].version})


def _details(model: SimModel) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": model.family,
        "families": [model.family],
        "parameter_size": model.parameter_size,
        "quantization_level": model.quantization_level,
    }


@routes.get("/api/tags")
async def tags(request: web.Request) -> web.Response:
    models = [
        {
            "name": m.name,
            "model": m.name,
            "modified_at": "2026-10-01T12:00:00.000000000Z",
            "size": 1_000_000 * len(m.name),
            "digest": m.digest,
            "details": _details(m),
        }
        for m in request.app[CONFIG_KEY].models
    ]
    return web.json_response({"models": models})


@routes.post("/api/show")
async def show(request: web.Request) -> web.Response:
    model = _model(request, await _body(request))
    return web.json_response(
        {
            "license": "simulated",
            "modelfile": f"FROM {model.name}\n",
            "parameters": 'stop "<|end|>"',
            "template": "{{ .Prompt }}",
            "details": _details(model),
            "model_info": {
                "general.architecture": model.family,
                "general.parameter_count": 1,
                f"{model.family}.context_length": model.context_length,
            },
            "capabilities": list(model.capabilities),
            "modified_at": "2026-10-01T12:00:00.000000000Z",
        }
    )


@routes.get("/api/ps")
async def ps(request: web.Request) -> web.Response:
    model = request.app[CONFIG_KEY].models[0]
    return web.json_response(
        {
            "models": [
                {
                    "name": model.name,
                    "model": model.name,
                    "size": 5_000_000_000,
                    "digest": model.digest,
                    "details": _details(model),
                    "expires_at": "2099-01-01T00:00:00Z",
                    "size_vram": 5_000_000_000,
                    "context_length": model.context_length,
                }
            ]
        }
    )


@routes.get("/_sim/stats")
async def sim_stats(request: web.Request) -> web.Response:
    return web.json_response(asdict(request.app[STATS_KEY]))


@routes.post("/api/chat")
async def chat(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    model = _model(request, body)
    if "completion" not in model.capabilities:
        raise OllamaError(400, f'"{model.name}" does not support chat')
    tools = body.get("tools") or []
    if tools and "tools" not in model.capabilities:
        raise OllamaError(400, f"registry.ollama.ai/library/{model.name} does not support tools")
    think = _thinking_on(model, body.get("think"))
    messages = body.get("messages") or []
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise OllamaError(400, "json: cannot unmarshal messages")
    if not messages:  # an empty chat only loads the model
        return web.json_response(
            {
                "model": model.name,
                "created_at": _now(),
                "message": {"role": "assistant", "content": ""},
                "done_reason": "load",
                "done": True,
            }
        )
    last = messages[-1]
    text = str(last.get("content") or "")
    options = body.get("options") or {}
    plan = _plan(model, text, options, think, text if last.get("role") == "tool" else None)
    plan.prompt_tokens = _prompt_tokens([str(m.get("content") or "") for m in messages], tools)
    if tools and last.get("role") == "user":
        plan.tool_calls = _tool_calls(tools, text)
        if plan.tool_calls:
            plan.content = []

    def chunk(content: str, thinking: str, calls: list[dict[str, Any]] | None) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if thinking:
            message["thinking"] = thinking
        if calls:
            message["tool_calls"] = calls
        return {"model": model.name, "created_at": _now(), "message": message}

    return await _generate(
        request,
        plan,
        body.get("stream", True) is not False,
        chunk,
        {},
        model.tool_calls_in_final_chunk,
    )


@routes.post("/api/generate")
async def generate(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    model = _model(request, body)
    if "completion" not in model.capabilities:
        raise OllamaError(400, f'"{model.name}" does not support generate')
    if body.get("suffix") and "insert" not in model.capabilities:
        raise OllamaError(400, f"registry.ollama.ai/library/{model.name} does not support insert")
    think = _thinking_on(model, body.get("think"))
    prompt = str(body.get("prompt") or "")
    if not prompt:
        return web.json_response(
            {
                "model": model.name,
                "created_at": _now(),
                "response": "",
                "done": True,
                "done_reason": "load",
            }
        )
    plan = _plan(model, prompt, body.get("options") or {}, think, None)
    plan.prompt_tokens = _prompt_tokens([prompt, str(body.get("system") or "")], None)

    def chunk(content: str, thinking: str, calls: list[dict[str, Any]] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model.name, "created_at": _now(), "response": content}
        if thinking:
            out["thinking"] = thinking
        return out

    context = {"context": list(range(1, plan.prompt_tokens + len(plan.content) + 1))[:64]}
    return await _generate(
        request, plan, body.get("stream", True) is not False, chunk, context, False
    )


def _vector(text: str, dimensions: int) -> list[float]:
    seed = hashlib.sha256(text.encode()).digest()
    raw = [((seed[i % 32] + i * 7) % 251) / 125.0 - 1.0 for i in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


@routes.post("/api/embed")
async def embed(request: web.Request) -> web.Response:
    body = await _body(request)
    model = _model(request, body)
    if "embedding" not in model.capabilities:
        raise OllamaError(400, f'"{model.name}" does not support embeddings')
    raw = body.get("input", [])
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
        raise OllamaError(400, "invalid input type")
    dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
    if not isinstance(dimensions, int) or dimensions < 1:
        raise OllamaError(400, "dimensions must be a positive integer")
    started = time.perf_counter()
    embeddings = [_vector(text, dimensions) for text in inputs]
    total = max(int((time.perf_counter() - started) * 1e9), 1000)
    return web.json_response(
        {
            "model": model.name,
            "embeddings": embeddings,
            "total_duration": total,
            "load_duration": max(total // 20, 1),
            "prompt_eval_count": sum(len(t.split()) for t in inputs),
        }
    )


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except OllamaError as exc:
        return _error(exc.status, exc.message)
    except web.HTTPNotFound:
        return web.Response(status=404, text="404 page not found")


_SLOTS_KEY = web.AppKey("sim_slots", _Slots)


def create_app(config: SimConfig | None = None) -> web.Application:
    config = config or SimConfig()
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024 * 1024)
    app[CONFIG_KEY] = config
    app[STATS_KEY] = stats = SimStats()
    app[_SLOTS_KEY] = _Slots(config.num_parallel, config.max_queue, stats)
    app.add_routes(routes)
    return app


async def serve(host: str, port: int, config: SimConfig | None = None) -> web.AppRunner:
    """Listen on ``host:port`` (0 for a free port); the caller cleans the runner up."""
    # handler_cancellation: a client that goes away cancels its generation at once, as in Ollama.
    runner = web.AppRunner(
        create_app(config), handler_cancellation=True, access_log=None, shutdown_timeout=1.0
    )
    await runner.setup()
    # A deep accept queue, as Ollama's Go server has: bursts of connections are normal.
    await web.TCPSite(runner, host, port, backlog=1024).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    port: int = runner.addresses[0][1]
    return port


def main(host: str = "127.0.0.1", port: int = 11434, tokens_per_second: float = 0.0) -> None:
    """Serve until interrupted."""

    async def run() -> None:
        runner = await serve(host, port, SimConfig(tokens_per_second=tokens_per_second))
        print(f"sim-ollama listening on http://{host}:{bound_port(runner)}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
