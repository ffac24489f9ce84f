"""The agent's log fields (agent/log_fields.py): its identity on every line, the stream's request
id on the lines its task writes."""

from __future__ import annotations

import asyncio
import logging

from agent.log_fields import StreamLogFields, serving


def _filtered(fields: StreamLogFields) -> logging.LogRecord:
    record = logging.LogRecord("agent.test", logging.INFO, __file__, 1, "m", (), None)
    assert fields.filter(record)
    return record


async def test_a_stream_s_task_logs_its_request_id_and_others_do_not() -> None:
    fields = StreamLogFields()
    fields.tenant, fields.machine = "acme", "gpu-1"

    async def stream(request_id: str, stream_id: int) -> logging.LogRecord:
        serving(request_id, stream_id)
        await asyncio.sleep(0)
        return _filtered(fields)

    one, two = await asyncio.gather(stream("req_1", 1), stream("req_2", 2))
    assert (one.request_id, one.stream, two.request_id, two.stream) == ("req_1", 1, "req_2", 2)  # type: ignore[attr-defined]
    outside = _filtered(fields)  # the session's own lines: no stream
    assert (outside.tenant, outside.machine) == ("acme", "gpu-1")  # type: ignore[attr-defined]
    assert "request_id" not in outside.__dict__ and "stream" not in outside.__dict__


async def test_an_open_without_a_request_id_still_names_its_stream() -> None:
    async def stream() -> logging.LogRecord:
        serving("", 7)
        return _filtered(StreamLogFields())

    record = await asyncio.create_task(stream())
    assert record.stream == 7  # type: ignore[attr-defined]
    assert "request_id" not in record.__dict__ and "machine" not in record.__dict__
