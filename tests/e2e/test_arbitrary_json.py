"""Arbitrary JSON at every public and admin endpoint: never a 500, never a hang, an error in the
API's own shape, and the store still writes afterwards (README "Errors and limits").

The bodies are valid requests with one field replaced by anything JSON can say, and a few things
it cannot: huge and negative integers, ``NaN`` and ``Infinity``, lone UTF-16 surrogates, deep
nesting, wrong types. Each example is a real HTTPS request to a real edge with a machine online.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.stack import Stack, running_stack

# One edge for the whole module: its event loop lives as long as the module does.
pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

MODEL = "llama3.2:3b"
MESSAGES = [{"role": "user", "content": "hi"}]

# (method, path, who calls, a valid body to start from)
ENDPOINTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("POST", "/v1/chat/completions", "key", {"model": MODEL, "messages": MESSAGES}),
    ("POST", "/v1/completions", "key", {"model": MODEL, "prompt": "hi", "max_tokens": 4}),
    ("POST", "/v1/embeddings", "key", {"model": "nomic-embed-text:latest", "input": "hi"}),
    ("POST", "/v1/messages", "key", {"model": MODEL, "max_tokens": 8, "messages": MESSAGES}),
    ("POST", "/v1/messages/count_tokens", "key", {"model": MODEL, "messages": MESSAGES}),
    ("POST", "/v1/responses", "key", {"model": MODEL, "input": "hi", "max_output_tokens": 8}),
    ("POST", "/admin/v1/tenants", "admin", {"slug": "fuzz"}),
    ("PATCH", "/admin/v1/tenants/acme", "admin", {"store_responses": False}),
    ("POST", "/admin/v1/tenants/acme/machines/pair", "admin", {"name": "m", "ttl_seconds": 60}),
    (
        "POST",
        "/admin/v1/tenants/acme/keys",
        "admin",
        {"name": "k", "rpm": 5, "tpm": 100, "budget_tokens": 1000, "expires_in_seconds": 60},
    ),
    ("POST", "/admin/v1/tenants/acme/keys/test/rotate", "admin", {"grace_seconds": 60}),
    ("PUT", "/admin/v1/tenants/acme/aliases/fuzzy", "admin", {"model": MODEL}),
    ("POST", "/admin/v1/tenants/acme/admin-keys", "admin", {"name": "a"}),
    ("POST", "/agent/pair", "none", {"code": "AAAA-BBBB-CCCC-DDDD", "public_key": "AAAA"}),
]
QUERIES = [
    ("/admin/v1/tenants/acme/usage", "since"),
    ("/admin/v1/tenants/acme/audit", "since"),
    ("/admin/v1/tenants/acme/audit", "limit"),
]

huge_ints = st.one_of(
    st.integers(), st.sampled_from([2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**30, -1, 0])
)
floats = st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0]))
# Every code point, lone surrogates included (json.dumps writes them as \ud800 escapes).
text = st.text(st.characters(codec=None, categories=None), max_size=20)
scalars = st.one_of(st.none(), st.booleans(), huge_ints, floats, text)
# A URL's query is percent-encoded UTF-8: a lone surrogate cannot be sent in one at all.
query_text = st.text(st.characters(codec="utf-8", categories=None), max_size=20)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)


# The values that broke things before: drawn as often as everything else together.
nasty = st.sampled_from(
    [
        *(2**63, 2**64 - 1, 10**30, -(2**63) - 1, math.nan, math.inf, -math.inf),
        *("\ud800", "a\udfffb", 1e300, -1, 0, "", [], {}, True),
    ]
)
DEEP = "__deep__"  # replaced in the encoded body by brackets nested too deep to encode here


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str, str, bytes]:
    """A valid body with one field (or one extra field) set to an arbitrary value."""
    method, path, who, body = draw(st.sampled_from(ENDPOINTS))
    field = draw(st.sampled_from([*body, "model", "messages", "tools", "stream", "extra"]))
    nesting = draw(st.one_of(st.just(0), st.integers(100, 5000)))
    body = {**body, field: DEEP if nesting else draw(st.one_of(nasty, values))}
    raw = json.dumps(body)
    if nesting:
        raw = raw.replace(json.dumps(DEEP), "[" * nesting + "1" + "]" * nesting)
    return method, path, who, raw.encode()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Stack, str]]:
    async with running_stack(Path(tmp_path_factory.mktemp("fuzz"))) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme")
        yield stack, key


def _headers(stack: Stack, key: str, who: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if who == "key":
        headers["Authorization"] = f"Bearer {key}"
    elif who == "admin":
        headers["Authorization"] = f"Bearer {stack.admin_key}"
    return headers


def _check(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        body = response.json()
        error = body.get("error")
        assert isinstance(error, dict) and isinstance(error.get("message"), str), what


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=mutated())
async def test_arbitrary_json_gets_an_answer_in_the_apis_own_shape(
    fuzz_stack: tuple[Stack, str], request: tuple[str, str, str, bytes]
) -> None:
    stack, key = fuzz_stack
    method, path, who, content = request
    async with stack.http() as http:
        # The timeout is the "never a hang": every answer, even a streamed one, is quick here.
        response = await http.request(
            method, path, content=content, headers=_headers(stack, key, who), timeout=15
        )
    _check(response, f"{method} {path} {content[:200]!r}")


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    where=st.sampled_from(QUERIES), value=st.one_of(query_text, huge_ints.map(str), floats.map(str))
)
async def test_arbitrary_query_values_get_an_answer(
    fuzz_stack: tuple[Stack, str], where: tuple[str, str], value: str
) -> None:
    stack, _ = fuzz_stack
    path, name = where
    async with stack.admin() as admin:
        response = await admin.get(path.removeprefix("/admin/v1"), params={name: value})
    _check(response, f"{path}?{name}={value!r}")


async def test_the_store_still_writes_after_the_fuzzing(fuzz_stack: tuple[Stack, str]) -> None:
    """Runs after the two above (same module, same edge): keys can be made and used, and the
    audit and usage are flushed and readable for the tenant."""
    stack, _ = fuzz_stack
    key = await stack.key("acme", name="after-fuzz")
    client = stack.openai(key)
    reply = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content
    async with stack.admin() as admin:
        audit = await admin.get("/tenants/acme/audit", params={"key": "after-fuzz"})
        usage = await admin.get("/tenants/acme/usage", params={"key": "after-fuzz"})
        revoked = await admin.delete("/tenants/acme/keys/after-fuzz")
    assert audit.status_code == usage.status_code == revoked.status_code == 200
    assert [e["key_id"] is not None for e in audit.json()["events"]] == [True]
    assert [u["requests"] for u in usage.json()["usage"]] == [1]
