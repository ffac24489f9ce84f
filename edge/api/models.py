"""``GET /v1/models`` and ``/v1/models/{model}``, and what a key may use: its scope, and its
machine's models if it is bound to one, aliases included."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge.auth import Caller, authenticate
from edge.context import CONTEXT, EdgeContext
from edge.errors import ApiError
from edge.model_names import resolve

ModelInfo = dict[str, Any]  # as the machine described it (PROTOCOL.md §2 "model")


def visible_models(ctx: EdgeContext, caller: Caller) -> dict[str, ModelInfo]:
    """The models this key may use now: its scope, and its machine's if it is bound to one."""
    bound = caller.key.limits.machine_id
    if bound is not None:
        models = ctx.router.machine_models(caller.tenant.id, bound)
    else:
        models = ctx.router.models(caller.tenant.id)
    for alias, target in caller.aliases.items():
        served = resolve(target, models)
        if served is not None:
            models[alias] = models[served]
    return {name: info for name, info in models.items() if caller.allows(name)}


def find_model(models: dict[str, ModelInfo], name: str) -> str | None:
    """The name in ``models`` (what a key sees) that ``name`` stands for, as Ollama resolves
    names (``qwen3`` → ``qwen3:latest``); ``None`` when no machine serves it to this key."""
    return resolve(name, models)


def model_not_found(name: str) -> ApiError:
    return ApiError(
        404,
        "model_not_found",
        f"The model `{name}` does not exist or no online machine serves it to this key",
        param="model",
    )


def _model(name: str, caller: Caller) -> dict[str, Any]:
    created = int(caller.tenant.created_at)
    return {"id": name, "object": "model", "created": created, "owned_by": caller.tenant.slug}


async def list_models(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    models = visible_models(request.config_dict[CONTEXT], caller)
    data = [_model(name, caller) for name in sorted(models)]
    return web.json_response({"object": "list", "data": data})


async def retrieve_model(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    name = request.match_info["model"]
    if find_model(visible_models(request.config_dict[CONTEXT], caller), name) is None:
        raise model_not_found(name)
    return web.json_response(_model(name, caller))
