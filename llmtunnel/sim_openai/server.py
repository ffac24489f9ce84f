"""The simulated runtime's HTTP side: the OpenAI endpoints, each flavour's extras, serving."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict
from typing import Any

from aiohttp import web

from llmtunnel.sim_ollama import SimModel
from llmtunnel.sim_ollama.replies import Plan, count_prompt_tokens, make_plan, tool_calls_for
from llmtunnel.sim_ollama.server import embedding_vector, run_until_interrupted, start
from llmtunnel.sim_openai.config import (
    CONFIG_KEY,
    EMBEDDING_DIMENSIONS,
    STATS_KEY,
    OpenAIError,
    SimOpenAIConfig,
    SimOpenAIStats,
    context_of,
    error,
    served,
)
from llmtunnel.sim_openai.stream import Turn, reply

routes = web.RouteTableDef()


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise error(400, f"JSON decode error: {exc}") from None
    if not isinstance(body, dict):
        raise error(400, "the body must be a JSON object")
    request.app[STATS_KEY].keep(body)
    return body


# ---------------------------------------------------------------------- model lists


@routes.get("/v1/models")
async def models(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    flavour, created = config.flavour, int(time.time())
    data: list[dict[str, Any]] = []
    for model in config.models:
        entry: dict[str, Any] = {"id": model.name, "object": "model", "created": created}
        if flavour == "vllm":
            entry.update(owned_by="vllm", root=model.name, parent=None)
            entry["max_model_len"] = context_of(config, model)
        elif flavour == "llama.cpp":
            entry.update(owned_by="llamacpp", meta={"n_ctx_train": model.context_length})
        elif flavour == "lm-studio":
            entry.update(owned_by="organization_owner")
        else:
            entry.update(owned_by="me", permissions=[])
        data.append(entry)
    listing: dict[str, Any] = {"object": "list", "data": data}
    if flavour == "llama.cpp":  # and the same list Ollama's way, with capabilities
        listing["models"] = [
            {"name": m.name, "model": m.name, "capabilities": _llama_cpp_capabilities(m)}
            for m in config.models
        ]
    return web.json_response(listing)


def _llama_cpp_capabilities(model: SimModel) -> list[str]:
    if "embedding" in model.capabilities:
        return ["embedding"]
    return ["completion", "multimodal"] if "vision" in model.capabilities else ["completion"]


@routes.get("/props")
async def props(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    if config.flavour != "llama.cpp":
        raise web.HTTPNotFound
    model = config.models[0]
    settings = {"n_ctx": context_of(config, model), "temperature": 0.8}
    vision = "vision" in model.capabilities
    return web.json_response(
        {
            "default_generation_settings": settings,
            "total_slots": 1,
            "modalities": {"vision": vision},
        }
    )


@routes.get("/api/v0/models")
async def lm_studio_models(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    if config.flavour != "lm-studio":
        raise web.HTTPNotFound
    data = []
    for model in config.models:
        caps = model.capabilities
        kind = "embeddings" if "embedding" in caps else "vlm" if "vision" in caps else "llm"
        entry: dict[str, Any] = {
            "id": model.name,
            "object": "model",
            "type": kind,
            "state": "loaded",
            "max_context_length": model.context_length,
            "loaded_context_length": context_of(config, model),
        }
        if "tools" in caps:
            entry["capabilities"] = ["tool_use"]
        data.append(entry)
    return web.json_response({"object": "list", "data": data})


@routes.get("/_sim/stats")
async def sim_stats(request: web.Request) -> web.Response:
    return web.json_response(asdict(request.app[STATS_KEY]))


# ---------------------------------------------------------------------- generation


def _text(content: Any) -> tuple[str, int]:
    """A message's text and how many images it carries."""
    if isinstance(content, list):
        texts = [
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        ]
        images = sum(1 for p in content if isinstance(p, dict) and p.get("type") == "image_url")
        return "\n".join(texts), images
    return (content if isinstance(content, str) else ""), 0


def _max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    return value if isinstance(value, int) and value > 0 else None


def _fit(config: SimOpenAIConfig, model: SimModel, turn: Turn, max_tokens: int | None) -> None:
    """The flavour's handling of a prompt, or prompt and output, longer than the context."""
    context, prompt = context_of(config, model), turn.plan.prompt_tokens
    flavour = config.flavour
    if flavour == "vllm":
        if max_tokens is not None and prompt + max_tokens > context:
            raise error(
                400,
                f"This model's maximum context length is {context} tokens. However, you requested"
                f" {max_tokens} output tokens and your prompt contains {prompt} input tokens, for"
                f" a total of {prompt + max_tokens} tokens. Please reduce the length of the input"
                " prompt or the number of requested output tokens.",
            )
        if prompt >= context:
            raise error(
                400,
                f"This model's maximum context length is {context} tokens. However, your request"
                f" has {prompt} input tokens. Please reduce the length of the input messages.",
            )
    elif prompt > context:
        if flavour == "llama.cpp":
            raise error(
                400,
                f"request ({prompt} tokens) exceeds the available context size ({context}"
                " tokens), try increasing it",
                "exceed_context_size_error",
                n_prompt_tokens=prompt,
                n_ctx=context,
            )
        if flavour == "lm-studio":
            raise error(
                400,
                f"Trying to keep the first {prompt} tokens when context the overflows. However,"
                f" the model is loaded with context length of only {context} tokens, which is"
                " not enough. Try to load the model with a larger context length, or provide a"
                " shorter input",
            )
        if turn.stream:
            turn.cut_without_a_word = True
            return
        raise error(
            400,
            f"This model's maximum context length is {context} tokens. However, you requested"
            f" {prompt + (max_tokens or 0)} tokens ({prompt} in the messages, {max_tokens} in"
            " the completion). Please reduce the length of the messages or completion.",
            "invalid_request_error",
            code="context_length_exceeded",
        )
    # Generation stops at the context, as llama.cpp's does (and vLLM's when max_tokens is unset).
    room = context - prompt
    if len(turn.plan.content) > room:
        turn.plan.content = turn.plan.content[:room]
        turn.plan.done_reason = "length"


