"""Per-key limits: requests and tokens per minute, and token budgets per period.

``Limits`` keeps every counter in this edge process and checks and charges it on the event loop,
so a check and the charge that follows it cannot interleave with another request's. That is what
makes budgets exact under concurrency: a request reserves its worst case before it is dispatched
and settles to its real usage when it ends, so concurrent requests can never spend more than the
budget (README "Keys, limits and audit"). It is the one node's limiter (no ``--redis``); with
several nodes ``edge.cluster.counters.SharedLimits`` keeps the same counters in Redis, checked
and charged by one Lua script each, and falls back to a ``Limits`` for what may fail open
(docs/ARCHITECTURE.md "Several edge nodes"). Both are a ``Limiter``; what they share (the
estimate, the reservation, the headers and the 429s) is here.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from edge.errors import ApiError
from edge.store import ApiKey, Store
from protocol.requests import EmbedRequest, Request, to_wire

PERIODS = ("day", "week", "month")
# A request that sets no max_tokens reserves this many completion tokens, and a key with a
# budget gets it as the request's num_predict: the reservation must bound what the model emits.
DEFAULT_COMPLETION_RESERVE = 4096
# Chat templates wrap each message in a few special tokens (role markers, separators).
TOKENS_PER_MESSAGE = 8
# Vision models spend a few hundred tokens per image; this bounds the common ones.
TOKENS_PER_IMAGE = 1024


def estimate_prompt_tokens(request: Request) -> int:
    """An upper bound on the prompt's tokens: one per UTF-8 byte of its text, since no tokenizer
    makes a token shorter than a byte, plus the template's per-message tokens and a fixed cost
    per image. Settling replaces it with the real count, so only the reservation is generous.
    Measured on the request as the tunnel carries it (docs/PROTOCOL.md §7)."""
    wire = to_wire(request)
    total = TOKENS_PER_MESSAGE
    for message in wire.get("messages") or ():
        total += TOKENS_PER_MESSAGE + TOKENS_PER_IMAGE * len(message.get("images") or ())
        total += _text_bytes({k: v for k, v in message.items() if k != "images"})
    for name in ("prompt", "system", "suffix", "tools", "input"):
        total += _text_bytes(wire.get(name))
    return total


def _text_bytes(value: object) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, dict):
        return sum(_text_bytes(k) + _text_bytes(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return sum(_text_bytes(item) for item in value)
    return 0 if value is None else 8  # numbers and booleans: a few tokens at most


def completion_reserve(request: Request) -> int:
    """The most tokens the reply may hold: its ``num_predict``, else the default reserve."""
    if isinstance(request, EmbedRequest):
        return 0
    limit = request.options.num_predict
    return limit if limit is not None and limit > 0 else DEFAULT_COMPLETION_RESERVE


class TokenBucket:
    """``capacity`` per minute, refilled continuously; the level may go below zero when a request
    turns out to have used more than it was charged (the debt delays the next ones)."""

    __slots__ = ("capacity", "level", "rate", "updated")

    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = capacity
        self.rate = capacity / 60.0
        self.level = float(capacity)
        self.updated = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def wait(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0: now). Call ``refill`` first."""
        return max(0.0, (amount - self.level) / self.rate)

    def take(self, amount: float) -> None:
        self.level -= amount

    def give_back(self, amount: float) -> None:
        self.level = min(self.capacity, self.level + amount)

    def headers(self, kind: str) -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*-requests`` or ``-tokens`` trio."""
        return rate_headers(kind, self.capacity, self.level)


def rate_headers(kind: str, capacity: int, level: float) -> dict[str, str]:
    """OpenAI's ``x-ratelimit-*`` trio for a bucket of ``capacity`` a minute at ``level``."""
    return {
        f"x-ratelimit-limit-{kind}": str(capacity),
        f"x-ratelimit-remaining-{kind}": str(max(0, math.floor(level))),
        f"x-ratelimit-reset-{kind}": format_duration((capacity - level) * 60.0 / capacity),
    }


