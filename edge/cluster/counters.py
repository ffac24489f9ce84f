"""Every node's limits in one place: RPM/TPM buckets and budget reservations in Redis.

``SharedLimits`` is the ``Limiter`` of a node started with ``--redis``. Each admission is one
Lua script (``edge.cluster.scripts.ADMIT``) that checks every limit of the key and, only if all
pass, charges them, atomically for every node at once. Settling is off the request path: the
settlement is queued and written by the node's background task, in batches, and written again
later if Redis was down (so a request's real usage is not lost to a short outage). The node
renews the reservations of its requests in flight; a node that dies stops renewing and its
reservations expire (``reservation_ttl``) instead of holding the budget.

When Redis cannot answer (docs/ARCHITECTURE.md "Several edge nodes"):

- **rate limits fail open to this node**: the key's RPM/TPM are enforced by this node's own
  buckets (``edge.limits.Limits``), so during the outage each node allows the limit and N nodes
  at most N times it. Refusing every request of every limited key because a counter store is
  away would turn a cache outage into an API outage.
- **budgets fail closed**: a key with a budget gets 503 ``limits_unavailable`` (``Retry-After:
  1``) until Redis answers, since tokens spent past a budget cannot be taken back. Keys without a
  budget are not affected.

After a failure the node does not ask Redis again for ``RETRY_AFTER`` seconds (every request
would otherwise wait for its own connection attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import secrets
import time
from collections import deque
from dataclasses import dataclass

from redis.asyncio import Redis

from edge.cluster import scripts
from edge.cluster.redis_link import REDIS_ERRORS, is_outage_reply, key
from edge.errors import ApiError
from edge.limits import (
    Admission,
    Limits,
    budget_exceeded,
    charge_for,
    period_bounds,
    rate_headers,
    rate_limited,
)
from edge.store import ApiKey, Clock, Store
from protocol.requests import Request

log = logging.getLogger(__name__)

RESERVATION_TTL = 60.0  # seconds a reservation lives unless its node renews it
RETRY_AFTER = 1.0  # seconds without asking Redis after it failed
MAX_PENDING = 100_000  # settlements waiting for Redis; past it the oldest are dropped (logged)
ACCOUNT_SLACK = 86_400  # an account is kept a day past its period, then expires

_ADMITTED, _REQUESTS, _TOKENS, _BUDGET, _SEED = range(5)


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one API key's counters (one hash tag: one Redis Cluster slot)."""

    rpm: str
    tpm: str
    account: str
    held: str
    amounts: str
    tag: str

    def admitted(self, admission: str) -> str:
        """The marker that admission ``admission`` was charged (scripts.ADMIT)."""
        return key(self.tag, "admitted", admission)

    def settled(self, reservation: str) -> str:
        """The marker that reservation ``reservation`` was settled (in the key's slot)."""
        return key(self.tag, "settled", reservation or "-")

    @classmethod
    def of(cls, key_id: str, period_start: str) -> Keys:
        tag = "{" + key_id + "}"
        return cls(
            key(tag, "rpm"),
            key(tag, "tpm"),
            key(tag, "budget", period_start),
            key(tag, "held", period_start),
            key(tag, "held-amounts", period_start),
            tag,
        )


@dataclass(frozen=True, slots=True)
class Settlement:
    keys: Keys
    at: float
    tpm_cap: int
    tokens_taken: float
    used: int
    reservation: str  # '' without a budget


