"""One request followed across both machines by its id (README "Operating it"): the client gets
it as x-request-id (errors included, and the OpenAI SDK shows it), the edge's access line and
audit row carry it, and so do the agent's log lines for the stream it served."""

from __future__ import annotations

import logging
import re

import openai
import pytest

from agent.log_fields import StreamLogFields
from edge.observability.logs import RequestLogFields
from tests.e2e.stack import Stack, user

pytestmark = pytest.mark.e2e

REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")


async def test_the_sdk_shows_the_id_the_access_line_and_the_audit_row_carry(
    acme: tuple[Stack, str], caplog: pytest.LogCaptureFixture
) -> None:
    stack, key = acme
    caplog.handler.addFilter(RequestLogFields())
    caplog.set_level(logging.INFO, logger="edge.access")
    client = stack.openai(key)
    raw = await client.chat.completions.with_raw_response.create(
        model="qwen3:8b", messages=[user("hi tokens=2")]
    )
    request_id = raw.headers["x-request-id"]
    assert REQUEST_ID.match(request_id)
    completion = raw.parse()
    assert completion._request_id == request_id  # what the SDK shows as the request's id
    (line,) = [r for r in caplog.records if r.name == "edge.access"]
    assert line.__dict__["request_id"] == request_id
    assert (line.__dict__["tenant"], line.__dict__["key"], line.__dict__["machine"]) == (
        "acme",
        "test",
        "gpu-1",
    )
    async with stack.admin() as admin:
        events = (await admin.get("/tenants/acme/audit")).json()["events"]
    (row,) = [e for e in events if e["kind"] == "request"]
    assert row["request_id"] == request_id


async def test_every_response_has_its_own_id_errors_and_streams_included(
    acme: tuple[Stack, str],
) -> None:
    stack, key = acme
    client = stack.openai(key)
    seen = set()
    with pytest.raises(openai.AuthenticationError) as refused:
        await stack.openai("sk-lt-wrong").models.list()
    seen.add(refused.value.request_id)
    with pytest.raises(openai.NotFoundError) as missing:
        await client.chat.completions.create(model="nothing:here", messages=[user("hi")])
    seen.add(missing.value.request_id)
    stream = await client.chat.completions.with_raw_response.create(
        model="qwen3:8b", messages=[user("hi tokens=2")], stream=True
    )
    seen.add(stream.headers["x-request-id"])
    async for _ in stream.parse():
        pass
    async with stack.http() as http:
        headers = {"Authorization": f"Bearer {key}", "x-request-id": "mine-please"}
        unknown = await http.get("/v1/no/such/path", headers=headers)  # a 404 of the router
        assert unknown.status_code == 404
        seen.add(unknown.headers["x-request-id"])
        bad = await http.post("/v1/chat/completions", headers=headers, content=b"{not json")
        assert bad.status_code == 400
        seen.add(bad.headers["x-request-id"])
    assert len(seen) == 5 and all(REQUEST_ID.match(str(i)) for i in seen)  # the edge's own


async def test_the_agent_logs_the_id_of_the_request_its_stream_serves(
    acme: tuple[Stack, str], caplog: pytest.LogCaptureFixture
) -> None:
    stack, key = acme
    caplog.handler.addFilter(StreamLogFields())
    caplog.set_level(logging.INFO, logger="agent.session")
    with pytest.raises(openai.BadRequestError) as refused:  # Ollama refuses it: the agent logs
        await stack.openai(key).chat.completions.create(
            model="tinyllama:1.1b", messages=[user("word " * 3000)]
        )
    (line,) = [r for r in caplog.records if r.name == "agent.session" and "ended" in r.message]
    assert "context_length_exceeded" in line.message
    assert line.__dict__["request_id"] == refused.value.request_id
    assert line.__dict__["stream"] >= 1
