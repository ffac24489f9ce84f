"""The fields of the request a log line is about (edge/observability/logs.py)."""

from __future__ import annotations

import asyncio
import logging

from edge.audit import RequestRecord
from edge.observability.logs import RequestLogFields, current_request


def _record(message: str = "m") -> logging.LogRecord:
    record = logging.LogRecord("edge.test", logging.INFO, __file__, 1, message, (), None)
    assert RequestLogFields().filter(record)
    return record


def test_a_line_outside_a_request_has_no_fields() -> None:
    assert "request_id" not in _record().__dict__


def test_a_line_inside_a_request_has_what_the_request_knows_so_far() -> None:
    request = RequestRecord("POST /v1/chat/completions", "127.0.0.1", None)
    with current_request(request):
        first = _record()
        request.tenant_slug, request.key_name, request.machine = "acme", "ci", "gpu-1"
        later = _record()
    after = _record()
    assert first.__dict__["request_id"] == request.request_id
    assert "tenant" not in first.__dict__  # not authenticated yet
    assert (later.tenant, later.key, later.machine) == ("acme", "ci", "gpu-1")  # type: ignore[attr-defined]
    assert "request_id" not in after.__dict__


async def test_tasks_started_in_a_request_log_as_it_and_concurrent_requests_stay_apart() -> None:
    seen: dict[str, str] = {}

    async def handle(name: str) -> None:
        request = RequestRecord(name, None, None)
        with current_request(request):
            await asyncio.sleep(0)  # the other request runs meanwhile
            await asyncio.create_task(asyncio.sleep(0))
            seen[name] = _record().__dict__["request_id"]
            assert seen[name] == request.request_id

    await asyncio.gather(handle("a"), handle("b"))
    assert seen["a"] != seen["b"]
