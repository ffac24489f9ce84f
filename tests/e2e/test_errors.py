"""Bad input and refused callers get clear errors in the OpenAI shape, never a 500 or a hang."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from tests.e2e.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

CHAT = {"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}]}


def _error(body: object) -> dict[str, object]:
    assert isinstance(body, dict) and set(body) == {"error"}
    error = body["error"]
    assert isinstance(error, dict) and {"type", "code", "message", "param"} <= set(error)
    return error


@pytest.mark.parametrize(
    "content",
    [b'{"model": "llama3.2:3b", "messages": [', b"\xff\xfe", b"[1, 2]", b"[" * 100_000],
)
async def test_malformed_json_is_400(acme: tuple[Stack, str], content: bytes) -> None:
    stack, key = acme
    async with stack.http() as http:
        response = await http.post(
            "/v1/chat/completions",
            content=content,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    assert _error(response.json())["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "llama3.2:3b", "messages": "hello"}, "messages"),
        ({"model": "llama3.2:3b", "messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({**CHAT, "temperature": "hot"}, "temperature"),
        ({**CHAT, "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({**CHAT, "n": 2}, "n"),
        (
            {
                **CHAT,
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                    }
                ],
            },
            "messages.0.content",
        ),
    ],
)
async def test_invalid_requests_name_the_parameter(
    acme: tuple[Stack, str], body: dict[str, object], param: str
) -> None:
    stack, key = acme
    async with stack.http() as http:
        response = await http.post(
            "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
        )
    assert response.status_code == 400
    assert _error(response.json())["param"] == param


async def test_body_over_the_limit_is_413(tmp_path: Path) -> None:
    async with running_stack(tmp_path, max_body=4096) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 10_000}]}
        async with stack.http() as http:
            response = await http.post(
                "/v1/chat/completions", json=big, headers={"Authorization": f"Bearer {key}"}
            )
        assert response.status_code == 413
        error = _error(response.json())
        assert error["code"] == "request_too_large"
        assert "4096" in str(error["message"])


async def test_missing_wrong_and_revoked_keys_are_401(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    async with stack.http() as http:
        missing = await http.get("/v1/models")
        wrong = await http.get("/v1/models", headers={"Authorization": "Bearer sk-lt-nope"})
    assert missing.status_code == wrong.status_code == 401
    assert "Authorization: Bearer" in str(_error(missing.json())["message"])
    assert _error(wrong.json())["code"] == "invalid_api_key"

    client = stack.openai(key)
    await client.models.list()
    async with stack.admin() as admin:
        (await admin.delete("/tenants/acme/keys/test")).raise_for_status()
    with pytest.raises(openai.AuthenticationError):
        await client.models.list()


async def test_x_api_key_header_is_accepted(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    async with stack.http() as http:
        response = await http.get("/v1/models", headers={"x-api-key": key})
    assert response.status_code == 200


async def test_a_key_cannot_reach_another_tenant(acme: tuple[Stack, str]) -> None:
    stack, acme_key = acme
    await stack.tenant("beta")
    beta_key = await stack.key("beta")
    await stack.agent("beta", "beta-gpu")
    port = stack.edge.port
    async with stack.http() as http:
        # acme's key on beta's host: refused, and nothing of beta's in the answer.
        crossed = await http.get(
            "/v1/models",
            headers={"Authorization": f"Bearer {acme_key}", "Host": f"beta.example.test:{port}"},
        )
        own = await http.get(
            "/v1/models",
            headers={"Authorization": f"Bearer {beta_key}", "Host": f"beta.example.test:{port}"},
        )
        chat = await http.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={"Authorization": f"Bearer {acme_key}", "Host": f"beta.example.test:{port}"},
        )
    assert crossed.status_code == 401 and chat.status_code == 401
    assert "beta" not in crossed.text and "llama" not in crossed.text
    assert own.status_code == 200
    assert {m["owned_by"] for m in own.json()["data"]} == {"beta"}


async def test_unknown_model_is_404(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    with pytest.raises(openai.NotFoundError) as caught:
        await stack.openai(key).chat.completions.create(
            model="gpt-17", messages=[{"role": "user", "content": "hi"}]
        )
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "model_not_found"


async def test_no_machine_online_is_503_with_a_clear_message(stack: Stack) -> None:
    await stack.tenant("acme")
    key = await stack.key("acme")
    with pytest.raises(openai.InternalServerError) as caught:
        await stack.openai(key).chat.completions.create(
            model="llama3.2:3b", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 503
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "no_machine_online"
    assert "llmtunnel agent run" in caught.value.body["message"]


async def test_unknown_routes_and_methods_answer_in_json(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    async with stack.http() as http:
        missing = await http.get("/v1/nothing", headers={"Authorization": f"Bearer {key}"})
        method = await http.delete("/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert missing.status_code == 404 and _error(missing.json())["code"] == "not_found"
    assert method.status_code == 405 and _error(method.json())["code"] == "method_not_allowed"


async def test_backend_error_before_first_token_keeps_ollamas_message(
    acme: tuple[Stack, str],
) -> None:
    stack, key = acme
    with pytest.raises(openai.APIStatusError) as caught:
        await stack.openai(key).chat.completions.create(
            model="llama3.2:3b",
            messages=[{"role": "user", "content": "hi"}],
            reasoning_effort="high",  # think on a model without the thinking capability
        )
    assert caught.value.status_code == 400
    assert "does not support thinking" in str(caught.value.message)


async def test_mid_stream_backend_failure_ends_with_an_error_event(
    acme: tuple[Stack, str],
) -> None:
    stack, key = acme
    stream = await stack.openai(key).chat.completions.create(
        model="llama3.2:3b",
        messages=[{"role": "user", "content": "start then break fail-after=3"}],
        stream=True,
    )
    received = []
    with pytest.raises(openai.APIError):
        async for chunk in stream:
            received.append(chunk)
    # The three tokens before the failure arrive (perhaps coalesced), then the error.
    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert text == "start then break"


@pytest.mark.parametrize(
    ("path", "raw", "param"),
    [
        (
            "/v1/chat/completions",
            '{"model": "llama3.2:3b", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
            "messages.0.content",
        ),
        (
            "/v1/chat/completions",
            '{"model": "llama3.2:3b", "max_tokens": 18446744073709551616, "messages": []}',
            "max_tokens",
        ),
        (
            "/v1/chat/completions",
            '{"model": "llama3.2:3b", "seed": -9223372036854775809, "messages": []}',
            "seed",
        ),
        (
            "/v1/responses",
            '{"model": "llama3.2:3b", "max_output_tokens": 1e999}',
            "max_output_tokens",
        ),
        (
            "/v1/responses",
            '{"model": "llama3.2:3b", "input": "hi", "max_output_tokens": 99999999999999999999}',
            "max_output_tokens",
        ),
        (
            "/v1/embeddings",
            '{"model": "nomic-embed-text:latest", "input": "x", "dimensions": 2e64}',
            "dimensions",
        ),
        (
            "/v1/embeddings",
            '{"model": "nomic-embed-text:latest", "input": "x", "dimensions": 2' + "0" * 30 + "}",
            "dimensions",
        ),
        ("/v1/messages", '{"model": "m", "max_tokens": NaN, "messages": []}', "max_tokens"),
    ],
)
async def test_values_no_layer_can_carry_are_400_naming_the_field(
    acme: tuple[Stack, str], path: str, raw: str, param: str
) -> None:
    """Lone surrogates, integers past 64 bits and non-finite numbers: refused where the JSON is
    read, before anything tries to store them or send them through the tunnel."""
    stack, key = acme
    async with stack.http() as http:
        response = await http.post(
            path,
            content=raw.encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400, response.text
    if path == "/v1/messages":  # Anthropic's shape names the field in the message
        assert f"'{param}'" in response.json()["error"]["message"]
    else:
        assert _error(response.json())["param"] == param


async def test_a_request_the_tunnel_cannot_carry_is_400(acme: tuple[Stack, str]) -> None:
    # PROTOCOL.md §2: OPEN carries JSON at most 64 levels deep. The edge's JSON reader takes
    # deeper bodies; the edge refuses them before any machine sees them, and the slot it had
    # reserved is free again for the next request.
    stack, key = acme
    deep = "[" * 100 + "1" + "]" * 100
    body = (
        '{"model": "llama3.2:3b", "messages": [{"role": "user", "content": "hi"}], "tools": '
        f'[{{"type": "function", "function": {{"name": "f", "parameters": {{"x": {deep}}}}}}}]}}'
    )
    async with stack.http() as http:
        response = await http.post(
            "/v1/chat/completions",
            content=body.encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
    assert response.status_code == 400
    error = _error(response.json())
    assert error["code"] == "invalid_request"
    assert isinstance(error["message"], str) and "deeper than 64 levels" in error["message"]
    registry = stack.edge.context.registry
    session = registry.sessions(registry.tenants()[0])[0]
    assert (session.in_flight, registry.reserved(session)) == (0, 0)
    reply = await stack.openai(key).chat.completions.create(
        model="llama3.2:3b", messages=[{"role": "user", "content": "fine tokens=2"}]
    )
    assert reply.choices[0].message.content == "fine the"
