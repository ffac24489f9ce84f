"""What every part of the command line shares: failing with a message, logging, running until a
signal, and reading and printing durations, times and tables."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Iterable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from llmtunnel.logs import LogFormat

if TYPE_CHECKING:
    from edge.logging_safety import RepeatLimiter

LogFormatOption = Annotated[
    LogFormat,
    typer.Option(
        "--log-format",
        help="human: one readable line per event; json: one JSON object per line (time, level,"
        " logger, message, request_id, tenant, key, machine, stream).",
    ),
]


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def address_in_use_is_a_usage_error(where: str, flag: str) -> Iterator[None]:
    """A port already taken ends the command with one line naming it and the option that
    chooses another, instead of a traceback."""
    try:
        yield
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        fail(f"{where} is already in use: stop what listens there, or choose another with {flag}")


def setup_logging(
    verbose: bool,
    log_format: LogFormat = LogFormat.HUMAN,
    fields: Iterable[logging.Filter] = (),
) -> RepeatLimiter:
    """Log to stderr in ``log_format`` (llmtunnel/logs.py), through filters that rate-limit
    repeated records and redact anything that looks like a key (edge/logging_safety.py):
    nothing a client does can flood the log or put a secret in it. ``fields`` are the filters
    that put a request's fields (its id, tenant, machine…) on the records written for it.
    Returns the rate limiter, for its summaries to be flushed now and then."""
    from edge.logging_safety import RepeatLimiter, protect_handler
    from llmtunnel.logs import formatter

    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(formatter(log_format))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[stderr])
    limiter = RepeatLimiter()
    for handler in logging.getLogger().handlers:
        protect_handler(handler, limiter)
        for field_filter in fields:
            handler.addFilter(field_filter)
    # Library chatter (httpx logs every request the agent makes to Ollama) is for debugging.
    for library in ("httpx", "httpcore"):
        logging.getLogger(library).setLevel(logging.DEBUG if verbose else logging.WARNING)
    return limiter


async def flush_log_summaries(limiter: RepeatLimiter) -> None:
    """Report suppressed log records within seconds of their window ending, even when nothing else
    is logged after a burst."""
    while True:
        await asyncio.sleep(5)
        limiter.flush()


def run_until_signal(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` until it returns or SIGINT/SIGTERM arrives, then let it clean up."""

    async def wrapper() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    run_loop(wrapper())


T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop where it is installed (not on Windows). Its TLS keeps a few
    kilobytes per connection where the standard loop's keeps a 256 KiB read buffer: an edge
    holding a thousand idle agents needs 25 MiB instead of 300 (README "Benchmarks", (e)).
    ``LLMTUNNEL_EVENT_LOOP=asyncio`` chooses the standard loop."""
    try:
        import uvloop
    except ImportError:
        uvloop = None  # type: ignore[assignment]
    if uvloop is None or os.environ.get("LLMTUNNEL_EVENT_LOOP") == "asyncio":
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def parse_listen(
    listen: str, flag: str = "--listen", default_host: str = "0.0.0.0"
) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; an empty host is ``default_host``)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        fail(f"{flag} must be HOST:PORT, got {listen!r}")
    return host.strip("[]") or default_host, int(port)


def when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )


def parse_duration(text: str, flag: str = "a duration", at_most: float | None = None) -> float:
    """``30d``, ``12h``, ``15m`` or ``90s`` in seconds; ``flag`` names the option in errors."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        fail(f"{flag} takes a duration such as 30d, 12h, 15m or 90s; got {text!r}")
    seconds = int(text[:-1]) * units[text[-1]]
    if at_most is not None and seconds > at_most:
        fail(f"{flag} is at most {at_most / 86400:,.0f} days; got {text!r}")
    return seconds


def parse_since(text: str | None) -> float | None:
    """``--since``: an age such as 7d or 12h, or a UTC date such as 2026-11-01."""
    if text is None:
        return None
    if text[:1].isdigit() and text[-1:] in "smhd" and text[:-1].isdigit():
        return datetime.datetime.now(datetime.UTC).timestamp() - parse_duration(text, "--since")
    try:
        day = datetime.date.fromisoformat(text)
    except ValueError:
        fail(f"--since takes an age such as 7d or a date such as 2026-11-01; got {text!r}")
    return datetime.datetime.combine(day, datetime.time(tzinfo=datetime.UTC)).timestamp()
