"""The agent's metrics on their own (agent/metrics.py); tests/e2e/test_metrics.py scrapes them
from a real agent."""

from __future__ import annotations

from prometheus_client import generate_latest

from agent.metrics import MAX_MODELS, AgentMetrics
from protocol.requests import ChatRequest, UnsupportedRequest
from tests.metrics_scrape import Scrape


def _scrape(metrics: AgentMetrics) -> Scrape:
    return Scrape(generate_latest(metrics.registry).decode())


def test_ops_and_models_are_bounded_labels() -> None:
    metrics = AgentMetrics()
    for n in range(MAX_MODELS + 5):
        request = ChatRequest(f"model-{n}", ())
        metrics.first_output_after(request, 0.0)
        metrics.stream_ended(request, "end", 0.0)
    metrics.stream_ended(UnsupportedRequest("rerank-v9", "m"), "unsupported", 0.0)
    metrics.stream_refused(ChatRequest("m", ()), "busy")
    found = _scrape(metrics)
    first = "llmtunnel_agent_backend_first_output_seconds_count"
    assert len(found.label_values(first, "model")) == MAX_MODELS + 1
    assert found.value(first, model="(other)") == 5
    streams = "llmtunnel_agent_streams_total"
    assert found.value(streams, op="chat", outcome="end") == MAX_MODELS + 5
    assert found.value(streams, op="(other)", outcome="unsupported") == 1
    assert found.value(streams, op="chat", outcome="busy") == 1
    assert found.value("llmtunnel_agent_stream_duration_seconds_count", op="chat") == MAX_MODELS + 5


def test_before_any_tunnel_nothing_is_connected_or_in_flight() -> None:
    found = _scrape(AgentMetrics())
    assert found.value("llmtunnel_agent_tunnel_connected") == 0
    assert found.value("llmtunnel_agent_streams_in_flight") == 0
    assert found.value("llmtunnel_agent_backend_up") == 1
    assert found.value("llmtunnel_agent_tunnel_bytes_total", direction="in") == 0
