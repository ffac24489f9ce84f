"""The fields of the request a log line was written for.

The API's middleware makes the request's audit record current (``current_request``) for as long
as its handler runs; a context variable follows the handler's task and whatever it awaits, and
is copied into tasks it starts. ``RequestLogFields``, installed on the log handlers by the command
line, copies the current record's ``request_id``, ``tenant``, ``key`` and ``machine`` onto every
record logged meanwhile, whatever logger wrote it: the JSON format writes them as fields, the
human one appends the request id (llmtunnel/logs.py). Lines written outside a request (a
machine's tunnel, the audit writer) carry none.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.audit import RequestRecord

_CURRENT: ContextVar[RequestRecord | None] = ContextVar("llmtunnel_request", default=None)


class current_request:  # lower case: it reads as a function, with current_request(record)
    """Log lines written inside the block (in this task, and in tasks started from it) are
    about ``record``'s request. A class rather than a generator: it runs on every request."""

    __slots__ = ("_record", "_token")

    def __init__(self, record: RequestRecord) -> None:
        self._record = record

    def __enter__(self) -> None:
        self._token: Token[RequestRecord | None] = _CURRENT.set(self._record)

    def __exit__(self, *exc: Any) -> None:
        _CURRENT.reset(self._token)


class RequestLogFields(logging.Filter):
    """Puts the current request's fields on each log record (those it has so far: the tenant
    and key once authenticated, the machine once one took the request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = _CURRENT.get()
        if request is not None:
            record.request_id = request.request_id
            if request.tenant_slug is not None:
                record.tenant = request.tenant_slug
            if request.key_name is not None:
                record.key = request.key_name
            if request.machine is not None:
                record.machine = request.machine
        return True
