from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest

from edge.errors import ApiError
from edge.limits import (
    DEFAULT_COMPLETION_RESERVE,
    TOKENS_PER_IMAGE,
    Limits,
    TokenBucket,
    estimate_prompt_tokens,
    format_duration,
    period_bounds,
)
from edge.store import ApiKey, KeyLimits, SqliteStore
from protocol.requests import ChatRequest, Message, Options, Tool

NOW = datetime.datetime(2026, 11, 23, 15, 30, tzinfo=datetime.UTC).timestamp()


def _key(**limits: object) -> ApiKey:
    return ApiKey("k1", "t1", "ci", "sk-lt-x", 0.0, None, None, None, KeyLimits(**limits))  # type: ignore[arg-type]


def _chat(text: str = "hello", max_tokens: int | None = None) -> ChatRequest:
    return ChatRequest("m", (Message("user", text),), options=Options(num_predict=max_tokens))


@pytest.fixture
async def store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "edge.db")
    await store.tenants.create("t1", "acme")
    await store.keys.add("k1", "t1", "ci", "sk-lt-x", "h1", None)
    return store


def test_the_prompt_estimate_bounds_tokens_by_bytes() -> None:
    short, long = estimate_prompt_tokens(_chat("hi")), estimate_prompt_tokens(_chat("hi" * 1000))
    assert long - short == 1998
    accented = estimate_prompt_tokens(_chat("é" * 10)) - estimate_prompt_tokens(_chat(""))
    assert accented == 20  # UTF-8 bytes, not characters
    with_image = ChatRequest("m", (Message("user", "hi", ("A" * 100_000,)),))
    assert estimate_prompt_tokens(with_image) == short + TOKENS_PER_IMAGE  # not the base64 size
    with_tools = dataclasses.replace(_chat("hi"), tools=(Tool("weather"),))
    assert estimate_prompt_tokens(with_tools) > short


