"""The fields of the agent's log lines: which machine wrote them, and, for a line written while
serving a stream, the edge's request id (OPEN's ``request_id``, PROTOCOL.md §2) and the stream.

Each stream is served by a task of its own (agent/session.py), which names its stream first
thing (``serving``); a context variable is the task's own, so every line logged in that task,
by whatever logger (the backend's included), is about that stream. ``StreamLogFields`` is the
filter the command line installs to copy them onto records, for llmtunnel/logs.py to write.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

_STREAM: ContextVar[tuple[str, int] | None] = ContextVar("llmtunnel_stream", default=None)


def serving(request_id: str, stream_id: int) -> None:
    """From now on this task (and the tasks it starts) serves the stream ``stream_id``, which
    the edge calls ``request_id``. Call it at the start of the stream's own task."""
    _STREAM.set((request_id, stream_id))


class StreamLogFields(logging.Filter):
    """Puts ``tenant`` and ``machine`` (once known, from the agent's identity) on every record,
    and ``request_id`` and ``stream`` on those written while serving a stream."""

    def __init__(self) -> None:
        super().__init__()
        self.tenant: str | None = None
        self.machine: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.machine is not None:
            record.tenant, record.machine = self.tenant, self.machine
        stream = _STREAM.get()
        if stream is not None:
            request_id, record.stream = stream
            if request_id:
                record.request_id = request_id
        return True
