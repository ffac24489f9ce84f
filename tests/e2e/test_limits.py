"""Rate limits and token budgets end to end with the OpenAI SDK."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.stack import Stack, running_stack, user

pytestmark = pytest.mark.e2e


async def _chat(client: openai.AsyncOpenAI, prompt: str, max_tokens: int) -> int:
    """Send one request; the tokens it was billed (prompt + completion)."""
    reply = await client.chat.completions.create(
        model="llama3.2:3b", messages=[user(prompt)], max_tokens=max_tokens
    )
    assert reply.usage is not None
    return reply.usage.total_tokens


async def test_concurrent_requests_never_overrun_a_budget(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    # Each request reserves its prompt's bytes (+ template tokens) and its max_tokens: about 60
    # tokens. A budget of 600 fits about ten such reservations at once.
    budget = 600
    key = await stack.key("acme", "capped", budget_tokens=budget, budget_period="day")
    client = stack.openai(key)
    results = await asyncio.gather(
        *(_chat(client, "hi tokens=20", 20) for _ in range(50)), return_exceptions=True
    )
    served = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(served) + len(refused) == 50, [r for r in results if isinstance(r, Exception)]
    assert 5 <= len(served) < 50
    assert sum(served) <= budget
    error = refused[0]
    assert isinstance(error.body, dict) and error.body["code"] == "budget_exceeded"
    assert "resets at" in error.body["message"]
    assert error.response.headers["x-should-retry"] == "false"
    assert int(error.response.headers["retry-after"]) > 0

    async with stack.admin() as admin:
        usage = (await admin.get("/tenants/acme/usage", params={"key": "capped"})).json()
    (row,) = usage["usage"]
    assert row["requests"] == 50
    assert row["prompt_tokens"] + row["completion_tokens"] == sum(served) <= budget


async def test_a_budget_survives_an_edge_restart(tmp_path: Path) -> None:
    # A flush interval longer than the test: what the restarted edge knows was written by the
    # graceful shutdown's last flush.
    async with running_stack(tmp_path, audit_flush_interval=3600) as stack:
        await stack.tenant("acme")
        await stack.agent("acme")
        # About 63 tokens reserved per request, 26 really used: a second one does not fit in 80.
        key = await stack.key("acme", "capped", budget_tokens=80, budget_period="month")
        assert await _chat(stack.openai(key), "hi tokens=20", 20) <= 80
        await stack.restart_edge()
        await stack.wait_online("acme", "gpu-1")
        with pytest.raises(openai.RateLimitError) as caught:
            await _chat(stack.openai(key), "hi tokens=20", 20)
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["code"] == "budget_exceeded"
        assert "has 54 tokens left" in caught.value.body["message"]


async def test_requests_per_minute_limit_then_recovery(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    key = await stack.key("acme", "limited", rpm=60)
    client = stack.openai(key)
    first = await client.chat.completions.with_raw_response.create(
        model="llama3.2:3b", messages=[user("hi tokens=2")]
    )
    assert first.headers["x-ratelimit-limit-requests"] == "60"
    assert first.headers["x-ratelimit-remaining-requests"] == "59"
    assert first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert "x-ratelimit-limit-tokens" not in first.headers  # no TPM limit on this key
    results = await asyncio.gather(
        *(_chat(client, "hi tokens=2", 2) for _ in range(75)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(refused) >= 1
    assert all(isinstance(r, int | openai.RateLimitError) for r in results)
    error = refused[0]
    assert isinstance(error.body, dict) and error.body["code"] == "rate_limit_exceeded"
    retry_after = int(error.response.headers["retry-after"])
    assert 1 <= retry_after <= 2
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    await asyncio.sleep(retry_after)
    assert await _chat(client, "hi tokens=2", 2) > 0  # recovered


async def test_tokens_per_minute_limit(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    key = await stack.key("acme", "tpm", tpm=300)
    client = stack.openai(key)
    await _chat(client, "hi tokens=200", 200)  # really uses about 206 of the 300
    with pytest.raises(openai.RateLimitError) as caught:
        await _chat(client, "hi tokens=200", 200)
    headers = caught.value.response.headers
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "rate_limit_exceeded"
    assert "tokens" in caught.value.body["message"]
    assert headers["x-ratelimit-limit-tokens"] == "300"
    assert int(headers["x-ratelimit-remaining-tokens"]) < 100
    assert int(headers["retry-after"]) >= 1


async def test_a_streamed_response_carries_the_rate_limit_headers(
    acme: tuple[Stack, str],
) -> None:
    stack, _ = acme
    key = await stack.key("acme", "limited", rpm=10, tpm=10_000)
    body = {
        "model": "llama3.2:3b",
        "stream": True,
        "messages": [{"role": "user", "content": "hi tokens=3"}],
    }
    async with (
        stack.http() as http,
        http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit-requests"] == "10"
        assert response.headers["x-ratelimit-remaining-requests"] == "9"
        assert response.headers["x-ratelimit-limit-tokens"] == "10000"
        assert int(response.headers["x-ratelimit-remaining-tokens"]) < 10_000
        text = await response.aread()
    assert text.endswith(b"data: [DONE]\n\n")


async def test_errors_after_admission_carry_the_headers_too(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    key = await stack.key("acme", "limited", rpm=10)
    async with stack.http() as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 404
    assert response.headers["x-ratelimit-limit-requests"] == "10"


async def test_unlimited_keys_get_no_rate_limit_headers(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    async with stack.http() as http:
        response = await http.post(
            "/v1/chat/completions",
            json={"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {key}"},
        )
    assert response.status_code == 200
    assert not any(h.startswith("x-ratelimit") for h in response.headers)
    assert isinstance(response, httpx.Response)