def _turn(
    request: web.Request, body: dict[str, Any], model: SimModel, plan: Plan, chat: bool
) -> Turn:
    config = request.app[CONFIG_KEY]
    if config.refuses_stream_options and "stream_options" in body:
        raise error(400, "Unrecognized request argument supplied: stream_options")
    stream = body.get("stream") is True
    options = body.get("stream_options")
    include = stream and isinstance(options, dict) and options.get("include_usage") is True
    turn = Turn(plan, model.name, chat, stream, include)
    _fit(config, model, turn, _max_tokens(body))
    return turn


async def _generating(request: web.Request, api: str) -> tuple[dict[str, Any], SimModel]:
    """The body and the model of a request for text, which the model must make."""
    body = await _body(request)
    model = served(request.app[CONFIG_KEY], body.get("model"))
    if "completion" not in model.capabilities:
        raise error(400, f"The model does not support {api} API")
    return body, model


@routes.post("/v1/chat/completions")
async def chat(request: web.Request) -> web.StreamResponse:
    body, model = await _generating(request, "Chat Completions")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        raise error(400, "messages must be a non-empty list")
    texts = [_text(m.get("content")) for m in messages if isinstance(m, dict)]
    if any(images for _, images in texts) and "vision" not in model.capabilities:
        raise error(400, f"{model.name} is not a multimodal model")
    tools = body.get("tools") or []
    if tools and "tools" not in model.capabilities:
        raise error(
            400,
            '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser'
            " to be set",
        )
    last = messages[-1]
    text = texts[-1][0]
    kwargs = body.get("chat_template_kwargs") or {}
    think = "thinking" in model.capabilities and kwargs.get("enable_thinking") is not False
    options = {"num_predict": _max_tokens(body), "stop": body.get("stop") or []}
    plan = make_plan(model, text, options, think, text if last.get("role") == "tool" else None)
    plan.prompt_tokens = count_prompt_tokens([t for t, _ in texts], tools)
    turn = _turn(request, body, model, plan, chat=True)
    if tools and last.get("role") == "user":
        turn.calls = [
            {
                "id": "chatcmpl-tool-" + secrets.token_hex(8),
                "name": call["function"]["name"],
                "arguments": json.dumps(call["function"]["arguments"]),
            }
            for call in tool_calls_for(tools, text)
        ]
        if turn.calls:
            turn.plan.content = []
    return await reply(request, turn)


@routes.post("/v1/completions")
async def completions(request: web.Request) -> web.StreamResponse:
    body, model = await _generating(request, "Completions")
    prompt = body.get("prompt")
    prompt = prompt[0] if isinstance(prompt, list) and prompt else prompt
    if not isinstance(prompt, str):
        raise error(400, "prompt must be a string")
    if body.get("suffix") and "insert" not in model.capabilities:
        raise error(400, "suffix is not currently supported")
    options = {"num_predict": _max_tokens(body), "stop": body.get("stop") or []}
    plan = make_plan(model, prompt, options, False, None)
    plan.prompt_tokens = count_prompt_tokens([prompt], None)
    return await reply(request, _turn(request, body, model, plan, chat=False))


@routes.post("/v1/embeddings")
async def embeddings(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    if not config.embeddings:
        if config.flavour == "llama.cpp":
            raise error(
                501,
                "This server does not support embeddings. Start it with `--embeddings`",
                "not_supported_error",
            )
        raise web.HTTPNotFound  # no such route, as on TGI
    body = await _body(request)
    model = served(config, body.get("model"))
    if "embedding" not in model.capabilities:
        raise error(400, "The model does not support Embeddings API")
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise error(400, "input must be a string or a list of strings")
    dimensions = body.get("dimensions") or EMBEDDING_DIMENSIONS
    data = [
        {"object": "embedding", "index": index, "embedding": embedding_vector(text, dimensions)}
        for index, text in enumerate(inputs)
    ]
    tokens = sum(len(text.split()) for text in inputs)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return web.json_response({"object": "list", "data": data, "model": model.name, "usage": usage})


# ---------------------------------------------------------------------- serving


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """vLLM's ``--api-key`` on every /v1 route, and errors in the flavour's shape."""
    key = request.app[CONFIG_KEY].api_key
    guarded = key is not None and request.path.startswith("/v1")
    if guarded and request.headers.get("Authorization") != f"Bearer {key}":
        return web.json_response({"error": "Unauthorized"}, status=401)
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except OpenAIError as exc:
        return web.json_response(exc.body, status=exc.status)
    except web.HTTPNotFound:
        request.app[STATS_KEY].not_found += 1
        return web.json_response({"detail": "Not Found"}, status=404)


def create_app(config: SimOpenAIConfig | None = None) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=64 * 1024 * 1024)
    app[CONFIG_KEY] = config or SimOpenAIConfig()
    app[STATS_KEY] = SimOpenAIStats()
    app.add_routes(routes)
    return app


async def serve(host: str, port: int, config: SimOpenAIConfig | None = None) -> web.AppRunner:
    """Listen on ``host:port`` (0 for a free port); the caller cleans the runner up. A client
    that goes away cancels its generation at once, as vLLM and llama.cpp do."""
    return await start(create_app(config), host, port)


def main(host: str, port: int, config: SimOpenAIConfig) -> None:
    """Serve until interrupted."""
    run_until_interrupted(create_app(config), host, port, f"sim-openai ({config.flavour})", "/v1")
