"""Usage, the audit trail and tenant admin keys, end to end."""

from __future__ import annotations

import asyncio
import datetime
import logging
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.stack import Stack, running_stack, user

pytestmark = pytest.mark.e2e


async def test_usage_counts_requests_and_tokens_per_key_and_day(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    other = await stack.key("acme", "other")
    billed = 0
    for _ in range(3):
        reply = await stack.openai(key).chat.completions.create(
            model="llama3.2:3b", messages=[user("count me tokens=7")]
        )
        assert reply.usage is not None
        billed += reply.usage.total_tokens
    await stack.openai(other).chat.completions.create(
        model="llama3.2:3b", messages=[user("and me tokens=2")]
    )
    async with stack.admin() as admin:
        usage = (await admin.get("/tenants/acme/usage")).json()["usage"]
        only = (await admin.get("/tenants/acme/usage", params={"key": "other"})).json()["usage"]
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    rows = {row["key"]: row for row in usage}
    assert set(rows) == {"test", "other"}
    assert rows["test"]["day"] == today
    assert rows["test"]["requests"] == 3
    assert rows["test"]["completion_tokens"] == 3 * 7
    assert rows["test"]["prompt_tokens"] + rows["test"]["completion_tokens"] == billed
    assert [row["key"] for row in only] == ["other"]


async def test_the_audit_trail_has_every_request_and_admin_action(
    acme: tuple[Stack, str],
) -> None:
    stack, key = acme
    client = stack.openai(key)
    stream = await client.chat.completions.create(
        model="llama3.2:3b", messages=[user("audited tokens=5")], stream=True
    )
    async for _ in stream:
        pass
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="no-such-model", messages=[user("x")])
    async with stack.admin() as admin:
        (await admin.post("/tenants/acme/keys/test/rotate", json={"grace_seconds": 0})).json()
        (await admin.delete("/tenants/acme/keys/test")).raise_for_status()
        events = (await admin.get("/tenants/acme/audit")).json()["events"]

    requests = [e for e in events if e["kind"] == "request"]
    assert [e["status"] for e in requests] == [404, 200]  # newest first
    failed, served = requests
    assert served["actor"] == "test"
    assert served["action"] == "POST /v1/chat/completions"
    assert served["model"] == "llama3.2:3b"
    assert served["machine"] == "gpu-1"
    assert served["error_code"] is None
    assert served["completion_tokens"] == 5
    assert served["prompt_tokens"] > 0
    assert 0 < served["ttft_ms"] <= served["duration_ms"]
    assert served["client"] == "127.0.0.1"
    assert served["user_agent"].startswith("AsyncOpenAI/Python")
    assert failed["error_code"] == "model_not_found"
    assert failed["machine"] is None

    actions = [(e["action"], e["subject"], e["actor"]) for e in events if e["kind"] == "admin"]
    assert ("key.revoked", "test", "operator") in actions
    assert ("key.rotated", "test", "operator") in actions
    assert ("key.created", "test", "operator") in actions
    assert ("machine.paired", "gpu-1", "agent") in actions
    assert ("machine.pairing_code_created", "gpu-1", "operator") in actions
    assert ("tenant.created", "acme", "operator") in actions


async def test_a_cancelled_stream_is_audited_as_client_closed(stack: Stack) -> None:
    await stack.tenant("acme")
    key = await stack.key("acme", "budgeted", budget_tokens=100_000)
    await stack.agent("acme")
    assert stack.sim is not None
    body = {
        "model": "llama3.2:3b",
        "stream": True,
        "messages": [{"role": "user", "content": "long tokens=100000"}],
    }
    async with (
        stack.http() as http,
        http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as response,
    ):
        async for _ in response.aiter_bytes():
            break  # the first chunk, then hang up
    async with stack.admin() as admin, asyncio.timeout(5):
        while True:
            events = (await admin.get("/tenants/acme/audit")).json()["events"]
            requests = [e for e in events if e["kind"] == "request"]
            if requests:
                break
            await asyncio.sleep(0.05)
        usage = (await admin.get("/tenants/acme/usage")).json()["usage"]
    (event,) = requests
    assert (event["status"], event["error_code"]) == (499, "client_closed")
    assert event["completion_tokens"] is None  # unknown: the stream never ended
    # The budget and usage are charged an upper bound of what was produced before the hang-up.
    (row,) = usage
    assert row["completion_tokens"] > 0


