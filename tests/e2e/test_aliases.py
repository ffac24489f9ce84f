"""Per-tenant model aliases: clients with fixed model names reach the tenant's models."""

from __future__ import annotations

import anthropic
import openai
import pytest

from tests.e2e.stack import Stack, user

pytestmark = pytest.mark.e2e


async def _alias(stack: Stack, slug: str, alias: str, model: str) -> None:
    async with stack.admin() as admin:
        (
            await admin.put(f"/tenants/{slug}/aliases/{alias}", json={"model": model})
        ).raise_for_status()


async def test_an_alias_serves_its_model_under_the_name_the_client_used(
    acme: tuple[Stack, str],
) -> None:
    stack, key = acme
    await _alias(stack, "acme", "gpt-4o", "llama3.2:3b")
    client = stack.openai(key)
    listed = {m.id for m in (await client.models.list()).data}
    assert {"gpt-4o", "llama3.2:3b"} <= listed
    assert (await client.models.retrieve("gpt-4o")).id == "gpt-4o"
    reply = await client.chat.completions.create(model="gpt-4o", messages=[user("hi tokens=4")])
    direct = await client.chat.completions.create(
        model="llama3.2:3b", messages=[user("hi tokens=4")]
    )
    assert reply.model == "gpt-4o"
    assert reply.choices[0].message.content == direct.choices[0].message.content
    async with stack.admin() as admin:
        events = (await admin.get("/tenants/acme/audit")).json()["events"]
        aliases = (await admin.get("/tenants/acme/aliases")).json()["aliases"]
    assert aliases == {"gpt-4o": "llama3.2:3b"}
    served = [e for e in events if e["action"] == "POST /v1/chat/completions"]
    assert {e["model"] for e in served} == {"llama3.2:3b"}  # the audit names the real model
    assert ("alias.set", "gpt-4o -> llama3.2:3b") in {(e["action"], e["subject"]) for e in events}


async def test_claude_code_style_names_work_through_the_anthropic_api(
    acme: tuple[Stack, str],
) -> None:
    stack, key = acme
    await _alias(stack, "acme", "claude-haiku-5-0", "qwen3:8b")
    client = anthropic.AsyncAnthropic(
        base_url=stack.edge_url,
        api_key=key,
        max_retries=0,
        http_client=anthropic.DefaultAsyncHttpxClient(verify=stack.tls()),
    )
    message = await client.messages.create(
        model="claude-haiku-5-0",
        max_tokens=64,
        messages=[{"role": "user", "content": "hello tokens=5"}],
    )
    assert message.model == "claude-haiku-5-0"
    assert message.usage.output_tokens > 0


async def test_aliases_respect_key_scopes_and_tenants(acme: tuple[Stack, str]) -> None:
    stack, _ = acme
    await _alias(stack, "acme", "gpt-4o", "qwen3:8b")
    scoped = await stack.key("acme", "scoped", models=["llama3.2:3b"])
    with pytest.raises(openai.PermissionDeniedError):
        await stack.openai(scoped).chat.completions.create(model="gpt-4o", messages=[user("hi")])
    assert "gpt-4o" not in {m.id for m in (await stack.openai(scoped).models.list()).data}
    await stack.tenant("globex")
    await stack.agent("globex", "globex-gpu")
    other = await stack.key("globex", "k")
    with pytest.raises(openai.NotFoundError):  # acme's alias means nothing on globex
        await stack.openai(other).chat.completions.create(model="gpt-4o", messages=[user("hi")])


async def test_removing_an_alias_and_bad_aliases(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    await _alias(stack, "acme", "gpt-4o", "llama3.2:3b")
    async with stack.admin() as admin:
        assert (await admin.delete("/tenants/acme/aliases/gpt-4o")).status_code == 200
        assert (await admin.delete("/tenants/acme/aliases/gpt-4o")).status_code == 404
        bad = await admin.put("/tenants/acme/aliases/-x", json={"model": "qwen3:8b"})
        assert bad.status_code == 400
        no_model = await admin.put("/tenants/acme/aliases/x", json={})
        assert no_model.json()["error"]["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        await stack.openai(key).chat.completions.create(model="gpt-4o", messages=[user("hi")])


async def test_names_without_a_tag_are_resolved_as_ollama_resolves_them(
    acme: tuple[Stack, str],
) -> None:
    """The README's own embeddings example names `nomic-embed-text`; the machine serves
    `nomic-embed-text:latest`, as Ollama lists it. Ollama takes one for the other, so does the
    edge: in routing, scopes, aliases and /v1/models/{model}."""
    stack, key = acme
    client = stack.openai(key)
    vectors = await client.embeddings.create(model="nomic-embed-text", input=["first", "second"])
    assert len(vectors.data) == 2
    assert (await client.models.retrieve("nomic-embed-text")).id == "nomic-embed-text"
    reply = await client.chat.completions.create(
        model="library/llama3.2:3b", messages=[user("hi tokens=2")]
    )
    assert reply.choices[0].message.content
    scoped = stack.openai(await stack.key("acme", "scoped", models=["nomic-embed-text"]))
    assert [m.id async for m in scoped.models.list()] == ["nomic-embed-text:latest"]
    await scoped.embeddings.create(model="nomic-embed-text:latest", input="x")
    async with stack.admin() as admin:
        await admin.put("/tenants/acme/aliases/embedder", json={"model": "nomic-embed-text"})
    await client.embeddings.create(model="embedder", input="x")
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="qwen3", messages=[user("hi")])  # :latest
