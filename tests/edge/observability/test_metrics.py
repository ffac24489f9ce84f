"""The edge's metrics on their own (edge/observability/metrics.py, live.py): what one request's
end counts, what a scrape reads from the registry and the recorder. The e2e tests scrape them
over real sockets (tests/e2e/test_metrics.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from prometheus_client import generate_latest

from edge.agents.registry import Registry
from edge.audit import Recorder, RequestRecord
from edge.observability.metrics import EdgeMetrics
from edge.store import StoreUnavailable, Tenant
from llmtunnel.tunnel import Traffic
from protocol import End
from tests.metrics_scrape import Scrape


@dataclass(eq=False)
class Session:
    machine_id: str
    tenant_id: str
    machine_name: str = "gpu"
    in_flight: int = 0
    accepting: bool = True
    backend_down: str | None = None
    rtt: float | None = None
    max_concurrency: int = 4
    models: dict[str, Any] = field(default_factory=dict)


class Tenants:
    def __init__(self, *known: Tenant, down: bool = False) -> None:
        self.known = {t.id: t for t in known}
        self.down = down

    async def by_id(self, tenant_id: str) -> Tenant | None:
        if self.down:
            raise StoreUnavailable("down")
        return self.known.get(tenant_id)


def _metrics(*tenants: Tenant, down: bool = False) -> tuple[EdgeMetrics, Any]:
    machines: Registry[Any] = Registry()
    store: Any = SimpleNamespace(tenants=Tenants(*tenants, down=down))  # all the metrics read
    return EdgeMetrics(machines, Recorder(store), Traffic(), store), machines


def _scrape(metrics: EdgeMetrics) -> Scrape:
    return Scrape(generate_latest(metrics.registry).decode())


def _served(model: str = "m", tenant: str = "acme") -> RequestRecord:
    record = RequestRecord("POST /v1/chat/completions", None, None)
    record.route, record.tenant_id, record.tenant_slug = "POST /v1/chat/completions", "t1", tenant
    record.model, record.machine = model, "gpu-1"
    record.first_output = record.started + 0.25
    record.end = End(1, "stop", 7, 11, {})
    return record


def test_a_served_request_counts_once_with_its_tokens_and_times() -> None:
    metrics, _ = _metrics()
    metrics.request_ended(_served(), 200)
    metrics.request_ended(_served(), 200)
    found = _scrape(metrics)
    route = {"endpoint": "POST /v1/chat/completions"}
    assert found.value("llmtunnel_edge_requests_total", tenant="acme", status="200", **route) == 2
    assert found.value("llmtunnel_edge_prompt_tokens_total", tenant="acme", model="m") == 14
    assert found.value("llmtunnel_edge_completion_tokens_total", tenant="acme", model="m") == 22
    ttft = "llmtunnel_edge_time_to_first_token_seconds"
    assert found.value(ttft + "_count", model="m") == 2
    assert found.value(ttft + "_sum", model="m") == 0.5
    assert found.value(ttft + "_bucket", model="m", le="0.1") == 0
    assert found.value(ttft + "_bucket", model="m", le="0.5") == 2
    assert found.value("llmtunnel_edge_request_duration_seconds_count", **route) == 2


def test_a_refused_request_counts_without_model_tokens_or_first_token() -> None:
    metrics, _ = _metrics()
    unknown = RequestRecord("GET /v1/whatever/x", None, None)  # no route, no key
    metrics.request_ended(unknown, 404)
    no_machine = RequestRecord("POST /v1/chat/completions", None, None)
    no_machine.route, no_machine.tenant_slug = "POST /v1/chat/completions", "acme"
    no_machine.model = "a-name-the-client-made-up"
    metrics.request_ended(no_machine, 404)
    found = _scrape(metrics)
    requests = "llmtunnel_edge_requests_total"
    assert found.value(requests, tenant="(none)", endpoint="(unmatched)", status="404") == 1
    assert found.total(requests, tenant="acme", status="404") == 1
    assert found.label_values("llmtunnel_edge_time_to_first_token_seconds_count", "model") == set()
    assert "llmtunnel_edge_prompt_tokens_total" not in found.names()
    assert len(metrics.models) == 0  # a client's made-up name took no label value


def test_a_broken_stream_has_a_first_token_but_no_token_counts() -> None:
    metrics, _ = _metrics()
    broken = _served()
    broken.end = None
    metrics.request_ended(broken, 200)
    found = _scrape(metrics)
    assert found.value("llmtunnel_edge_time_to_first_token_seconds_count", model="m") == 1
    assert "llmtunnel_edge_completion_tokens_total" not in found.names()


def test_a_runtime_that_reports_no_usage_counts_no_tokens() -> None:
    metrics, _ = _metrics()
    unreported = _served()
    unreported.end = End(1, "stop", 0, 0, {}, usage_reported=False)
    metrics.request_ended(unreported, 200)
    metrics.request_ended(_served(), 200)
    found = _scrape(metrics)
    assert found.value("llmtunnel_edge_completion_tokens_total", tenant="acme", model="m") == 11
    assert found.value("llmtunnel_edge_time_to_first_token_seconds_count", model="m") == 2


async def test_a_scrape_reads_machines_streams_queues_and_round_trips() -> None:
    acme = Tenant("t1", "acme", 0)
    metrics, machines = _metrics(acme)
    machines.add(Session("m1", "t1", "gpu-1", in_flight=2, rtt=0.004))
    machines.add(Session("m2", "t1", "gpu-2", backend_down="Ollama refused"))
    machines.add(Session("m3", "t2", "gpu-3", accepting=False))  # a tenant the store lacks
    await metrics.learn_tenants()
    found = _scrape(metrics)
    online = "llmtunnel_edge_machines_online"
    assert found.value(online, tenant="acme", state="ready") == 1
    assert found.value(online, tenant="acme", state="degraded") == 1
    assert found.value(online, tenant="t2", state="draining") == 1  # named by id, for now
    assert found.value("llmtunnel_edge_streams_in_flight", tenant="acme") == 2
    assert found.value("llmtunnel_edge_queued_requests", tenant="acme") == 0
    rtt = "llmtunnel_edge_tunnel_rtt_seconds"
    assert found.value(rtt, tenant="acme", machine="gpu-1") == 0.004
    assert found.label_values(rtt, "machine") == {"gpu-1"}  # no PONG yet: no series
    assert found.value("llmtunnel_edge_audit_backlog_events") == 0


async def test_tenants_stay_ids_while_the_store_cannot_name_them() -> None:
    metrics, machines = _metrics(down=True)
    machines.add(Session("m1", "t1"))
    await metrics.learn_tenants()  # does not raise
    assert _scrape(metrics).label_values("llmtunnel_edge_machines_online", "tenant") == {"t1"}
