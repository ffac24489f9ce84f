"""The agent's Prometheus metrics, served on a local listener when asked (``agent run
--metrics-listen 127.0.0.1:9465``; README "Operating it" lists them).

Per stream, two observations at most (its backend's first output and its end), made by the
stream's task; nothing per token. What is true now (streams in flight, the tunnel up, the
backend answering) is read when scraped. Labels are bounded: ``op`` is one of the three the
agent serves or ``(other)``, ``outcome`` is ``end``, ``cancelled`` or an ERROR code the agent
sends (PROTOCOL.md §6), ``model`` is capped at ``MAX_MODELS`` names, then ``(other)``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from llmtunnel.tunnel import Traffic

if TYPE_CHECKING:
    from prometheus_client import Metric

    from protocol.requests import Request, UnsupportedRequest

OTHER = "(other)"
OPS = frozenset({"chat", "generate", "embed"})
MAX_MODELS = 100  # model label values; a GPU box serves a handful
# Seconds: a warm model answers in milliseconds, a cold one loads for up to minutes.
FIRST_OUTPUT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class LiveSession(Protocol):
    """What the metrics read of the tunnel session serving now."""

    @property
    def in_flight(self) -> int: ...


class AgentMetrics:
    """The agent's metrics, in a registry of their own, across its reconnections."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.traffic = Traffic()  # every tunnel session adds to it
        # The logged-in tunnels: one, or one per edge node when the edge has several (§11).
        self.sessions: set[LiveSession] = set()
        self.backend_up = True
        self._models: set[str] = set()
        r = self.registry
        self.reconnects = Counter(
            "llmtunnel_agent_reconnects",
            "Times the agent dialed the edge again after a tunnel ended or failed to open",
            registry=r,
        )
        self.streams = Counter(
            "llmtunnel_agent_streams",
            "Streams that ended, by op and outcome (end, cancelled, or the ERROR code sent)",
            ["op", "outcome"],
            registry=r,
        )
        self.first_output = Histogram(
            "llmtunnel_agent_backend_first_output_seconds",
            "From OPEN to the backend's first output (model load and prompt included), by model",
            ["model"],
            buckets=FIRST_OUTPUT_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "llmtunnel_agent_stream_duration_seconds",
            "From OPEN to the stream's end, by op",
            ["op"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        r.register(_Live(self))
        ProcessCollector(registry=r)

    def _model(self, model: str) -> str:
        if model in self._models:
            return model
        if len(self._models) < MAX_MODELS:
            self._models.add(model)
            return model
        return OTHER

    def first_output_after(self, request: Request | UnsupportedRequest, started: float) -> None:
        """The backend's first output for ``request``, opened at ``started`` (monotonic)."""
        self.first_output.labels(self._model(request.model)).observe(time.monotonic() - started)

    def stream_ended(
        self, request: Request | UnsupportedRequest, outcome: str, started: float
    ) -> None:
        """A stream served since ``started`` (monotonic) ended: ``end``, ``cancelled`` (by the
        edge, or the link ended) or the code of the ERROR that ended it."""
        op = _op(request)
        self.streams.labels(op, outcome).inc()
        self.duration.labels(op).observe(time.monotonic() - started)

    def stream_refused(self, request: Request | UnsupportedRequest, code: str) -> None:
        """An OPEN refused at once (``busy``, ``draining``): no backend call, no duration."""
        self.streams.labels(_op(request), code).inc()


def _op(request: Request | UnsupportedRequest) -> str:
    return request.OP if request.OP in OPS else OTHER


class _Live(Collector):
    def __init__(self, metrics: AgentMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        yield GaugeMetricFamily(
            "llmtunnel_agent_tunnel_connected",
            "Tunnels to the edge logged in now (1, or one per edge node, PROTOCOL.md §11)",
            value=len(m.sessions),
        )
        yield GaugeMetricFamily(
            "llmtunnel_agent_streams_in_flight",
            "Streams the agent is serving",
            value=sum(session.in_flight for session in m.sessions),
        )
        yield GaugeMetricFamily(
            "llmtunnel_agent_backend_up",
            "1 while the backend (Ollama) answers, as last checked (PROTOCOL.md §5)",
            value=int(m.backend_up),
        )
        for unit, received, sent in m.traffic.totals():
            family = CounterMetricFamily(
                f"llmtunnel_agent_tunnel_{unit}",
                f"Tunnel {unit} after login; in: from the edge",
                labels=["direction"],
            )
            family.add_metric(["in"], received)
            family.add_metric(["out"], sent)
            yield family


@dataclass(slots=True)
class MetricsListener:
    runner: web.AppRunner
    port: int

    async def stop(self) -> None:
        await self.runner.cleanup()


class MetricsListenFailed(Exception):
    """The metrics address cannot be listened on."""


async def serve_metrics(metrics: AgentMetrics, host: str, port: int) -> MetricsListener:
    """``GET /metrics`` at ``http://host:port`` until ``stop()`` (nothing else is served);
    ``MetricsListenFailed`` naming the address when it cannot be listened on."""
    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry, disable_compression=True))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise MetricsListenFailed(f"cannot serve metrics on {host}:{port}: {exc}") from exc
    bound: int = runner.addresses[0][1]
    return MetricsListener(runner, bound)
