"""The audit trail and usage counters: metadata of every API request and admin action.

Nothing here ever sees a prompt or a completion, only sizes, counts, codes and timings. Writes
stay off the request path: finished requests are buffered in memory and written in one
transaction per ``flush_interval`` (1 s by default), and on shutdown. A ``kill -9`` therefore loses
at most the last interval. Old events are pruned after ``retention_days``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from edge.store import AUDIT_COLUMNS, RejectedRow, StoreUnavailable
from protocol import Delta, End, Error

if TYPE_CHECKING:
    from edge.agents.stream import StreamEvent
    from edge.limits import Admission
    from edge.store import Store

log = logging.getLogger(__name__)

PRUNE_EVERY = 3600.0
_UsageKey = tuple[str, str]  # (key id, UTC day)
MAX_BUFFERED = 100_000  # events kept for a retry while the store cannot be written


MAX_TOKENS_PER_REQUEST = 2**32 - 1
MAX_TEXT = 256  # a model name or path longer than this is cut: the audit keeps metadata


def _row(**values: Any) -> tuple[Any, ...]:
    """An audit row in the store's column order; columns not given are NULL."""
    return tuple(_bounded(values.get(column)) for column in AUDIT_COLUMNS)


def _bounded(value: Any) -> Any:
    return value[:MAX_TEXT] if isinstance(value, str) else value


def new_request_id() -> str:
    """A request's id, as OpenAI writes theirs: ``req_`` and 32 hex digits (128 random bits, so
    ids from several edge nodes never collide). Always the edge's own, never a client's
    (README "Operating it")."""
    return "req_" + secrets.token_hex(16)


@dataclass(slots=True)
class RequestRecord:
    """One API request as the audit sees it; filled in as the request goes along."""

    endpoint: str
    client: str | None
    user_agent: str | None
    request_id: str = field(default_factory=new_request_id)  # x-request-id, OPEN, the audit
    route: str | None = None  # the endpoint as metrics name it: its route, not its path
    started_at: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    tenant_id: str | None = None
    tenant_slug: str | None = None
    key_id: str | None = None
    key_name: str | None = None
    model: str | None = None
    machine: str | None = None
    error_code: str | None = None
    admission: Admission | None = None
    prompt_estimate: int = 0
    # What the tunnel stream showed: whether a machine took the request, what came back.
    dispatched: bool = False
    output_bytes: int = 0
    first_output: float | None = None
    end: End | None = None

    def dispatch(self, machine: str, prompt_estimate: int) -> None:
        """The request was handed to ``machine`` (again, on failover)."""
        self.machine = machine
        self.prompt_estimate = prompt_estimate
        self.dispatched = True
        self.output_bytes = 0

    def observe(self, event: StreamEvent) -> None:
        """Called with each event the request reads from its tunnel stream."""
        if isinstance(event, Delta):  # per token at low load: keep it cheap
            if self.first_output is None:
                self.first_output = time.monotonic()
            self.output_bytes += event.flow_size  # text, thinking and tool calls (§8)
        elif isinstance(event, End):
            self.end = event
        elif isinstance(event, Error):
            self.error_code = event.code
            if self.first_output is None:
                self.dispatched = False  # refused before any work: nothing to charge

    def tokens_used(self) -> tuple[int, int]:
        """``(prompt, completion)`` tokens to charge: the real counts when the stream ended
        normally; when it broke or was cancelled after a machine took it, an upper bound (the
        prompt estimate and one token per byte streamed); nothing when no machine took it. An
        END whose runtime counted nothing carries that upper bound already (``upper_bound``,
        put in by the stream it came on)."""
        if self.end is not None:
            return self.end.prompt_tokens, self.end.completion_tokens
        if not self.dispatched:
            return 0, 0
        return self.upper_bound()

    def upper_bound(self) -> tuple[int, int]:
        """What the request can at most have used so far: the prompt estimate (no tokenizer
        makes a token shorter than a byte) and one token per byte streamed."""
        return self.prompt_estimate, self.output_bytes

    @property
    def exact(self) -> bool:
        """Whether the runtime counted the tokens: the stream ended with an END that says so."""
        return self.end is not None and self.end.usage_reported


RequestObserver = Callable[[RequestRecord, int], None]