async def test_the_database_never_holds_prompts_or_completions(tmp_path: Path) -> None:
    marker = "zebra-quartz-7781"
    async with running_stack(tmp_path) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        reply = await stack.openai(key).chat.completions.create(
            model="qwen3:8b",
            messages=[
                {"role": "system", "content": f"system {marker}"},
                user(f"tell me about {marker} tokens=40"),
            ],
        )
        completion = reply.choices[0].message.content or ""
        thinking = getattr(reply.choices[0].message, "reasoning_content", "")
        assert len(completion) > 40
    data = b"".join(p.read_bytes() for p in (tmp_path / "edge").glob("edge.db*"))
    assert b"POST /v1/chat/completions" in data  # the audit event is there
    assert marker.encode() not in data
    assert completion.encode() not in data
    assert completion[:24].encode() not in data
    if thinking:
        assert thinking[:24].encode() not in data


async def test_audit_and_usage_are_flushed_on_graceful_shutdown(tmp_path: Path) -> None:
    async with running_stack(tmp_path, audit_flush_interval=3600) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        for _ in range(4):
            await stack.openai(key).chat.completions.create(
                model="llama3.2:3b", messages=[user("hi tokens=2")]
            )
        await stack.restart_edge()
        # Read the store directly (the admin API would flush first): what is there now was
        # written by the stopped edge's last flush.
        store = stack.edge.context.store
        tenant = await store.tenants.by_slug("acme")
        assert tenant is not None
        events = await store.usage.audit_events(tenant.id, 0, None, 100)
    assert sum(1 for e in events if e["kind"] == "request") == 4


async def test_a_tenant_admin_manages_only_its_own_tenant(stack: Stack) -> None:
    await stack.tenant("acme")
    await stack.tenant("globex")
    await stack.agent("globex", "globex-gpu")
    async with stack.admin() as operator:
        response = await operator.post("/tenants/acme/admin-keys", json={"name": "alice"})
    assert response.status_code == 201
    secret = response.json()["secret"]
    tenant_admin = httpx.AsyncClient(
        base_url=stack.edge_url + "/admin/v1",
        headers={"Authorization": f"Bearer {secret}"},
        verify=stack.tls(),
    )
    async with tenant_admin:
        own = [
            await tenant_admin.post("/tenants/acme/keys", json={"name": "k1"}),
            await tenant_admin.get("/tenants/acme/keys"),
            await tenant_admin.get("/tenants/acme/machines"),
            await tenant_admin.post("/tenants/acme/machines/pair", json={"name": "gpu-9"}),
            await tenant_admin.get("/tenants/acme/usage"),
            await tenant_admin.get("/tenants/acme/audit"),
            await tenant_admin.post("/tenants/acme/keys/k1/rotate", json={}),
            await tenant_admin.delete("/tenants/acme/keys/k1"),
        ]
        assert [r.status_code for r in own] == [201, 200, 200, 201, 200, 200, 200, 200]
        foreign = [
            await tenant_admin.post("/tenants/globex/keys", json={"name": "k1"}),
            await tenant_admin.get("/tenants/globex/keys"),
            await tenant_admin.get("/tenants/globex/machines"),
            await tenant_admin.delete("/tenants/globex/machines/globex-gpu"),
            await tenant_admin.get("/tenants/globex/usage"),
            await tenant_admin.get("/tenants/globex/audit"),
            await tenant_admin.get("/tenants/no-such-tenant/keys"),  # 403 too: no probing
            await tenant_admin.post("/tenants", json={"slug": "mine"}),
            await tenant_admin.post("/tenants/acme/admin-keys", json={"name": "bob"}),
        ]
        assert [r.status_code for r in foreign] == [403] * len(foreign)
        assert all("globex-gpu" not in r.text for r in foreign)
        tenants = (await tenant_admin.get("/tenants")).json()["tenants"]
        assert [t["slug"] for t in tenants] == ["acme"]
        events = (await tenant_admin.get("/tenants/acme/audit")).json()["events"]
        assert ("key.created", "admin:alice") in {(e["action"], e["actor"]) for e in events}
    await stack.wait_online("globex", "globex-gpu")  # untouched
    async with stack.admin() as operator:
        (await operator.delete("/tenants/acme/admin-keys/alice")).raise_for_status()
    async with httpx.AsyncClient(
        base_url=stack.edge_url + "/admin/v1",
        headers={"Authorization": f"Bearer {secret}"},
        verify=stack.tls(),
    ) as revoked:
        assert (await revoked.get("/tenants/acme/keys")).status_code == 401


async def test_each_api_request_logs_one_access_line_without_content_or_secret(
    acme: tuple[Stack, str], caplog: pytest.LogCaptureFixture
) -> None:
    stack, key = acme
    caplog.set_level(logging.INFO, logger="edge.access")
    await stack.openai(key).chat.completions.create(
        model="llama3.2:3b", messages=[user("secret plans tokens=3")]
    )
    (line,) = [r.getMessage() for r in caplog.records if r.name == "edge.access"]
    assert line.startswith("POST /v1/chat/completions 200 llama3.2:3b key=test machine=gpu-1 ")
    assert line.endswith("ms")
    assert "secret plans" not in line and key not in line