def format_duration(seconds: float) -> str:
    """A duration the way OpenAI's rate-limit headers write it: ``250ms``, ``12s``, ``6m0s``."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def period_bounds(period: str, now: float) -> tuple[str, float]:
    """The UTC day the current ``period`` started (``YYYY-MM-DD``) and when the next starts."""
    today = datetime.datetime.fromtimestamp(now, datetime.UTC).date()
    if period == "day":
        start, end = today, today + datetime.timedelta(days=1)
    elif period == "week":  # ISO weeks, from Monday
        start = today - datetime.timedelta(days=today.weekday())
        end = start + datetime.timedelta(days=7)
    else:
        start = today.replace(day=1)
        end = (start + datetime.timedelta(days=32)).replace(day=1)
    midnight = datetime.time(tzinfo=datetime.UTC)
    return start.isoformat(), datetime.datetime.combine(end, midnight).timestamp()


@dataclass(slots=True)
class BudgetAccount:
    """One key's budget in one period: tokens spent (settled) and reserved (in flight)."""

    period_start: str
    resets_at: float
    spent: int
    reserved: int = 0


@dataclass(slots=True)
class Admission:
    """What a request was allowed and charged; ``settle`` once with what it really used."""

    headers: dict[str, str]
    prompt_estimate: int
    # Set when the request must be capped for the reservation to bound it (a key with a budget,
    # a request without max_tokens): the caller sends it with this num_predict.
    completion_cap: int | None = None
    charged: int = 0  # tokens reserved against the budget (prompt estimate + completion cap)
    budget: BudgetAccount | None = None
    tokens: TokenBucket | None = None
    tokens_taken: float = 0.0
    # Where the settlement goes when the counters are not this process's (Redis: queued and
    # written off the request path, edge.cluster.counters).
    on_settle: Callable[[int], None] | None = None
    settled: bool = field(default=False)

    def settle(self, used: int) -> None:
        if self.settled:
            return
        self.settled = True
        if self.budget is not None:
            self.budget.reserved -= self.charged
            self.budget.spent += used
        if self.tokens is not None:
            self.tokens.give_back(self.tokens_taken - used)
        if self.on_settle is not None:
            self.on_settle(used)


class Limiter(Protocol):
    """What the pipeline admits requests through: ``Limits`` (one node) or ``SharedLimits``."""

    async def admit(
        self, key: ApiKey, request: Request, now: float, prompt_estimate: int | None = None
    ) -> Admission: ...


@dataclass(frozen=True, slots=True)
class Charge:
    """What a request of a key would be charged: its prompt estimate, the tokens it reserves
    (prompt estimate + completion reserve) and the completion cap it must be sent with."""

    prompt_estimate: int
    amount: int
    completion_cap: int | None


def charge_for(key: ApiKey, request: Request, prompt_estimate: int | None = None) -> Charge:
    """The charge of ``request``. A key with a budget caps a request that sets no
    ``num_predict`` (the cap), so that the reservation bounds the reply."""
    cap = None
    if (
        key.limits.budget_tokens is not None
        and not isinstance(request, EmbedRequest)
        and request.options.num_predict is None
    ):
        cap = DEFAULT_COMPLETION_RESERVE
    if prompt_estimate is None:
        prompt_estimate = estimate_prompt_tokens(request)
    return Charge(prompt_estimate, prompt_estimate + completion_reserve(request), cap)


