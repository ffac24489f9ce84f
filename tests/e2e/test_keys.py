"""API keys end to end with the OpenAI SDK: scopes, expiry, revocation, rotation, binding."""

from __future__ import annotations

import openai
import pytest

from tests.e2e.stack import Stack, user

pytestmark = pytest.mark.e2e


async def _ask(stack: Stack, key: str, model: str = "llama3.2:3b") -> str:
    reply = await stack.openai(key).chat.completions.create(
        model=model, messages=[user("hi tokens=3")]
    )
    return reply.choices[0].message.content or ""


async def test_a_scoped_key_sees_and_uses_only_its_models(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    key = await stack.key("acme", "scoped", models=["llama3.2:3b", "gemma3:4b"])
    client = stack.openai(key)
    names = {m.id for m in (await client.models.list()).data}
    assert names == {"llama3.2:3b", "gemma3:4b"}
    assert await _ask(stack, key)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await _ask(stack, key, "qwen3:8b")
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["code"] == "model_not_allowed"
    assert body["param"] == "model"
    assert "llama3.2:3b" in body["message"]


async def test_a_scoped_key_is_told_only_about_its_own_tool_models(
    acme: tuple[Stack, str],
) -> None:
    stack, _ = acme
    key = await stack.key("acme", "small", models=["tinyllama:1.1b", "llama3.2:3b"])
    with pytest.raises(openai.BadRequestError) as caught:
        await stack.openai(key).chat.completions.create(
            model="tinyllama:1.1b",
            messages=[user("weather?")],
            tools=[{"type": "function", "function": {"name": "weather", "parameters": {}}}],
        )
    message = str(caught.value)
    assert "llama3.2:3b" in message
    assert "qwen3:8b" not in message  # tool-capable, but not this key's


async def test_an_expired_key_gets_key_expired(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    key = await stack.key("acme", "brief", expires_in_seconds=3600)
    assert await _ask(stack, key)
    stack.clock.advance(3599)
    assert await _ask(stack, key)
    stack.clock.advance(2)
    with pytest.raises(openai.AuthenticationError) as caught:
        await _ask(stack, key)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "key_expired"


async def test_revoking_a_key_refuses_its_very_next_request(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    assert await _ask(stack, key)
    async with stack.admin() as admin:
        (await admin.delete("/tenants/acme/keys/test")).raise_for_status()
    with pytest.raises(openai.AuthenticationError) as caught:
        await _ask(stack, key)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "invalid_api_key"


async def test_rotation_keeps_the_old_secret_for_the_grace_period(
    acme: tuple[Stack, str],
) -> None:
    stack, old = acme
    async with stack.admin() as admin:
        response = await admin.post("/tenants/acme/keys/test/rotate", json={"grace_seconds": 86400})
    response.raise_for_status()
    new = response.json()["secret"]
    assert new != old
    assert await _ask(stack, old)  # within the grace period, both work
    assert await _ask(stack, new)
    stack.clock.advance(86399)
    assert await _ask(stack, old)
    stack.clock.advance(2)
    with pytest.raises(openai.AuthenticationError):
        await _ask(stack, old)
    assert await _ask(stack, new)
    async with stack.admin() as admin:
        listed = (await admin.get("/tenants/acme/keys")).json()["keys"]
    assert [k["prefix"] for k in listed] == [new[: len(listed[0]["prefix"])]]


async def test_rotation_without_grace_retires_the_old_secret_at_once(
    acme: tuple[Stack, str],
) -> None:
    stack, old = acme
    async with stack.admin() as admin:
        response = await admin.post("/tenants/acme/keys/test/rotate", json={"grace_seconds": 0})
    new = response.json()["secret"]
    with pytest.raises(openai.AuthenticationError):
        await _ask(stack, old)
    assert await _ask(stack, new)


async def test_key_list_shows_limits_but_never_a_secret(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    secret = await stack.key(
        "acme",
        "ci",
        models=["qwen3:8b"],
        budget_tokens=200_000,
        budget_period="day",
        rpm=60,
        tpm=100_000,
        expires_in_seconds=30 * 86400,
    )
    async with stack.admin() as admin:
        response = await admin.get("/tenants/acme/keys")
    assert secret not in response.text
    assert secret[len("sk-lt-") :] not in response.text
    (ci,) = [k for k in response.json()["keys"] if k["name"] == "ci"]
    assert "secret" not in ci
    assert ci["models"] == ["qwen3:8b"]
    assert (ci["budget_tokens"], ci["budget_period"]) == (200_000, "day")
    assert (ci["rpm"], ci["tpm"]) == (60, 100_000)
    assert ci["expires_at"] > ci["created_at"] + 29 * 86400
    assert secret.startswith(ci["prefix"])


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"models": []}, "models"),
        ({"models": "qwen3:8b"}, "models"),
        ({"rpm": 0}, "rpm"),
        ({"tpm": 1.5}, "tpm"),
        ({"budget_tokens": 100, "budget_period": "fortnight"}, "budget_period"),
        ({"budget_period": "day"}, "budget_period"),
        ({"rpm": 2**63}, "rpm"),
        ({"tpm": 10**13}, "tpm"),
        ({"budget_tokens": 2**62}, "budget_tokens"),
        ({"expires_in_seconds": 1e300}, "expires_in_seconds"),
        ({"models": ["x" * 300]}, "models"),
        ({"machine": {"name": "gpu-1"}}, "machine"),
    ],
)
async def test_bad_key_limits_are_400_naming_the_field(
    stack: Stack, fields: dict[str, object], param: str
) -> None:
    await stack.tenant("acme")
    async with stack.admin() as admin:
        response = await admin.post("/tenants/acme/keys", json={"name": "k", **fields})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_a_bound_key_routes_only_to_its_machine_and_dies_with_it(stack: Stack) -> None:
    await stack.tenant("acme")
    await stack.agent("acme", "gpu-1")
    await stack.agent("acme", "gpu-2")
    bound = await stack.key("acme", "deploy", machine="gpu-2")
    free = await stack.key("acme", "free")
    for _ in range(6):
        assert await _ask(stack, bound)
        assert await _ask(stack, free)
    async with stack.admin() as admin:
        events = (await admin.get("/tenants/acme/audit", params={"limit": 100})).json()["events"]
    machines = {
        key: {e["machine"] for e in events if e["kind"] == "request" and e["actor"] == key}
        for key in ("deploy", "free")
    }
    assert machines["deploy"] == {"gpu-2"}
    assert "gpu-1" in machines["free"]  # where unbound requests go when both are idle

    async with stack.admin() as admin:
        response = await admin.delete("/tenants/acme/machines/gpu-2")
    assert response.json()["revoked_keys"] == ["deploy"]
    with pytest.raises(openai.AuthenticationError):
        await _ask(stack, bound)
    assert await _ask(stack, free)


async def test_a_bound_key_whose_machine_is_offline_gets_503(stack: Stack) -> None:
    await stack.tenant("acme")
    await stack.agent("acme", "gpu-1")
    await stack.agent("acme", "gpu-2")
    bound = await stack.key("acme", "deploy", machine="gpu-2")
    await stack.agents[1].stop()
    await stack.wait_online("acme", "gpu-2", online=False)
    assert await _ask(stack, await stack.key("acme", "free"))  # gpu-1 still serves
    with pytest.raises(openai.InternalServerError) as caught:
        await _ask(stack, bound)
    assert caught.value.status_code == 503
    assert "bound" in str(caught.value)
    assert (await stack.openai(bound).models.list()).data == []
