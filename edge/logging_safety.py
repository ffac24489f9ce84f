"""Log records that can neither leak a secret nor flood the disk, whatever clients send.

Two ``logging.Filter`` classes, installed on the process's log handlers by the command line
(``protect_handler``) and usable on any handler in tests:

- ``SecretRedactor`` rewrites every record so that nothing that looks like a credential (an
  ``sk-lt-…`` key, an admin key, a ``Bearer …`` token, an ``x-api-key``/``Authorization`` header
  value) reaches a log line: message, arguments, exception text and stack are formatted first and
  then scrubbed. It is the second line of defence; the first is never logging request headers.
- ``RepeatLimiter`` lets at most ``per_window`` records of one kind (logger, level, message
  template) through per window, drops the rest, and reports what it dropped in one "suppressed N
  similar messages" line. A client that makes the edge log something on every connection gets at
  most that many lines a minute out of it, not hundreds of megabytes.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# A token ends where a quote, bracket, separator or space does. Brackets are excluded so that
# "[REDACTED]" is never taken for a token: redacting twice changes nothing.
_CREDENTIAL_CHARS = r"[^\s'\"`,;()\[\]{}<>]+"
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Header values, as text or as the repr of raw header bytes ("b'x-api-key: sk-…\x01…'"):
    # everything up to the end of the line or the closing quote.
    (
        re.compile(r"(?i)((?:x-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\r\n'\"]+"),
        r"\1[REDACTED]",
    ),
    (re.compile(rf"(?i)\b(bearer\s+){_CREDENTIAL_CHARS}"), r"\1[REDACTED]"),
    (re.compile(rf"sk-lt-{_CREDENTIAL_CHARS}"), "sk-lt-[REDACTED]"),
)

_REDACTED = "_llmtunnel_redacted"
_SUMMARY = "_llmtunnel_suppression_summary"


def redact(text: str) -> str:
    """``text`` with anything that looks like a credential replaced by ``[REDACTED]``."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class SecretRedactor(logging.Filter):
    """Formats a record's message, arguments, exception and stack, and scrubs secrets from them.

    The record is changed in place (``args`` emptied, ``exc_info`` replaced by ``exc_text``), so
    every handler after this one, and every formatter, sees only the scrubbed text."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _REDACTED, False):
            return True  # already scrubbed on its way through another handler
        try:
            message = record.getMessage()
        except Exception:  # arguments that do not fit the template: keep both, scrubbed
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = redact(message), ()
        if record.exc_info:
            # Formatter.format() appends exc_text when exc_info is gone, so the traceback still
            # shows, as scrubbed text.
            text = record.exc_text or self._formatter.formatException(record.exc_info)
            record.exc_info, record.exc_text = None, redact(text)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        setattr(record, _REDACTED, True)
        return True


_NUMBERS = re.compile(r"0x[0-9a-fA-F]+|\d+")


def _kind(record: logging.LogRecord) -> _Kind:
    """What makes records "similar": logger, level and template. Messages logged pre-formatted
    (asyncio's "socket.accept() out of system resource … fd=7 …") are told apart only by what is
    not a number, so an address or a descriptor does not make each one new."""
    template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
    return record.name, record.levelno, _NUMBERS.sub("#", template[:300])


_Kind = tuple[str, int, str]  # logger, level, template


@dataclass(slots=True)
class _Window:
    start: float
    passed: int = 0
    suppressed: int = 0


class RepeatLimiter(logging.Filter):
    """At most ``per_window`` records of each kind per ``window`` seconds; then one summary line.

    The summary ("suppressed N similar messages in the last 60 s: <template>") is logged when the
    window of a suppressed kind has ended, at the next record through this filter or at
    ``flush()``, which a long-running process calls now and then. Kinds are bounded too: past
    ``max_kinds`` live ones, new kinds share one window, so even a flood of all-different messages
    is bounded. Thread-safe; installing the same instance on several handlers counts a record once.
    """

    def __init__(
        self,
        per_window: int = 10,
        window: float = 60.0,
        *,
        max_kinds: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.per_window = per_window
        self.window = window
        self.max_kinds = max_kinds
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[_Kind, _Window] = {}
        self._next_sweep = 0.0
        self._last: tuple[logging.LogRecord | None, bool] = (None, True)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _SUMMARY, False):
            return True
        last, verdict = self._last
        if record is last:
            return verdict
        with self._lock:
            now = self._clock()
            due = self._sweep(now) if now >= self._next_sweep else []
            kind = _kind(record)
            if kind not in self._windows and len(self._windows) >= self.max_kinds:
                kind = (record.name, record.levelno, "(many different messages)")
            window = self._windows.get(kind)
            if window is not None and now - window.start >= self.window:
                if window.suppressed:
                    due.append((kind, window.suppressed))
                window = None
            if window is None:
                window = self._windows[kind] = _Window(now)
            if window.passed < self.per_window:
                window.passed += 1
                verdict = True
            else:
                window.suppressed += 1
                verdict = False
            self._last = (record, verdict)
        self._emit(due)
        return verdict

    def flush(self, *, everything: bool = False) -> None:
        """Log the summaries of windows that have ended (all of them with ``everything``, as at
        shutdown), without waiting for the next record."""
        with self._lock:
            due = self._sweep(self._clock(), everything=everything)
        self._emit(due)

    def _sweep(self, now: float, *, everything: bool = False) -> list[tuple[_Kind, int]]:
        # At most once a second: a flood must not pay for a scan of every kind on every record.
        self._next_sweep = now + min(1.0, self.window)
        due = []
        for kind, window in list(self._windows.items()):
            if everything or now - window.start >= self.window:
                if window.suppressed:
                    due.append((kind, window.suppressed))
                del self._windows[kind]
        return due

    def _emit(self, due: list[tuple[_Kind, int]]) -> None:
        # Outside the lock: the summary goes through the handlers, and so through filter() again.
        for (name, level, template), count in due:
            logger = logging.getLogger(name)
            summary = logger.makeRecord(
                name,
                level,
                "(log rate limit)",
                0,
                "suppressed %d similar messages in the last %.0f s: %s",
                (count, self.window, template[:200]),
                None,
                extra={_SUMMARY: True},
            )
            logger.handle(summary)


def protect_handler(
    handler: logging.Handler, limiter: RepeatLimiter | None = None
) -> RepeatLimiter:
    """Rate-limit, then redact, every record ``handler`` writes. Returns the limiter, to
    ``flush()`` it now and then."""
    limiter = limiter or RepeatLimiter()
    handler.addFilter(limiter)  # first: a dropped record is not worth formatting
    handler.addFilter(SecretRedactor())
    return limiter
