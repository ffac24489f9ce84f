"""The log formats (llmtunnel/logs.py), behind the filters the command line installs: the secret
redactor and repeat limiter (edge/logging_safety.py) and a side's fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from edge.audit import RequestRecord
from edge.logging_safety import protect_handler
from edge.observability.logs import RequestLogFields, current_request
from llmtunnel.logs import HumanFormatter, JsonFormatter, LogFormat, formatter

SECRET = "sk-lt-" + "a" * 32


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    protect_handler(handler)
    handler.addFilter(RequestLogFields())
    logger = logging.getLogger("edge.format-test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, out, handler
    finally:
        logger.removeHandler(handler)


def test_json_is_one_object_per_line_scrubbed_with_the_request_s_fields(
    logged: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, out, handler = logged
    handler.setFormatter(formatter(LogFormat.JSON))
    request = RequestRecord("POST /v1/chat/completions", None, None)
    request.tenant_slug, request.key_name = "acme", "ci"
    logger.info("plain")
    with current_request(request):
        logger.warning("key %s in\na message", SECRET)
        try:
            raise ValueError(f"bad {SECRET}")
        except ValueError:
            logger.exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # the line break and the traceback stay inside their events
    plain, warned, failed = (json.loads(line) for line in lines)
    assert plain["message"] == "plain" and "request_id" not in plain
    assert set(plain) == {"time", "level", "logger", "message"}
    assert plain["time"].endswith("Z") and plain["logger"] == "edge.format-test"
    assert warned["level"] == "WARNING"
    assert warned["message"] == "key sk-lt-[REDACTED] in\na message"
    assert (warned["request_id"], warned["tenant"], warned["key"]) == (
        request.request_id,
        "acme",
        "ci",
    )
    assert "ValueError: bad sk-lt-[REDACTED]" in failed["exception"]
    assert SECRET not in out.getvalue()


def test_human_is_the_usual_line_with_the_request_id_after_the_message(
    logged: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, out, handler = logged
    handler.setFormatter(formatter(LogFormat.HUMAN))
    request = RequestRecord("GET /v1/models", None, None)
    logger.info("outside")
    with current_request(request):
        try:
            raise ValueError("x")
        except ValueError:
            logger.exception("inside")
    text = out.getvalue()
    first, second = text.splitlines()[:2]
    assert first.endswith(" INFO edge.format-test: outside")
    assert second.endswith(f" ERROR edge.format-test: inside [{request.request_id}]")
    assert "Traceback" in text  # after the line, as usual


def test_formatter_names() -> None:
    assert isinstance(formatter(LogFormat.JSON), JsonFormatter)
    assert isinstance(formatter(LogFormat("human")), HumanFormatter)
