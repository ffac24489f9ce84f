from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import BadHttpMessage, InvalidHeader

from edge.credentials import ADMIN_KEY_PREFIX, new_api_key
from edge.logging_safety import RepeatLimiter, SecretRedactor, protect_handler, redact

KEY = new_api_key()
ADMIN_KEY = new_api_key(ADMIN_KEY_PREFIX)
SECRET_PART = KEY.removeprefix("sk-lt-")


class Capture(logging.Handler):
    """Formats every record it gets, as a real handler would."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, Capture]]:
    log = logging.getLogger("tests.logging_safety")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    capture = Capture()
    log.addHandler(capture)
    yield log, capture
    log.removeHandler(capture)


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {KEY}",
        f"authorization: bearer {KEY}",
        f"x-api-key: {KEY}",
        f"X-Api-Key:{KEY}",
        f"{{'x-api-key': '{KEY}', 'host': 'a'}}",
        f"b'Authorization: Bearer {KEY[:10]}\\x01{KEY[10:]}'",  # aiohttp's repr of a bad header
        f"b'x-api-key: {KEY[:10]}\\x7f{KEY[10:]}'",
        f"the key {KEY} was used",
        f"the admin key {ADMIN_KEY} was used",
        f"Bearer {SECRET_PART}",  # a bearer token without our prefix is a credential too
        f"GET /v1/models?key={KEY}",
    ],
)
def test_redact_removes_every_shape_of_key(text: str) -> None:
    redacted = redact(text)
    assert SECRET_PART not in redacted
    assert ADMIN_KEY.removeprefix("sk-lt-admin-") not in redacted
    assert "[REDACTED]" in redacted
    assert redact(redacted) == redacted  # twice (two handlers) changes nothing more


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "tenant acme: 3 machines online, key prefix sk-lt… shown in listings"
    assert redact("GET /v1/models 200 in 12 ms") == "GET /v1/models 200 in 12 ms"
    assert redact(text) == text


def test_the_redactor_scrubs_message_arguments_exception_and_stack(
    logger: tuple[logging.Logger, Capture],
) -> None:
    log, capture = logger
    capture.addFilter(SecretRedactor())
    log.warning("login with %s from %s", f"Bearer {KEY}", "1.2.3.4")
    log.info("headers: %r", {"x-api-key": KEY})
    try:
        # What aiohttp's parser raises on an invalid byte in a header (its message shows the line).
        raise BadHttpMessage(f"Invalid header value char:\n\n  b'Authorization: Bearer {KEY}'")
    except BadHttpMessage:
        log.exception("Error handling request from %s", "1.2.3.4")
    try:
        raise InvalidHeader(f"x-api-key: {KEY}\x01".encode())
    except InvalidHeader as exc:
        log.error("bad header", exc_info=exc, stack_info=True)
    log.error("no args but a %s", (KEY,))  # arguments that do not fit the template
    joined = "\n".join(capture.lines)
    assert len(capture.lines) == 5
    assert SECRET_PART not in joined
    assert "login with Bearer [REDACTED] from 1.2.3.4" in joined
    assert "Traceback (most recent call last)" in joined  # the traceback is kept, scrubbed
    assert "BadHttpMessage" in joined and "InvalidHeader" in joined


def test_the_limiter_lets_ten_a_minute_through_then_one_summary(
    logger: tuple[logging.Logger, Capture],
) -> None:
    log, capture = logger
    now = [0.0]
    limiter = RepeatLimiter(per_window=10, window=60, clock=lambda: now[0])
    protect_handler(capture, limiter)
    for i in range(1000):
        log.error("socket.accept() out of system resource: fd=%d", i)
    log.error("a different message")  # another kind has its own budget
    assert len(capture.lines) == 11
    now[0] = 61
    limiter.flush()
    assert capture.lines[11:] == [
        "ERROR tests.logging_safety: suppressed 990 similar messages in the last 60 s: "
        "socket.accept() out of system resource: fd=%d"
    ]
    log.error("socket.accept() out of system resource: fd=%d", 1)  # a new window
    assert len(capture.lines) == 13
    limiter.flush(everything=True)
    assert len(capture.lines) == 13  # nothing was suppressed in it: no summary


def test_pre_formatted_messages_differing_only_in_numbers_are_one_kind(
    logger: tuple[logging.Logger, Capture],
) -> None:
    log, capture = logger
    limiter = protect_handler(capture, RepeatLimiter(per_window=3, window=60))
    for fd in range(50):
        log.error(f"Exception in callback <Handle at 0x7f{fd:04x}> fd={fd}")
    assert len(capture.lines) == 3
    limiter.flush(everything=True)
    assert capture.lines[3].startswith("ERROR tests.logging_safety: suppressed 47 similar")


def test_a_flood_of_all_different_messages_is_bounded_too(
    logger: tuple[logging.Logger, Capture],
) -> None:
    log, capture = logger
    protect_handler(capture, RepeatLimiter(per_window=5, window=60, max_kinds=20))
    for word in (f"kind-{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}" for i in range(600)):
        log.warning(f"client sent {word}")
    assert len(capture.lines) == 20 + 5  # 20 kinds tracked, the rest share one budget


def test_a_record_through_two_protected_handlers_is_counted_once(
    logger: tuple[logging.Logger, Capture],
) -> None:
    log, capture = logger
    second = Capture()
    log.addHandler(second)
    limiter = RepeatLimiter(per_window=4, window=60)
    protect_handler(capture, limiter)
    protect_handler(second, limiter)
    try:
        for _ in range(10):
            log.warning("same %s", KEY)
    finally:
        log.removeHandler(second)
    assert len(capture.lines) == len(second.lines) == 4
    assert SECRET_PART not in "".join(capture.lines + second.lines)
