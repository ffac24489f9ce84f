"""Model aliases: names a tenant's clients may call a served model by."""

from __future__ import annotations

import re

from aiohttp import web

from edge.admin.access import MAX_MODEL_NAME, is_model_name, tenant_admin
from edge.bodies import read_json_object
from edge.errors import ApiError, bad_request

routes = web.RouteTableDef()

ALIAS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")


@routes.get("/tenants/{slug}/aliases")
async def list_aliases(request: web.Request) -> web.Response:
    admin = await tenant_admin(request)
    return web.json_response({"aliases": await admin.ctx.store.aliases.of_tenant(admin.tenant.id)})


@routes.put("/tenants/{slug}/aliases/{alias:.+}")
async def set_alias(request: web.Request) -> web.Response:
    """Let clients call ``model`` by another name (an alias wins over a model of its name)."""
    admin = await tenant_admin(request)
    alias = request.match_info["alias"]
    if not ALIAS.match(alias):
        raise bad_request(
            "an alias is 1-128 letters, digits or . _ : / @ -, starting with a letter or digit",
            param="alias",
        )
    model = (await read_json_object(request)).get("model")
    if not isinstance(model, str) or not is_model_name(model):
        raise bad_request(
            "model must name the model the alias stands for"
            f" ({MAX_MODEL_NAME} printable characters at most)",
            param="model",
        )
    await admin.ctx.store.aliases.set(admin.tenant.id, alias, model.strip())
    admin.audit("alias.set", f"{alias} -> {model.strip()}")
    return web.json_response({"alias": alias, "model": model.strip()})


@routes.delete("/tenants/{slug}/aliases/{alias:.+}")
async def delete_alias(request: web.Request) -> web.Response:
    admin = await tenant_admin(request)
    alias = request.match_info["alias"]
    if not await admin.ctx.store.aliases.delete(admin.tenant.id, alias):
        raise ApiError(404, "alias_not_found", f"no alias {alias!r}")
    admin.audit("alias.deleted", alias)
    return web.json_response({"deleted": alias})
