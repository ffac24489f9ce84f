"""The admin API the CLI talks to (``/admin/v1/…``), authenticated with an admin key: an aiohttp
sub-application, one module per resource.

The operator key manages every tenant; a tenant admin key only its own (403 otherwise). Handlers
reach the edge's state through ``request.config_dict[CONTEXT]``, the application they are mounted
in; every error leaves as JSON in the OpenAI shape, rendered by this sub-application's own
middleware, aiohttp's 404 and 405 for paths under the prefix included.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from aiohttp.typedefs import Middleware

from edge.admin import admin_keys, aliases, keys, machines, reports, stats, tenants
from edge.middleware import json_errors, openai_shape

__all__ = ["PREFIX", "create_admin_app"]

PREFIX = "/admin/v1"


def create_admin_app(authentication: Iterable[Middleware] = ()) -> web.Application:
    """The admin API, to mount with ``app.add_subapp(PREFIX, create_admin_app())`` in an
    application that holds ``CONTEXT`` (and ``LANE``, for large bodies).

    ``authentication``: middlewares that run inside the JSON errors, before every handler; the
    console mounts these same handlers behind its session with one that sets
    ``access.AUTHENTICATED`` (edge/console)."""
    app = web.Application(middlewares=[json_errors(openai_shape), *authentication])
    for resource in (tenants, machines, keys, reports, stats, admin_keys, aliases):
        app.add_routes(resource.routes)
    return app
