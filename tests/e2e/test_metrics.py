"""The edge's and the agent's /metrics, scraped for real after real requests through a real edge
and agent (README "Operating it"): counters move by what was done, histograms are observed,
labels stay bounded, and the metrics are never on the public port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from agent.metrics import AgentMetrics, serve_metrics
from llmtunnel import sim_ollama
from protocol import TunnelLimits
from tests.e2e.stack import Stack, running_stack, user
from tests.metrics_scrape import Scrape, scrape

pytestmark = pytest.mark.e2e

CHAT = "POST /v1/chat/completions"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    # A short heartbeat, so that round trips are measured within the test.
    limits = TunnelLimits(heartbeat_interval=0.2)
    async with running_stack(tmp_path, limits=limits, metrics_address=("127.0.0.1", 0)) as running:
        yield running


def edge_port(stack: Stack) -> int:
    assert stack.edge.metrics is not None
    return stack.edge.metrics.port


async def until(check: object, port: int, timeout: float = 5.0) -> Scrape:
    """Scrape until ``check(scrape)`` holds."""
    async with asyncio.timeout(timeout):
        while True:
            found = await scrape(port)
            if check(found):  # type: ignore[operator]
                return found
            await asyncio.sleep(0.02)


async def test_requests_tokens_and_times_are_counted_by_what_was_done(stack: Stack) -> None:
    await stack.tenant("acme")
    key = await stack.key("acme")
    await stack.agent("acme")
    client = stack.openai(key)
    prompt = completion = 0
    for text in ("one tokens=3", "two tokens=5"):
        reply = await client.chat.completions.create(model="qwen3:8b", messages=[user(text)])
        assert reply.usage is not None
        prompt += reply.usage.prompt_tokens
        completion += reply.usage.completion_tokens
    stream = await client.chat.completions.create(
        model="qwen3:8b",
        messages=[user("three tokens=4")],
        stream=True,
        stream_options={"include_usage": True},
    )
    async for chunk in stream:
        if chunk.usage is not None:
            prompt += chunk.usage.prompt_tokens
            completion += chunk.usage.completion_tokens
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(model="no-such-model", messages=[user("hi")])
    with pytest.raises(openai.AuthenticationError):
        await stack.openai("sk-lt-wrong").chat.completions.create(
            model="qwen3:8b", messages=[user("hi")]
        )
    await client.models.retrieve("qwen3:8b")

    found = await scrape(edge_port(stack))
    requests = "llmtunnel_edge_requests_total"
    assert found.value(requests, tenant="acme", endpoint=CHAT, status="200") == 3
    assert found.value(requests, tenant="acme", endpoint=CHAT, status="404") == 1
    assert found.value(requests, tenant="(none)", endpoint=CHAT, status="401") == 1
    # The route, never the path: a model name (or a response id) is not an endpoint.
    assert found.value(requests, tenant="acme", endpoint="GET /v1/models/{model}", status="200")
    tokens = {"tenant": "acme", "model": "qwen3:8b"}
    assert completion >= 3 + 5 + 4  # and qwen3's thinking
    assert found.value("llmtunnel_edge_prompt_tokens_total", **tokens) == prompt > 0
    assert found.value("llmtunnel_edge_completion_tokens_total", **tokens) == completion
    assert found.label_values("llmtunnel_edge_prompt_tokens_total", "model") == {"qwen3:8b"}
    duration = "llmtunnel_edge_request_duration_seconds"
    assert found.value(duration + "_count", endpoint=CHAT) == 5
    assert found.value(duration + "_bucket", endpoint=CHAT, le="+Inf") == 5
    assert 0 < found.value(duration + "_sum", endpoint=CHAT) < 30
    ttft = "llmtunnel_edge_time_to_first_token_seconds"
    assert found.value(ttft + "_count", model="qwen3:8b") == 3  # the three that had output
    assert found.label_values(ttft + "_count", "model") == {"qwen3:8b"}  # not no-such-model
    assert found.families[ttft] == "histogram"


async def test_machines_streams_traffic_and_round_trips_are_read_when_scraped(
    stack: Stack,
) -> None:
    await stack.tenant("acme")
    key = await stack.key("acme")
    await stack.agent("acme")
    found = await until(
        lambda s: s.label_values("llmtunnel_edge_tunnel_rtt_seconds", "machine"), edge_port(stack)
    )
    assert found.value("llmtunnel_edge_machines_online", tenant="acme", state="ready") == 1
    rtt = found.value("llmtunnel_edge_tunnel_rtt_seconds", tenant="acme", machine="gpu-1")
    assert 0 < rtt < 1
    before = found
    await stack.openai(key).chat.completions.create(
        model="qwen3:8b", messages=[user("hi tokens=20")]
    )
    after = await scrape(edge_port(stack))
    frames, sizes = "llmtunnel_edge_tunnel_frames_total", "llmtunnel_edge_tunnel_bytes_total"
    # At least an OPEN out; a DELTA and an END in; the request's text in bytes.
    assert after.value(frames, direction="out") >= before.value(frames, direction="out") + 1
    assert after.value(frames, direction="in") >= before.value(frames, direction="in") + 2
    assert after.value(sizes, direction="out") >= before.value(sizes, direction="out") + 20
    messages = "llmtunnel_edge_tunnel_messages_total"  # a message carries one frame or more
    assert after.value(messages, direction="in") >= before.value(messages, direction="in") + 1
    for direction in ("in", "out"):
        assert (
            0
            < after.value(messages, direction=direction)
            <= after.value(frames, direction=direction)
        )
    assert after.value("llmtunnel_edge_audit_backlog_events") >= 0
    assert "llmtunnel_edge_audit_dropped_events_total" in after.names()
    assert after.value("llmtunnel_edge_streams_in_flight", tenant="acme") == 0
    assert after.families["process_cpu_seconds"] == "counter"  # the process's own


async def test_streams_in_flight_and_queued_requests_while_a_machine_is_full(
    tmp_path: Path,
) -> None:
    async with running_stack(
        tmp_path, tokens_per_second=50, metrics_address=("127.0.0.1", 0)
    ) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        await stack.agent("acme", max_concurrency=1)
        client = stack.openai(key)
        slow = [
            asyncio.create_task(
                client.chat.completions.create(model="qwen3:8b", messages=[user("tokens=100")])
            )
            for _ in range(2)
        ]
        try:
            found = await until(
                lambda s: s.value("llmtunnel_edge_queued_requests", tenant="acme") == 1,
                edge_port(stack),
            )
            assert found.value("llmtunnel_edge_streams_in_flight", tenant="acme") == 1
        finally:
            for task in slow:
                task.cancel()
            await asyncio.gather(*slow, return_exceptions=True)
        # Both went away before their end: the client closed them (499), and nothing is left.
        found = await until(
            lambda s: s.total("llmtunnel_edge_requests_total", status="499") == 2,
            edge_port(stack),
        )
        assert found.value("llmtunnel_edge_streams_in_flight", tenant="acme") == 0
        assert found.value("llmtunnel_edge_queued_requests", tenant="acme") == 0


async def test_tenant_and_model_labels_are_capped(stack: Stack) -> None:
    assert stack.edge.metrics is not None
    metrics = stack.edge.metrics.metrics
    metrics.tenants.cap = metrics.models.cap = 1
    keys = {}
    for slug in ("acme", "beta"):
        await stack.tenant(slug)
        keys[slug] = await stack.key(slug)
        await stack.agent(slug)
    for slug in ("acme", "beta"):
        for model in ("qwen3:8b", "gemma3:4b"):
            await stack.openai(keys[slug]).chat.completions.create(
                model=model, messages=[user("hi tokens=2")]
            )
    found = await scrape(edge_port(stack))
    requests = "llmtunnel_edge_requests_total"
    assert found.label_values(requests, "tenant") == {"acme", "(other)"}
    assert found.value(requests, tenant="(other)", endpoint=CHAT, status="200") == 2
    assert found.label_values("llmtunnel_edge_completion_tokens_total", "model") == {
        "qwen3:8b",
        "(other)",
    }
    assert found.value("llmtunnel_edge_completion_tokens_total", tenant="(other)", model="(other)")
    # The live metrics name tenants through the same cap: beta's machine is "(other)"'s.
    assert found.label_values("llmtunnel_edge_machines_online", "tenant") == {"acme", "(other)"}
    assert found.value("llmtunnel_edge_label_values", label="tenant") == 1
    # An unknown path is one label value, whatever it is.
    async with stack.http() as http:
        for path in ("/v1/nothing/here", "/v1/or/there"):
            response = await http.get(path, headers={"Authorization": f"Bearer {keys['acme']}"})
            assert response.status_code == 404
    found = await scrape(edge_port(stack))
    assert found.value(requests, tenant="(none)", endpoint="(unmatched)", status="404") == 2


async def test_metrics_are_not_served_on_the_public_port(stack: Stack) -> None:
    async with stack.http() as http:
        assert (await http.get("/metrics")).status_code == 404
        assert (await http.get("/v1/metrics")).status_code in (401, 404)
    async with httpx.AsyncClient() as local:
        other = await local.get(f"http://127.0.0.1:{edge_port(stack)}/anything")
    assert other.status_code == 404  # the listener serves /metrics and nothing else


async def test_a_degraded_machine_shows_on_both_sides(stack: Stack) -> None:
    await stack.tenant("acme")
    agent_metrics = AgentMetrics()
    listener = await serve_metrics(agent_metrics, "127.0.0.1", 0)
    try:
        await stack.agent("acme", metrics=agent_metrics, model_refresh=0.05)
        assert (await scrape(listener.port)).value("llmtunnel_agent_backend_up") == 1
        assert stack.sim is not None
        port = sim_ollama.bound_port(stack.sim)
        await stack.sim.cleanup()  # Ollama stops
        stack.sim = None
        degraded = {"tenant": "acme", "state": "degraded"}
        found = await until(
            lambda s: s.value("llmtunnel_edge_machines_online", **degraded) == 1,
            edge_port(stack),
        )
        assert found.value("llmtunnel_edge_machines_online", tenant="acme", state="ready") == 0
        assert (await scrape(listener.port)).value("llmtunnel_agent_backend_up") == 0
        stack.sim = await sim_ollama.serve("127.0.0.1", port)  # and comes back
        await until(
            lambda s: s.value("llmtunnel_edge_machines_online", tenant="acme", state="ready") == 1,
            edge_port(stack),
        )
        await until(lambda s: s.value("llmtunnel_agent_backend_up") == 1, listener.port)
    finally:
        await listener.stop()


async def test_the_agent_counts_its_streams_tunnel_and_reconnects(stack: Stack) -> None:
    await stack.tenant("acme")
    key = await stack.key("acme")
    agent_metrics = AgentMetrics()
    listener = await serve_metrics(agent_metrics, "127.0.0.1", 0)
    try:
        await stack.agent("acme", metrics=agent_metrics)
        client = stack.openai(key)
        for _ in range(3):
            await client.chat.completions.create(model="qwen3:8b", messages=[user("tokens=3")])
        await client.embeddings.create(model="nomic-embed-text", input=["a", "b"])
        with pytest.raises(openai.BadRequestError):  # the backend refuses it: an ERROR
            await client.chat.completions.create(
                model="tinyllama:1.1b", messages=[user("word " * 3000)]
            )
        found = await scrape(listener.port)
        streams = "llmtunnel_agent_streams_total"
        assert found.value(streams, op="chat", outcome="end") == 3
        assert found.value(streams, op="embed", outcome="end") == 1
        assert found.value(streams, op="chat", outcome="context_length_exceeded") == 1
        first = "llmtunnel_agent_backend_first_output_seconds_count"
        assert found.value(first, model="qwen3:8b") == 3
        assert found.value("llmtunnel_agent_stream_duration_seconds_count", op="chat") == 4
        assert found.value("llmtunnel_agent_tunnel_connected") == 1
        assert found.value("llmtunnel_agent_streams_in_flight") == 0
        assert found.value("llmtunnel_agent_reconnects_total") == 0
        # Both ends count the same WebSocket payloads (heartbeats may be crossing: retry).
        async with asyncio.timeout(5):
            while True:
                agent, edge = await scrape(listener.port), await scrape(edge_port(stack))
                a, e = "llmtunnel_agent_tunnel_bytes_total", "llmtunnel_edge_tunnel_bytes_total"
                if agent.value(a, direction="in") == edge.value(e, direction="out") and agent.value(
                    a, direction="out"
                ) == edge.value(e, direction="in"):
                    break
                await asyncio.sleep(0.01)
        assert agent.value(a, direction="in") > 0

        await stack.restart_edge()  # the tunnel drops; the agent dials again
        await stack.wait_online("acme", "gpu-1")
        found = await until(
            lambda s: s.value("llmtunnel_agent_tunnel_connected") == 1, listener.port
        )
        assert found.value("llmtunnel_agent_reconnects_total") >= 1
    finally:
        await listener.stop()
