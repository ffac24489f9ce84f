"""Errors the edge answers with, in the OpenAI shape (README "Errors and limits"), or in
Anthropic's on ``/v1/messages`` (``ApiError.anthropic_body``).

Every failure a client can cause becomes an ``ApiError`` carrying its status, type and code; the
middleware in ``edge.app`` renders it, so no handler builds error bodies by hand and no exception
reaches aiohttp as a 500.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web

_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    421: "invalid_request_error",
    429: "rate_limit_error",
    501: "not_implemented_error",
    502: "api_error",
    503: "service_unavailable_error",
    504: "timeout_error",
}

# The same statuses as Anthropic's error types (their API's "Errors" page), for /v1/messages.
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    501: "api_error",
    502: "api_error",
    503: "overloaded_error",  # Anthropic's own overload is 529; 503 keeps the edge's status
    504: "api_error",
}

ErrorShape = Literal["openai", "anthropic"]


class ApiError(Exception):
    """A client-facing error: HTTP ``status``, a stable ``code`` and a human ``message``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}

    @property
    def type(self) -> str:
        return _TYPES.get(self.status, "api_error")

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    @property
    def anthropic_type(self) -> str:
        default = "invalid_request_error" if self.status < 500 else "api_error"
        return _ANTHROPIC_TYPES.get(self.status, default)

    def anthropic_body(self) -> dict[str, Any]:
        """Anthropic's shape. ``code`` is an llmtunnel extension (their SDKs ignore extra keys),
        so that clients can tell e.g. ``model_does_not_support_tools`` from other 400s."""
        return {
            "type": "error",
            "error": {"type": self.anthropic_type, "message": self.message, "code": self.code},
        }

    def response(self, shape: ErrorShape = "openai") -> web.Response:
        body = self.anthropic_body() if shape == "anthropic" else self.body()
        return web.json_response(body, status=self.status, headers=self.headers)


def bad_request(
    message: str, *, param: str | None = None, code: str = "invalid_request"
) -> ApiError:
    return ApiError(400, code, message, param=param)


# How a stream ERROR from the agent (protocol.ErrorCode) surfaces to API clients.
STATUS_FOR_STREAM_ERROR = {
    "bad_request": 400,
    "context_length_exceeded": 400,
    "model_not_found": 404,
    "unsupported": 501,
    "busy": 503,
    "draining": 503,
    "backend_unavailable": 502,
    "backend_error": 502,
    "backend_timeout": 504,
}


def from_stream_error(code: str, message: str) -> ApiError:
    return ApiError(STATUS_FOR_STREAM_ERROR.get(code, 502), code, message)