class Limits:
    """The rate-limit buckets and budget accounts of every key, checked before dispatch."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._requests: dict[str, TokenBucket] = {}
        self._tokens: dict[str, TokenBucket] = {}
        self._budgets: dict[str, BudgetAccount] = {}

    async def admit(
        self, key: ApiKey, request: Request, now: float, prompt_estimate: int | None = None
    ) -> Admission:
        """Check every limit of ``key`` for this request and, only if all pass, charge them.

        A key with a budget caps a request that sets no ``num_predict`` (``completion_cap``),
        so that the reservation bounds the reply. ``prompt_estimate`` is
        ``estimate_prompt_tokens(request)`` when the caller made it already. Raises
        ``ApiError`` 429 (``rate_limit_exceeded`` with ``Retry-After``, or ``budget_exceeded``
        with when the budget resets)."""
        limits = key.limits
        charge = charge_for(key, request, prompt_estimate)
        amount = charge.amount

        requests = self._bucket(self._requests, key.id, limits.rpm, now)
        tokens = self._bucket(self._tokens, key.id, limits.tpm, now)
        tokens_amount = min(amount, tokens.capacity) if tokens else 0
        if requests is not None and (wait := requests.wait(1)) > 0:
            raise rate_limited("requests", requests.capacity, wait, _headers(requests, tokens))
        if tokens is not None and (wait := tokens.wait(tokens_amount)) > 0:
            raise rate_limited("tokens", tokens.capacity, wait, _headers(requests, tokens))
        budget = await self._account(key, now)
        if budget is not None:
            assert limits.budget_tokens is not None
            left = limits.budget_tokens - budget.spent - budget.reserved
            if amount > left:
                headers = _headers(requests, tokens)
                raise budget_exceeded(key, budget.resets_at, amount, max(0, left), now, headers)

        if requests is not None:
            requests.take(1)
        if tokens is not None:
            tokens.take(tokens_amount)
        if budget is not None:
            budget.reserved += amount
        headers = _headers(requests, tokens)
        return Admission(
            headers,
            charge.prompt_estimate,
            charge.completion_cap,
            amount,
            budget,
            tokens,
            tokens_amount,
        )

    @staticmethod
    def _bucket(
        buckets: dict[str, TokenBucket], key_id: str, capacity: int | None, now: float
    ) -> TokenBucket | None:
        if capacity is None:
            return None
        bucket = buckets.get(key_id)
        if bucket is None or bucket.capacity != capacity:
            bucket = buckets[key_id] = TokenBucket(capacity, now)
        bucket.refill(now)
        return bucket

    async def _account(self, key: ApiKey, now: float) -> BudgetAccount | None:
        period = key.limits.budget_period
        if key.limits.budget_tokens is None or period is None:
            return None
        account = self._budgets.get(key.id)
        if account is None or now >= account.resets_at:
            # The store holds what earlier runs of the edge spent; this process adds to it in
            # memory from here on (every request of the period passes through this account).
            start, resets_at = period_bounds(period, now)
            spent = await self._store.usage.tokens_used(key.id, start)
            account = self._budgets[key.id] = BudgetAccount(start, resets_at, spent)
        return account


def _headers(requests: TokenBucket | None, tokens: TokenBucket | None) -> dict[str, str]:
    """The rate-limit headers of the limits the key has, as they stand."""
    headers = requests.headers("requests") if requests is not None else {}
    if tokens is not None:
        headers.update(tokens.headers("tokens"))
    return headers


def rate_limited(kind: str, capacity: int, wait: float, headers: dict[str, str]) -> ApiError:
    """429 ``rate_limit_exceeded`` for the ``requests`` or ``tokens`` bucket, ``wait`` seconds
    before it has room."""
    retry = max(1, math.ceil(wait))
    return ApiError(
        429,
        "rate_limit_exceeded",
        f"Rate limit reached for {kind}: {capacity} per minute for this key. "
        f"Try again in {wait:.1f} s.",
        headers={
            **headers,
            "Retry-After": str(retry),
            "retry-after-ms": str(math.ceil(wait * 1000)),  # the OpenAI SDKs read this first
        },
    )


def budget_exceeded(
    key: ApiKey,
    resets_at: float,
    amount: int,
    left: int,
    now: float,
    headers: dict[str, str],
) -> ApiError:
    """429 ``budget_exceeded``: ``left`` tokens of the period that ends at ``resets_at``."""
    resets = datetime.datetime.fromtimestamp(resets_at, datetime.UTC)
    return ApiError(
        429,
        "budget_exceeded",
        f"This key's token budget ({key.limits.budget_tokens:,} per {key.limits.budget_period}) "
        f"has {left:,} tokens left; this request may use up to {amount:,} (prompt estimate + "
        f"max_tokens). The budget resets at {resets:%Y-%m-%dT%H:%M:%SZ}.",
        headers={
            **headers,
            "Retry-After": str(max(1, math.ceil(resets_at - now))),
            # Retrying within seconds cannot help: tell the OpenAI and Anthropic SDKs not to.
            "x-should-retry": "false",
        },
    )
