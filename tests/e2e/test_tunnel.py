"""Pairing, agent login and the tunnel's faults, end to end over real sockets."""

from __future__ import annotations

import asyncio
import base64

import openai
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from agent.config import new_key
from agent.ollama import OllamaBackend
from agent.pairing import PairingFailed, pair
from agent.runner import AgentStopped, EdgeRefused, RunOptions, connect_once
from tests.e2e.stack import Stack

pytestmark = pytest.mark.e2e


async def test_a_pairing_code_works_once(stack: Stack) -> None:
    await stack.tenant("acme")
    code = await stack.pairing_code("acme", "gpu-1")
    config = await pair(code, stack.edge_url, stack.ca)
    assert config.tenant == "acme" and config.machine_name == "gpu-1"
    with pytest.raises(PairingFailed, match="wrong, expired or already used"):
        await pair(code, stack.edge_url, stack.ca)


async def test_an_expired_pairing_code_is_refused(stack: Stack) -> None:
    await stack.tenant("acme")
    code = await stack.pairing_code("acme", "gpu-1", ttl_seconds=0.05)
    await asyncio.sleep(0.1)
    with pytest.raises(PairingFailed, match="401"):
        await pair(code, stack.edge_url, stack.ca)


async def test_pairing_attempts_are_rate_limited(stack: Stack) -> None:
    await stack.tenant("acme")
    statuses = []
    async with stack.http() as http:
        for _ in range(12):
            response = await http.post(
                "/agent/pair", json={"code": "AAAA-BBBB-CCCC-DDDD", "public_key": new_key()[1]}
            )
            statuses.append(response.status_code)
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    assert int(response.headers["Retry-After"]) > 0


async def test_an_agent_with_the_wrong_key_is_refused(stack: Stack) -> None:
    await stack.tenant("acme")
    config = await pair(await stack.pairing_code("acme", "gpu-1"), stack.edge_url, stack.ca)
    impostor_key = new_key()[0]
    seed = impostor_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    impostor = config.model_copy(update={"private_key": base64.b64encode(seed).decode()})
    with pytest.raises(EdgeRefused) as caught:
        await connect_once(impostor, OllamaBackend(stack.ollama_url), RunOptions())
    assert caught.value.code == "auth_failed" and caught.value.fatal


async def test_revoking_a_machine_closes_its_tunnel_at_once(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    agent = stack.agents[0]
    async with stack.admin() as admin:
        response = await admin.delete("/tenants/acme/machines/gpu-1")
    assert response.json() == {"revoked": "gpu-1", "was_online": True, "revoked_keys": []}
    async with asyncio.timeout(5):
        with pytest.raises(AgentStopped, match="pair it again"):
            await agent.task
    with pytest.raises(openai.InternalServerError) as caught:
        await stack.openai(key).chat.completions.create(
            model="llama3.2:3b", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 503


async def test_losing_the_agent_mid_stream_ends_the_stream_with_an_error(
    acme: tuple[Stack, str],
) -> None:
    stack, key = acme
    client = stack.openai(key)
    stream = await client.chat.completions.create(
        model="llama3.2:3b",
        messages=[{"role": "user", "content": "a long one tokens=100000"}],
        stream=True,
    )
    seen = 0
    with pytest.raises(openai.APIError, match=r"disconnected|closed"):
        async with asyncio.timeout(10):
            async for _chunk in stream:
                seen += 1
                if seen == 5:
                    await stack.agents[0].stop()  # the tunnel drops under the running stream
    assert seen >= 5


async def test_an_agent_reconnects_after_the_edge_drops_it(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    registry = stack.edge.context.registry
    (tenant,) = registry.tenants()
    (first,) = registry.sessions(tenant)
    await first.transport.close(1000)
    async with asyncio.timeout(10):
        while [s for s in registry.sessions(tenant) if s is not first and s.models] == []:
            await asyncio.sleep(0.02)
    reply = await stack.openai(key).chat.completions.create(
        model="llama3.2:3b", messages=[{"role": "user", "content": "again tokens=3"}]
    )
    assert reply.usage is not None and reply.usage.completion_tokens == 3


async def test_a_new_ollama_model_is_advertised_without_reconnecting(stack: Stack) -> None:
    from llmtunnel import sim_ollama

    await stack.tenant("acme")
    key = await stack.key("acme")
    await stack.agent("acme", model_refresh=0.05)
    assert stack.sim is not None
    config = stack.sim.app[sim_ollama.CONFIG_KEY]
    config.models = (
        *config.models,
        sim_ollama.SimModel("mistral:7b", "llama", "7B", ("completion",)),
    )
    client = stack.openai(key)
    async with asyncio.timeout(10):
        while "mistral:7b" not in {m.id for m in (await client.models.list()).data}:
            await asyncio.sleep(0.02)
    reply = await client.chat.completions.create(
        model="mistral:7b", messages=[{"role": "user", "content": "new model tokens=2"}]
    )
    assert reply.choices[0].message.content == "new model"


async def test_agents_come_back_after_an_edge_restart(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    await stack.restart_edge()
    assert stack.edge.admin_key_path is None  # same data dir: same operator key, same tenants
    await stack.wait_online("acme", "gpu-1")
    reply = await stack.openai(key).chat.completions.create(
        model="llama3.2:3b", messages=[{"role": "user", "content": "back tokens=2"}]
    )
    assert reply.choices[0].message.content == "back the"
