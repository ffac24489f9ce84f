"""The simulator's HTTP side: Ollama's endpoints, streaming, errors, and serving."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import math
import time
from dataclasses import asdict
from typing import Any

from aiohttp import web

from llmtunnel.sim_ollama.config import (
    CONFIG_KEY,
    EMBEDDING_DIMENSIONS,
    STATS_KEY,
    OllamaError,
    SimConfig,
    SimModel,
    SimStats,
    Slots,
)
from llmtunnel.sim_ollama.replies import (
    Plan,
    count_prompt_tokens,
    final_metrics,
    make_plan,
    thinking_on,
    tool_calls_for,
)

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


# ---------------------------------------------------------------------- generation


async def _generate(
    request: web.Request,
    plan: Plan,
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
        with stats.counted():
            if not stream:
                return await _whole(request, plan, chunk, final_extra, started, delay)
            return await _stream(request, plan, chunk, final_extra, started, delay, calls_in_final)


async def _pace(delay: float) -> None:
    await asyncio.sleep(delay)  # also yields, so a fast stream never starves other requests


async def _whole(
    request: web.Request,
    plan: Plan,
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
    body.update(
        done=True, done_reason=plan.done_reason, **final_metrics(plan, started), **final_extra
    )
    return web.json_response(body)


async def _stream(
    request: web.Request,
    plan: Plan,
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
    final.update(
        done=True, done_reason=plan.done_reason, **final_metrics(plan, started), **final_extra
    )
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


def _fit_context(request: web.Request, model: SimModel, body: dict[str, Any], plan: Plan) -> None:
    """Ollama's handling of a prompt longer than the context (``num_ctx``, by default the
    server's, at most the model's): by default it cuts the prompt from the front to about half
    the context and answers 200 as if nothing happened; with ``truncate: false`` it answers 400
    with llama.cpp's error, a JSON document inside the error string."""
    options = body.get("options") or {}
    num_ctx = options.get("num_ctx") or request.app[CONFIG_KEY].context_length
    num_ctx = min(int(num_ctx), model.context_length)
    if plan.prompt_tokens <= num_ctx:
        return
    if body.get("truncate") is False:
        inner = {
            "error": {
                "code": 400,
                "message": f"request ({plan.prompt_tokens} tokens) exceeds the available context"
                f" size ({num_ctx} tokens), try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": plan.prompt_tokens,
                "n_ctx": num_ctx,
            }
        }
        raise OllamaError(400, json.dumps(inner, separators=(",", ":")))
    plan.prompt_tokens = num_ctx // 2


@routes.post("/api/chat")
async def chat(request: web.Request) -> web.StreamResponse:
    body = await _body(request)
    model = _model(request, body)
    if "completion" not in model.capabilities:
        raise OllamaError(400, f'"{model.name}" does not support chat')
    tools = body.get("tools") or []
    if tools and "tools" not in model.capabilities:
        raise OllamaError(400, f"registry.ollama.ai/library/{model.name} does not support tools")
    think = thinking_on(model, body.get("think"))
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
    plan = make_plan(model, text, options, think, text if last.get("role") == "tool" else None)
    plan.prompt_tokens = count_prompt_tokens([str(m.get("content") or "") for m in messages], tools)
    _fit_context(request, model, body, plan)
    if tools and last.get("role") == "user":
        plan.tool_calls = tool_calls_for(tools, text)
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
    think = thinking_on(model, body.get("think"))
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
    plan = make_plan(model, prompt, body.get("options") or {}, think, None)
    plan.prompt_tokens = count_prompt_tokens([prompt, str(body.get("system") or "")], None)
    _fit_context(request, model, body, plan)

    def chunk(content: str, thinking: str, calls: list[dict[str, Any]] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model.name, "created_at": _now(), "response": content}
        if thinking:
            out["thinking"] = thinking
        return out

    context = {"context": list(range(1, plan.prompt_tokens + len(plan.content) + 1))[:64]}
    return await _generate(
        request, plan, body.get("stream", True) is not False, chunk, context, False
    )


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on ``text``: the same input, the same embedding."""
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
    # Ollama cuts a vector to `dimensions` when that is shorter, and ignores a longer one.
    dimensions = min(dimensions, EMBEDDING_DIMENSIONS)
    started = time.perf_counter()
    embeddings = [embedding_vector(text, dimensions) for text in inputs]
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


_SLOTS_KEY = web.AppKey("sim_slots", Slots)


def create_app(config: SimConfig | None = None) -> web.Application:
    config = config or SimConfig()
    app = web.Application(middlewares=[_errors], client_max_size=64 * 1024 * 1024)
    app[CONFIG_KEY] = config
    app[STATS_KEY] = stats = SimStats()
    app[_SLOTS_KEY] = Slots(config.num_parallel, config.max_queue, stats)
    app.add_routes(routes)
    return app


async def serve(host: str, port: int, config: SimConfig | None = None) -> web.AppRunner:
    """Listen on ``host:port`` (0 for a free port); the caller cleans the runner up."""
    return await start(create_app(config), host, port)


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve a simulator's ``app`` as the runtimes serve: a client that goes away cancels its
    generation at once (handler_cancellation), and a deep accept queue, as Go's and uvicorn's
    servers have, since bursts of connections are normal."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    port: int = runner.addresses[0][1]
    return port


def main(
    host: str = "127.0.0.1",
    port: int = 11434,
    tokens_per_second: float = 0.0,
    context_length: int = SimConfig.context_length,
) -> None:
    """Serve until interrupted."""
    config = SimConfig(tokens_per_second=tokens_per_second, context_length=context_length)
    run_until_interrupted(create_app(config), host, port, "sim-ollama")


def run_until_interrupted(
    app: web.Application, host: str, port: int, name: str, path: str = ""
) -> None:
    """Serve a simulator's ``app`` until interrupted, first saying where."""

    async def run() -> None:
        runner = await start(app, host, port)
        print(f"{name} listening on http://{host}:{bound_port(runner)}{path}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
