"""JSON errors for every sub-application: nothing leaves the edge as a bare 500 or an HTML page."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from edge.auth import RECORD
from edge.errors import ApiError, ErrorShape
from edge.store import StoreUnavailable

log = logging.getLogger(__name__)


_CODES_FOR_STATUS = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


def json_errors(shape_of: Callable[[web.Request], ErrorShape]) -> Middleware:
    """A middleware that answers every error as JSON in ``shape_of(request)``: an ``ApiError``
    as it is, aiohttp's own (404, 405, 413) with a stable code, anything else as a logged 500.
    The request's audit record, if it has one, learns the error code."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return _answer(request, exc, shape_of(request))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = (
                f"{exc.reason}: {request.method} {request.path}"
                if exc.status in (404, 405)
                else exc.text or exc.reason
            )
            code = _CODES_FOR_STATUS.get(exc.status, "http_error")
            return _answer(request, ApiError(exc.status, code, message), shape_of(request))
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except StoreUnavailable as exc:
            # The database is down or restarting: the request may well work in a moment.
            log.warning("store unavailable in %s %s: %s", request.method, request.path, exc)
            error = ApiError(503, "store_unavailable", "the edge's database is unavailable")
            response = _answer(request, error, shape_of(request))
            response.headers["Retry-After"] = "1"
            return response
        except Exception:
            log.exception("unexpected error in %s %s", request.method, request.path)
            error = ApiError(500, "internal_error", "internal error; it has been logged")
            return _answer(request, error, shape_of(request))

    return middleware


def _answer(request: web.Request, error: ApiError, shape: ErrorShape) -> web.Response:
    record = request.get(RECORD)
    if record is not None:
        record.error_code = error.code
    return error.response(shape)


def openai_shape(request: web.Request) -> ErrorShape:
    return "openai"
