"""The pipeline every dialect goes through (edge/api/dispatch.py), with aiohttp's test client:
the real edge application on a real SQLite store, and scripted machines in the registry instead
of agents, so that what reaches a machine and what the client sees can both be asserted."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from edge import credentials
from edge.agents.stream import StreamEvent, TunnelStream
from edge.api import replies
from edge.app import create_app
from edge.config import EdgeConfig
from edge.context import CONTEXT, EdgeContext
from edge.store import KeyLimits
from protocol import Delta, End, Error
from protocol.requests import ChatRequest, Request

MODELS = {
    "qwen3:8b": {"name": "qwen3:8b", "capabilities": ["completion", "tools", "thinking"]},
    "tinyllama:1.1b": {"name": "tinyllama:1.1b", "capabilities": ["completion"]},
}
HELLO: list[StreamEvent] = [
    Delta(1, "Hel", "", []),
    Delta(1, "lo", "", []),
    End(1, "stop", 7, 2, {}),
]


@dataclass(eq=False)
class ScriptedMachine:
    """A machine whose every stream plays ``script``: the events a real agent would send."""

    machine_id: str
    script: list[StreamEvent]
    tenant_id: str = ""
    max_concurrency: int = 4
    models: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(MODELS))
    accepting: bool = True
    backend_down: str | None = None
    requests: list[Request] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    cancelled: list[str | None] = field(default_factory=list)
    streams: dict[int, TunnelStream] = field(default_factory=dict)

    @property
    def machine_name(self) -> str:
        return self.machine_id

    @property
    def in_flight(self) -> int:
        return len(self.streams)

    def open_stream(self, request: Request, timeout: float, request_id: str) -> TunnelStream:
        self.requests.append(request)
        self.request_ids.append(request_id)
        stream = TunnelStream(self, len(self.requests))
        self.streams[stream.stream_id] = stream
        loop = asyncio.get_running_loop()
        for n, event in enumerate(self.script):
            loop.call_later(0.001 * (n + 1), stream.deliver, event)
        return stream

    def consumed(self, stream_id: int, size: int) -> None:
        pass

    def forget(self, stream: TunnelStream, cancel_reason: str | None) -> None:
        self.streams.pop(stream.stream_id, None)
        self.cancelled.append(cancel_reason)

    def goaway(self, reason: str) -> None:  # the edge's drain, when the test app stops
        self.accepting = False

    async def close(self, code: object, message: str) -> None:
        pass


@dataclass
class Edge:
    client: TestClient[web.Request, web.Application]
    ctx: EdgeContext
    tenant_id: str

    async def key(self, name: str = "k", **limits: Any) -> str:
        secret = credentials.new_api_key()
        await self.ctx.store.keys.add(
            credentials.new_id("k"),
            self.tenant_id,
            name,
            credentials.visible_prefix(secret),
            self.ctx.hasher.digest(secret),
            None,
            KeyLimits(**limits),
        )
        return secret

    def machine(self, name: str, script: list[StreamEvent]) -> ScriptedMachine:
        machine = ScriptedMachine(name, script, self.tenant_id)
        self.ctx.registry.add(machine)  # type: ignore[arg-type]
        return machine

    async def post(self, path: str, key: str, body: dict[str, Any]) -> tuple[int, str]:
        response = await self.client.post(
            path, json=body, headers={"Authorization": f"Bearer {key}"}
        )
        return response.status, await response.text()


@pytest.fixture
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    app = create_app(EdgeConfig(domain="example.test", data_dir=tmp_path))
    async with TestClient(TestServer(app)) as client:
        ctx = app[CONTEXT]
        tenant = await ctx.store.tenants.create("t1", "acme")
        yield Edge(client, ctx, tenant.id)


def _chat(model: str = "qwen3:8b", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


async def test_a_stream_reaches_the_client_as_chunks_and_the_machine_as_a_typed_request(
    edge: Edge,
) -> None:
    await edge.ctx.store.aliases.set(edge.tenant_id, "gpt-4o", "qwen3:8b")
    machine = edge.machine("gpu-1", HELLO)
    key = await edge.key(budget_tokens=10**6, budget_period="day")
    status, text = await edge.post("/v1/chat/completions", key, _chat("gpt-4o", stream=True))
    assert status == 200
    chunks = [json.loads(line[6:]) for line in text.split("\n\n") if line.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello"
    assert chunks[0]["model"] == "gpt-4o"  # the client's name for it
    assert text.rstrip().endswith("data: [DONE]")
    (sent,) = machine.requests
    assert isinstance(sent, ChatRequest)
    assert sent.model == "qwen3:8b"  # the alias resolved to what the machine serves
    assert sent.options.num_predict == 4096  # a budgeted key's reservation bounds the reply
    assert machine.cancelled == [None]  # it ended on its own: nothing to cancel


async def test_a_retryable_refusal_before_any_output_fails_over(edge: Edge) -> None:
    busy = edge.machine("gpu-1", [Error(1, "busy", "full", True)])
    able = edge.machine("gpu-2", HELLO)
    key = await edge.key()
    status, text = await edge.post("/v1/chat/completions", key, _chat())
    assert status == 200 and json.loads(text)["choices"][0]["message"]["content"] == "Hello"
    assert len(busy.requests) == len(able.requests) == 1


async def test_a_refusal_before_the_first_event_is_an_http_error_in_the_dialect_s_shape(
    edge: Edge,
) -> None:
    refusal: StreamEvent = Error(
        1, "context_length_exceeded", "prompt is too long: 9 tokens > 8 max", False
    )
    edge.machine("gpu-1", [refusal])
    key = await edge.key()
    status, text = await edge.post("/v1/chat/completions", key, _chat(stream=True))
    assert status == 400
    assert json.loads(text)["error"]["code"] == "context_length_exceeded"
    body = {**_chat(), "max_tokens": 10}
    status, text = await edge.post("/v1/messages", key, body)
    assert status == 400
    assert json.loads(text)["error"]["type"] == "invalid_request_error"  # Anthropic's shape


async def test_a_failure_after_the_first_event_ends_the_stream_with_an_error_event(
    edge: Edge,
) -> None:
    edge.machine(
        "gpu-1", [Delta(1, "Hel", "", []), Error(1, "backend_error", "runner died", False)]
    )
    key = await edge.key()
    status, text = await edge.post("/v1/chat/completions", key, _chat(stream=True))
    assert status == 200  # committed with the first event
    last = json.loads(text.strip().split("\n\n")[-1][6:])
    assert last["error"]["code"] == "backend_error" and "runner died" in last["error"]["message"]
    assert "[DONE]" not in text  # a failed stream is never made to look finished


async def test_what_the_model_cannot_do_is_refused_before_a_machine_sees_it(edge: Edge) -> None:
    machine = edge.machine("gpu-1", HELLO)
    key = await edge.key()
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    status, text = await edge.post(
        "/v1/chat/completions", key, _chat("tinyllama:1.1b", tools=tools)
    )
    assert status == 400
    error = json.loads(text)["error"]
    assert error["code"] == "model_does_not_support_tools" and "qwen3:8b" in error["message"]
    scoped = await edge.key("scoped", models=("qwen3:8b",))
    status, text = await edge.post("/v1/chat/completions", scoped, _chat("tinyllama:1.1b"))
    assert status == 403
    assert machine.requests == []


async def test_a_reservation_is_settled_to_what_was_used(edge: Edge) -> None:
    edge.machine("gpu-1", HELLO)  # 7 + 2 tokens really used
    key = await edge.key(budget_tokens=5000, budget_period="day")
    for _ in range(3):  # each reserves ~4,100 (max_tokens 4,096): they fit one at a time only
        status, _ = await edge.post("/v1/chat/completions", key, _chat())
        assert status == 200
    status, text = await edge.post("/v1/chat/completions", key, _chat(max_tokens=4980))
    assert status == 429 and json.loads(text)["error"]["code"] == "budget_exceeded"
    assert "has 4,973 tokens left" in json.loads(text)["error"]["message"]  # 5,000 - 3 * 9


async def test_a_client_gone_mid_write_is_audited_as_closed_by_the_client(
    edge: Edge, monkeypatch: pytest.MonkeyPatch
) -> None:
    edge.machine("gpu-1", HELLO)
    key = await edge.key()

    async def gone(*args: object, **kwargs: object) -> web.StreamResponse:
        raise ConnectionResetError("Cannot write to closing transport")  # aiohttp's words

    monkeypatch.setattr(replies, "stream_text", gone)
    with contextlib.suppress(aiohttp.ClientError):
        await edge.post("/v1/chat/completions", key, _chat(stream=True))
    await edge.ctx.recorder.flush()
    (event,) = await edge.ctx.store.usage.audit_events(edge.tenant_id, 0, None, 10)
    assert (event["status"], event["error_code"]) == (499, "client_closed")