class SharedLimits:
    """The ``Limiter`` whose counters are in Redis, shared by every node."""

    def __init__(
        self,
        redis: Redis,
        store: Store,
        reservation_ttl: float = RESERVATION_TTL,
        local: Limits | None = None,
        clock: Clock = time.time,
    ) -> None:
        """``clock`` is the edge's Unix time (the one requests are admitted with)."""
        self._redis = redis
        self._store = store
        self.clock = clock
        self._local = local or Limits(store)
        self.reservation_ttl = reservation_ttl
        self._admit = redis.register_script(scripts.ADMIT)
        self._settle = redis.register_script(scripts.SETTLE)
        self._renew = redis.register_script(scripts.RENEW)
        self._node = secrets.token_hex(4)  # reservation ids: this node's prefix and a counter
        self._ids = itertools.count(1)
        self._held: dict[str, Keys] = {}  # reservations of requests in flight on this node
        self._pending: deque[Settlement] = deque()
        self._wake = asyncio.Event()
        self._down_until = 0.0
        self.dropped = 0  # settlements dropped because too many waited (logged)

    # ------------------------------------------------------------------ admission

    async def admit(
        self, api_key: ApiKey, request: Request, now: float, prompt_estimate: int | None = None
    ) -> Admission:
        """``edge.limits.Limits.admit``'s contract, for every node at once; 503
        ``limits_unavailable`` for a key with a budget while Redis cannot answer."""
        limits = api_key.limits
        budgeted = limits.budget_tokens is not None and limits.budget_period is not None
        if limits.rpm is None and limits.tpm is None and not budgeted:
            return Admission({}, charge_for(api_key, request, prompt_estimate).prompt_estimate)
        loop_now = asyncio.get_running_loop().time()
        if loop_now >= self._down_until:
            try:
                return await self._admit_shared(api_key, request, now, prompt_estimate)
            except REDIS_ERRORS as exc:
                self._down_until = loop_now + RETRY_AFTER
                log.warning("Redis cannot answer (%s): limits follow their outage policy", exc)
                # Pooled connections to a Redis that restarted are all stale: start afresh.
                with contextlib.suppress(*REDIS_ERRORS):
                    await self._redis.connection_pool.disconnect()
        if budgeted:
            raise ApiError(
                503,
                "limits_unavailable",
                "this key's token budget cannot be checked now (the edge's counter store is "
                "unreachable); retry in a moment",
                headers={"Retry-After": "1"},
            )
        return await self._local.admit(api_key, request, now, prompt_estimate)

    async def _admit_shared(
        self, api_key: ApiKey, request: Request, now: float, prompt_estimate: int | None
    ) -> Admission:
        limits = api_key.limits
        charge = charge_for(api_key, request, prompt_estimate)
        rpm, tpm = limits.rpm or 0, limits.tpm or 0
        tpm_charge = min(charge.amount, tpm)
        budget = limits.budget_tokens if limits.budget_period is not None else None
        period_start, resets_at = period_bounds(limits.budget_period or "day", now)
        keys = Keys.of(api_key.id, period_start)
        admission = f"{self._node}:{next(self._ids)}"
        reservation = admission if budget is not None else ""
        args: list[str | int | float] = [
            repr(now),
            rpm,
            tpm,
            tpm_charge,
            -1 if budget is None else budget,
            charge.amount,
            reservation,
            repr(now + self.reservation_ttl),
            math.ceil(resets_at - now) + ACCOUNT_SLACK,
            "",
            scripts.ADMITTED_MARKER_TTL,
        ]
        marker = keys.admitted(admission)
        names = [keys.rpm, keys.tpm, keys.account, keys.held, keys.amounts, marker]
        answer = await self._admit(keys=names, args=args)
        if int(answer[0]) == _SEED:
            # The account is new this period (or Redis lost it): start it from what PostgreSQL
            # recorded. The script sets it only if it is still missing.
            args[-2] = await self._store.usage.tokens_used(api_key.id, period_start)
            answer = await self._admit(keys=names, args=args)
        code, wait = int(answer[0]), float(answer[1])
        headers = _headers(rpm, tpm, answer[2], answer[3])
        if code == _REQUESTS:
            raise rate_limited("requests", rpm, wait, headers)
        if code == _TOKENS:
            raise rate_limited("tokens", tpm, wait, headers)
        if code == _BUDGET:
            assert budget is not None
            left = max(0, int(float(answer[4])))
            raise budget_exceeded(api_key, resets_at, charge.amount, left, now, headers)
        if reservation:
            self._held[reservation] = keys
        settle = _Settler(self, keys, tpm, tpm_charge, reservation)
        return Admission(
            headers,
            charge.prompt_estimate,
            charge.completion_cap,
            charge.amount if budget is not None else 0,
            tokens_taken=tpm_charge,
            on_settle=settle,
        )

    # ------------------------------------------------------------------ settling

    def settled(self, settlement: Settlement) -> None:
        """Queue a settlement for the background task (``run``)."""
        self._held.pop(settlement.reservation, None)
        self._pending.append(settlement)
        if len(self._pending) > MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
            log.warning("too many settlements wait for Redis: dropped the oldest")
        self._wake.set()

    async def run(self) -> None:
        """Write settlements as they come and renew this node's reservations, until cancelled;
        then write what is left, once, if Redis answers."""
        renew_every = self.reservation_ttl / 3
        loop = asyncio.get_running_loop()
        next_renewal = loop.time() + renew_every
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.0, next_renewal - loop.time())):
                        await self._wake.wait()
                self._wake.clear()
                try:
                    if not await self.flush():
                        await asyncio.sleep(RETRY_AFTER)  # Redis is down: try again in a moment
                    if loop.time() >= next_renewal:
                        await self.renew()
                        next_renewal = loop.time() + renew_every
                except Exception:
                    # Redis's failures are handled above; a bug must not end settling and
                    # renewing for good (reservations would expire under requests in flight).
                    log.exception("settling or renewing reservations failed")
                    await asyncio.sleep(RETRY_AFTER)
        finally:
            with contextlib.suppress(*REDIS_ERRORS, asyncio.CancelledError):
                async with asyncio.timeout(2.0):
                    await self.flush()

    async def flush(self) -> bool:
        """Write the queued settlements in one pipeline; ``False`` when Redis cannot answer
        (they stay queued). A settlement Redis refuses for itself (its script failed on it) is
        dropped, logged and counted, so that it cannot hold back the ones after it."""
        batch, self._pending = self._pending, deque()
        if not batch:
            return True
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for s in batch:
                    done = s.keys.settled(s.reservation)
                    names = [s.keys.tpm, s.keys.account, s.keys.held, s.keys.amounts, done]
                    args: list[str | int] = [
                        repr(s.at),
                        s.tpm_cap,
                        repr(s.tokens_taken),
                        s.used,
                        s.reservation,
                    ]
                    await self._settle(keys=names, args=args, client=pipe)
                results = await pipe.execute(raise_on_error=False)
        except REDIS_ERRORS as exc:
            self._requeue(batch, exc)
            return False
        waiting: deque[Settlement] = deque()
        outage: BaseException | None = None
        for settlement, result in zip(batch, results, strict=True):
            if not isinstance(result, BaseException):
                continue
            if is_outage_reply(result):
                waiting.append(settlement)
                outage = result
            else:
                self.dropped += 1
                log.error(
                    "Redis refused a settlement of key %s (%s): dropped",
                    settlement.keys.tag,
                    result,
                )
        if outage is not None:
            self._requeue(waiting, outage)
            return False
        return True

    def _requeue(self, batch: deque[Settlement], exc: BaseException) -> None:
        # Back in front of what came meanwhile; written when Redis answers again (a budget's
        # settlement that a cut pipeline did apply is not applied twice: SETTLE).
        batch.extend(self._pending)
        self._pending = batch
        while len(self._pending) > MAX_PENDING:
            self._pending.popleft()
            self.dropped += 1
        log.warning("Redis cannot answer (%s): %d settlements wait", exc, len(batch))

    async def renew(self) -> None:
        """Push back the expiry of this node's reservations in flight."""
        by_set: dict[str, list[str]] = {}
        for reservation, keys in self._held.items():
            by_set.setdefault(keys.held, []).append(reservation)
        if not by_set:
            return
        expiry = repr(self.clock() + self.reservation_ttl)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for held, ids in by_set.items():
                    await self._renew(keys=[held], args=[expiry, *ids], client=pipe)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            log.warning("Redis cannot answer (%s): reservations not renewed", exc)


@dataclass(slots=True)
class _Settler:
    """``Admission.on_settle`` for a shared admission."""

    limits: SharedLimits
    keys: Keys
    tpm_cap: int
    tokens_taken: float
    reservation: str

    def __call__(self, used: int) -> None:
        settlement = Settlement(
            self.keys,
            self.limits.clock(),
            self.tpm_cap,
            self.tokens_taken,
            used,
            self.reservation,
        )
        self.limits.settled(settlement)


def _headers(rpm: int, tpm: int, rpm_level: bytes | str, tpm_level: bytes | str) -> dict[str, str]:
    headers = rate_headers("requests", rpm, float(rpm_level)) if rpm else {}
    if tpm:
        headers.update(rate_headers("tokens", tpm, float(tpm_level)))
    return headers
