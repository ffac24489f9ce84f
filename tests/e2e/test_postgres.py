"""An edge whose state is in PostgreSQL (EdgeConfig.database_url), end to end: a key's whole life
through the admin API and the OpenAI SDK, and what the edge wrote read back after a restart."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import openai
import pytest

from tests.e2e.stack import Stack, running_stack, user

pytestmark = pytest.mark.e2e


async def _ask(stack: Stack, key: str) -> str:
    reply = await stack.openai(key).chat.completions.create(
        model="llama3.2:3b", messages=[user("hi tokens=3")]
    )
    return reply.choices[0].message.content or ""


async def _refused(stack: Stack, key: str) -> str:
    with pytest.raises(openai.AuthenticationError) as caught:
        await _ask(stack, key)
    assert isinstance(caught.value.body, dict)
    code: str = caught.value.body["code"]
    return code


async def test_a_keys_whole_life_on_an_edge_backed_by_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    async with running_stack(tmp_path, database_url=postgres_url) as stack:
        await stack.tenant("acme")
        await stack.agent("acme")
        old = await stack.key("acme", "ci", rpm=600, models=["llama3.2:3b"])
        assert await _ask(stack, old)

        async with stack.admin() as admin:
            rotated = await admin.post("/tenants/acme/keys/ci/rotate", json={"grace_seconds": 3600})
        rotated.raise_for_status()
        new = rotated.json()["secret"]
        assert await _ask(stack, old) and await _ask(stack, new)  # both, within the grace
        stack.clock.advance(3601)
        assert await _refused(stack, old) == "invalid_api_key"
        assert await _ask(stack, new)

        await stack.restart_edge()  # the state is the database's, not the process's
        await stack.wait_online("acme", "gpu-1")  # the agent reconnects: its machine is known
        assert await _ask(stack, new)
        async with stack.admin() as admin:
            listed = (await admin.get("/tenants/acme/keys")).json()["keys"]
            assert [(k["name"], k["rpm"], k["models"]) for k in listed] == [
                ("ci", 600, ["llama3.2:3b"])
            ]
            (await admin.delete("/tenants/acme/keys/ci")).raise_for_status()
        assert await _refused(stack, new) == "invalid_api_key"

        async with stack.admin() as admin:
            usage = (await admin.get("/tenants/acme/usage")).json()["usage"]
            events = (await admin.get("/tenants/acme/audit", params={"limit": 100})).json()
        served = 5  # the requests a machine answered
        assert [(row["key"], row["requests"]) for row in usage] == [("ci", served)]
        assert usage[0]["completion_tokens"] == 3 * served
        requests = [e for e in events["events"] if e["kind"] == "request"]
        assert [e["status"] for e in requests].count(200) == served
        assert all(e["actor"] == "ci" and e["machine"] == "gpu-1" for e in requests)
        actions = {e["action"] for e in events["events"] if e["kind"] == "admin"}
        assert {"key.created", "key.rotated", "key.revoked"} <= actions

    assert not (tmp_path / "edge" / "edge.db").exists()
    conn = await asyncpg.connect(postgres_url)  # and it is all in PostgreSQL
    try:
        assert await conn.fetchval("SELECT count(*) FROM api_key_secrets") == 2
        assert await conn.fetchval("SELECT revoked_at IS NOT NULL FROM api_keys") is True
    finally:
        await conn.close()
