"""The public API (``/v1``): one table row per endpoint, every dialect through one pipeline
(``dispatch``), its errors in the dialect's shape and every request of a known key audited.

Every request gets an id (``RequestRecord.request_id``, the edge's own, README "Operating it"):
its response carries it as ``x-request-id``, errors included; its access line, its other log
lines (``edge.observability.logs``), its audit row and the OPEN its machine gets all name it."""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from edge.api import (
    anthropic,
    chat,
    completions,
    dispatch,
    embeddings,
    models,
    realtime,
    responses,
)
from edge.api.dialect import EmbeddingsDialect, P, TextDialect
from edge.audit import RequestRecord
from edge.auth import RECORD
from edge.context import CONTEXT
from edge.errors import ErrorShape
from edge.middleware import json_errors
from edge.observability.logs import current_request

PREFIX = "/v1"
# One line per API request: what, its status, model, key name, machine and duration, and its
# request id (as a field of the line, edge.observability.logs); never a prompt, a reply or a
# secret.
access_log = logging.getLogger("edge.access")
REQUEST_ID_HEADER = "x-request-id"  # what the OpenAI SDKs read (and show as request_id)


def _text(dialect: TextDialect[P]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await dispatch.serve_text(request, dialect)

    return handler


def _vectors(dialect: EmbeddingsDialect[P]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await dispatch.serve_embeddings(request, dialect)

    return handler


# method, path under /v1, handler. A dialect is one module and one row here.
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/models", models.list_models),
    ("GET", "/models/{model:.+}", models.retrieve_model),  # names hold ':' and may hold '/'
    ("POST", "/chat/completions", _text(chat.DIALECT)),
    ("POST", "/completions", _text(completions.DIALECT)),
    ("POST", "/embeddings", _vectors(embeddings.DIALECT)),
    ("POST", "/messages", _text(anthropic.DIALECT)),
    ("POST", "/messages/count_tokens", anthropic.count_tokens),
    ("POST", "/responses", _text(responses.DIALECT)),
    ("GET", "/responses/{response_id}", responses.retrieve_response),
    ("DELETE", "/responses/{response_id}", responses.delete_response),
    ("GET", "/realtime", realtime.serve),  # a WebSocket: one pipeline request per response
]


def _error_shape(request: web.Request) -> ErrorShape:
    # Anthropic's clients read Anthropic's error shape, on every path of their API.
    return "anthropic" if request.path.startswith(PREFIX + "/messages") else "openai"


@web.middleware
async def _audited(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request is audited when it ends, however it ends (one of a known key, that is: the
    pipeline fills the record in as it goes)."""
    user_agent = request.headers.get("User-Agent")
    record = RequestRecord(
        f"{request.method} {request.path}", request.remote, user_agent and user_agent[:200]
    )
    resource = request.match_info.route.resource
    if resource is not None:  # the route, not the path: what metrics may name (no model, no id)
        record.route = f"{request.method} {resource.canonical}"
    request[RECORD] = record
    status = 500
    with current_request(record):
        try:
            response = await handler(request)
            status = response.status
            return response
        except (asyncio.CancelledError, ConnectionResetError):
            # The client went away: cancelled while waiting, or its socket gone mid-write.
            status, record.error_code = 499, record.error_code or "client_closed"
            raise
        finally:
            request.config_dict[CONTEXT].recorder.request(record, status)
            access_log.info(
                "%s %d %s key=%s machine=%s %.0fms",
                record.endpoint,
                status,
                record.model or "-",
                record.key_name or "-",
                record.machine or "-",
                (time.monotonic() - record.started) * 1000,
            )


async def _response_headers(request: web.Request, response: web.StreamResponse) -> None:
    # Runs as any response's headers are about to go out, streamed or not, success or error.
    record = request.get(RECORD)
    if record is None:
        return
    response.headers[REQUEST_ID_HEADER] = record.request_id
    if record.admission is not None:
        for name, value in record.admission.headers.items():
            response.headers.setdefault(name, value)


def create_api_app(client_max_size: int) -> web.Application:
    """The ``/v1`` sub-application."""
    app = web.Application(
        middlewares=[_audited, json_errors(_error_shape)], client_max_size=client_max_size
    )
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app.on_response_prepare.append(_response_headers)
    realtime.install(app)  # its sockets are closed (1001) on shutdown
    return app