class Recorder:
    """Buffers audit events and usage increments; ``run()`` flushes them every interval.

    Every API request ends here (``request``), authenticated or not, so ``observer``, when set,
    is told of each one with its status: the metrics count requests from what the record
    already knows (edge/observability), instead of more work while the request runs."""

    def __init__(
        self, store: Store, flush_interval: float = 1.0, retention_days: float = 90.0
    ) -> None:
        self._store = store
        self.flush_interval = flush_interval
        self.retention_days = retention_days
        self._events: list[tuple[Any, ...]] = []
        self._usage: dict[tuple[str, str], list[Any]] = {}
        self._last_prune = 0.0
        self.dropped = 0  # rows the store refused and that were dropped (logged one by one)
        self.observer: RequestObserver | None = None

    @property
    def backlog(self) -> int:
        """Audit events waiting to be written (a store that cannot be written makes it grow)."""
        return len(self._events)

    def request(self, record: RequestRecord, status: int) -> None:
        """A finished API request: queue its event and usage (its admission was settled by
        the pipeline that opened it, edge/api/dispatch.py)."""
        if self.observer is not None:
            self.observer(record, status)
        if record.tenant_id is None or record.key_id is None:
            return  # never authenticated: no tenant to file it under
        # Clamped: a count past any real request's is a confused or hostile machine's, and must
        # not make the row (nor the day's usage row it is added to) unstorable.
        prompt, completion = (min(n, MAX_TOKENS_PER_REQUEST) for n in record.tokens_used())
        first = record.first_output
        ttft = (first - record.started) * 1000 if first is not None else None
        exact = record.exact
        self._events.append(
            _row(
                tenant_id=record.tenant_id,
                at=record.started_at,
                kind="request",
                actor=record.key_name,
                action=record.endpoint,
                key_id=record.key_id,
                machine=record.machine,
                model=record.model,
                status=status,
                error_code=record.error_code,
                prompt_tokens=prompt if exact else None,
                completion_tokens=completion if exact else None,
                ttft_ms=ttft,
                duration_ms=(time.monotonic() - record.started) * 1000,
                client=record.client,
                user_agent=record.user_agent,
                request_id=record.request_id,
            )
        )
        day = datetime.datetime.fromtimestamp(record.started_at, datetime.UTC).date().isoformat()
        counts = self._usage.setdefault((record.key_id, day), [record.tenant_id, 0, 0, 0])
        counts[1] += 1
        counts[2] += prompt
        counts[3] += completion

    def admin(self, tenant_id: str, actor: str, action: str, subject: str) -> None:
        """An admin action (``key.created``, ``machine.revoked``, …) on ``subject``."""
        self._events.append(
            _row(
                tenant_id=tenant_id,
                at=time.time(),
                kind="admin",
                actor=actor,
                action=action,
                subject=subject,
            )
        )

    async def flush(self) -> bool:
        """Write what is buffered; ``False`` when the store could not be written now (the
        batch is kept for the next flush). Never raises: a batch that cannot be written must
        not stop the ones after it, nor the admin API reading what was written."""
        if not self._events and not self._usage:
            return True
        events, self._events = self._events, []
        usage, self._usage = self._usage, {}
        rows = [(key, day, *counts) for (key, day), counts in usage.items()]
        try:
            await self._store.usage.record(events, rows)
        except StoreUnavailable as exc:
            log.warning("audit: the store cannot be written now (%s); retrying next flush", exc)
            self._requeue(events, usage)
            return False
        except RejectedRow:
            return await self._write_one_by_one(events, rows)
        except Exception:  # what no store names still must not lose the batch
            log.exception("audit: writing failed unexpectedly; retrying next flush")
            self._requeue(events, usage)
            return False
        return True

    def _requeue(self, events: list[tuple[Any, ...]], usage: dict[_UsageKey, list[Any]]) -> None:
        # Keep the batch for the next flush (a locked or full disk may recover), up to a
        # bound, so that a store that stays broken cannot eat the edge's memory.
        if len(self._events) + len(events) > MAX_BUFFERED:
            self.dropped += len(events)
            log.error("audit: %d events dropped: the store stayed unwritable", len(events))
            return
        self._events[:0] = events
        for (key, day), counts in usage.items():
            merged = self._usage.setdefault((key, day), [counts[0], 0, 0, 0])
            for i in (1, 2, 3):
                merged[i] += counts[i]

    async def _write_one_by_one(
        self, events: list[tuple[Any, ...]], rows: list[tuple[Any, ...]]
    ) -> bool:
        """Some row of the batch can never be stored: write each alone and drop only those
        (logged and counted in ``dropped``). Slow, but only a broken row brings it here."""
        batches: list[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = [
            ([event], []) for event in events
        ] + [([], [row]) for row in rows]
        for index, (event_rows, usage_rows) in enumerate(batches):
            try:
                await self._store.usage.record(event_rows, usage_rows)
            except RejectedRow as exc:
                self.dropped += 1
                log.error("audit: dropped a row the store refuses: %s", exc)
            except StoreUnavailable:
                rest = batches[index:]
                self._requeue(
                    [e for b in rest for e in b[0]],
                    {(r[0], r[1]): list(r[2:]) for b in rest for r in b[1]},
                )
                return False
        return True

    async def prune(self, now: float) -> int:
        self._last_prune = now
        return await self._store.usage.prune_audit(now - self.retention_days * 86400)

    async def run(self) -> None:
        """Flush every interval, prune hourly, until cancelled; then flush what is left."""
        try:
            while True:
                await asyncio.sleep(self.flush_interval)
                await self.flush()  # never raises
                now = time.time()
                if now - self._last_prune >= PRUNE_EVERY:
                    await self._prune_logged(now)
        finally:
            await self.flush()

    async def _prune_logged(self, now: float) -> None:
        try:
            if pruned := await self.prune(now):
                log.info("audit: pruned %d events past retention", pruned)
        except Exception as exc:  # a failed prune must not end the recorder
            log.warning("audit: pruning failed (%s); trying again next hour", exc)


async def stop_recorder(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
