"""How the edge's and the agent's log lines are written (``--log-format``, README "Operating it").

- ``human`` (the default): ``TIME LEVEL LOGGER: MESSAGE``, and ``[req_…]`` after the message of
  a line written for a request, so that it can be followed from the edge's access line to the
  agent's lines for its stream.
- ``json``: one JSON object per line: ``time`` (UTC, ISO 8601, milliseconds), ``level``,
  ``logger``, ``message``, then those of ``FIELDS`` the line has (``request_id``, ``tenant``,
  ``key``, ``machine``, ``stream``), and ``exception`` with the traceback's text. A message's
  line breaks are escaped, so one event is always one line.

The fields are put on records by the filters each side installs (edge/observability/logs.py,
agent/log_fields.py); these formatters run after the secret redactor and the repeat limiter
(edge/logging_safety.py), so what they write is already scrubbed.
"""

from __future__ import annotations

import datetime
import json
import logging
from enum import StrEnum

FIELDS = ("request_id", "tenant", "key", "machine", "stream")
HUMAN = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogFormat(StrEnum):
    HUMAN = "human"
    JSON = "json"


class HumanFormatter(logging.Formatter):
    """The default format, with ``[request id]`` after the message of a request's lines."""

    def __init__(self) -> None:
        super().__init__(HUMAN)

    def formatMessage(self, record: logging.LogRecord) -> str:
        text = super().formatMessage(record)
        request_id = record.__dict__.get("request_id")
        return f"{text} [{request_id}]" if request_id else text


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        entry: dict[str, object] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format is LogFormat.JSON else HumanFormatter()