def test_a_bucket_refills_continuously_and_reports_openai_headers() -> None:
    bucket = TokenBucket(60, now=0.0)
    bucket.take(60)
    bucket.refill(0.5)
    assert bucket.wait(1) == pytest.approx(0.5)
    bucket.refill(1.0)
    assert bucket.wait(1) == 0
    headers = bucket.headers("requests")
    assert headers == {
        "x-ratelimit-limit-requests": "60",
        "x-ratelimit-remaining-requests": "1",
        "x-ratelimit-reset-requests": "59s",
    }
    bucket.refill(1000.0)
    assert bucket.level == 60  # never above capacity


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0171, "18ms"), (0.999, "999ms"), (1, "1s"), (59.2, "1m0s"), (360, "6m0s")],
)
def test_durations_are_written_as_openai_writes_them(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_periods_start_and_reset_at_utc_boundaries() -> None:
    def at(day: str) -> float:
        return datetime.datetime.fromisoformat(day + "T00:00:00+00:00").timestamp()

    assert period_bounds("day", NOW) == ("2026-11-23", at("2026-11-24"))
    assert period_bounds("week", NOW) == ("2026-11-23", at("2026-11-30"))  # a Monday
    assert period_bounds("month", NOW) == ("2026-11-01", at("2026-12-01"))
    december = datetime.datetime(2026, 12, 31, 23, 59, tzinfo=datetime.UTC).timestamp()
    assert period_bounds("month", december) == ("2026-12-01", at("2027-01-01"))


async def test_no_limits_admit_everything_with_no_headers(store: SqliteStore) -> None:
    admission = await Limits(store).admit(_key(), _chat(), NOW)
    assert admission.headers == {}
    admission.settle(10)


async def test_requests_per_minute_refuse_with_retry_after(store: SqliteStore) -> None:
    limits, key = Limits(store), _key(rpm=2)
    await limits.admit(key, _chat(), NOW)
    second = await limits.admit(key, _chat(), NOW)
    assert second.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(ApiError) as caught:
        await limits.admit(key, _chat(), NOW)
    assert (caught.value.status, caught.value.code) == (429, "rate_limit_exceeded")
    assert caught.value.headers["Retry-After"] == "30"
    assert caught.value.headers["retry-after-ms"] == "30000"
    await limits.admit(key, _chat(), NOW + 30)  # one request's worth refilled


async def test_a_refused_request_charges_nothing(store: SqliteStore) -> None:
    limits, key = Limits(store), _key(rpm=10, tpm=100)
    first = await limits.admit(key, _chat(max_tokens=60), NOW)
    assert first.headers["x-ratelimit-remaining-requests"] == "9"
    with pytest.raises(ApiError) as caught:
        await limits.admit(key, _chat(max_tokens=60), NOW)  # the tokens do not fit: refused whole
    assert "tokens" in caught.value.message
    first.settle(0)
    third = await limits.admit(key, _chat(max_tokens=10), NOW)
    assert third.headers["x-ratelimit-remaining-requests"] == "8"  # the refused one took none


async def test_tokens_per_minute_charge_the_reservation_then_settle_to_real_use(
    store: SqliteStore,
) -> None:
    limits, key = Limits(store), _key(tpm=1000)
    first = await limits.admit(key, _chat("hi", max_tokens=400), NOW)
    charged = first.tokens_taken
    assert 400 < charged < 450
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == 1000 - charged
    first.settle(50)  # it used far less than reserved: the rest comes back
    second = await limits.admit(key, _chat("hi", max_tokens=400), NOW)
    assert int(second.headers["x-ratelimit-remaining-tokens"]) == pytest.approx(
        1000 - 50 - charged, abs=1
    )


async def test_a_request_bigger_than_the_tpm_waits_for_a_full_bucket(store: SqliteStore) -> None:
    limits, key = Limits(store), _key(tpm=100)
    admission = await limits.admit(key, _chat(max_tokens=5000), NOW)  # capped at the bucket's size
    assert admission.headers["x-ratelimit-remaining-tokens"] == "0"
    admission.settle(5000)  # it did use more: the debt delays the next request
    with pytest.raises(ApiError) as caught:
        await limits.admit(key, _chat(max_tokens=10), NOW + 60)
    assert caught.value.code == "rate_limit_exceeded"


async def test_budgets_reserve_and_settle(store: SqliteStore) -> None:
    limits, key = Limits(store), _key(budget_tokens=1000, budget_period="day")
    reservation = estimate_prompt_tokens(_chat()) + 300
    held = [await limits.admit(key, _chat(max_tokens=300), NOW) for _ in range(1000 // reservation)]
    assert all(a.charged == reservation for a in held)
    with pytest.raises(ApiError) as caught:
        await limits.admit(key, _chat(max_tokens=300), NOW)
    error = caught.value
    assert (error.status, error.code) == (429, "budget_exceeded")
    assert "2026-11-24T00:00:00Z" in error.message
    assert error.headers["x-should-retry"] == "false"
    assert int(error.headers["Retry-After"]) == 8 * 3600 + 30 * 60
    for admission in held:
        admission.settle(10)
        admission.settle(10)  # settling twice changes nothing
    assert (await limits.admit(key, _chat(max_tokens=300), NOW)).charged == reservation


async def test_a_budgeted_key_gets_a_completion_cap(store: SqliteStore) -> None:
    budgeted = _key(budget_tokens=10**6, budget_period="day")
    admission = await Limits(store).admit(budgeted, _chat(), NOW)
    assert admission.completion_cap == DEFAULT_COMPLETION_RESERVE
    assert (await Limits(store).admit(budgeted, _chat(max_tokens=50), NOW)).completion_cap is None
    unlimited = await Limits(store).admit(_key(), _chat(), NOW)
    assert unlimited.completion_cap is None  # without a budget, the model may run to its end


async def test_a_budget_starts_from_what_the_store_recorded_and_resets_next_period(
    store: SqliteStore,
) -> None:
    await store.usage.record(
        [], [("k1", "2026-11-23", "t1", 3, 400, 500), ("k1", "2026-11-22", "t1", 1, 0, 900)]
    )
    limits, key = Limits(store), _key(budget_tokens=1000, budget_period="day")
    with pytest.raises(ApiError):
        await limits.admit(key, _chat(max_tokens=100), NOW)  # 900 spent today: 100 + prompt > 100
    tomorrow = NOW + 86400
    assert (await limits.admit(key, _chat(max_tokens=100), tomorrow)).budget is not None
