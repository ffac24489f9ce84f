"""The edge's metrics that say what is true now, read only when Prometheus scrapes: nothing on
the request path keeps them up to date (a ``prometheus_client`` custom collector).

Machines and their streams are read from the registry, the round trip from each session's last
PONG (PROTOCOL.md §9), frames and bytes from the ``Traffic`` every session adds to, the audit
backlog from the recorder. Tenants are named by slug (ids the metrics have not learnt a slug for
yet are named by id) through the same capped label as the request metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client import Metric

    from edge.agents.registry import Registry
    from edge.audit import Recorder
    from edge.observability.labels import BoundedLabel
    from llmtunnel.tunnel import Traffic

MAX_MACHINE_SERIES = 1000  # machines with a round-trip series; the rest are left out


class TenantNames(Protocol):
    """How tenants are named in labels (``EdgeMetrics``)."""

    tenant_slugs: dict[str, str]
    tenants: BoundedLabel
    models: BoundedLabel


def machine_state(session: Any) -> str:
    """``ready`` (routable), ``degraded`` (its backend does not answer, PROTOCOL.md §5) or
    ``draining`` (it or the edge sent GOAWAY, §10)."""
    if not session.accepting:
        return "draining"
    return "ready" if session.backend_down is None else "degraded"


class LiveCollector(Collector):
    def __init__(
        self, machines: Registry[Any], recorder: Recorder, traffic: Traffic, names: TenantNames
    ) -> None:
        self._machines = machines
        self._recorder = recorder
        self._traffic = traffic
        self._names = names

    def _tenant(self, tenant_id: str) -> str:
        return self._names.tenants(self._names.tenant_slugs.get(tenant_id, tenant_id))

    def collect(self) -> Iterator[Metric]:
        yield from self._sessions()
        queued = GaugeMetricFamily(
            "llmtunnel_edge_queued_requests",
            "Requests waiting for a free slot on a machine, by tenant",
            labels=["tenant"],
        )
        waiting: Counter[str] = Counter()  # two ids past the cap share "(other)": add up
        for tenant_id in self._machines.tenants():  # 0 rather than nothing where machines are
            waiting[self._tenant(tenant_id)] += 0
        for tenant_id, count in self._machines.queued().items():
            waiting[self._tenant(tenant_id)] += count
        for tenant, count in waiting.items():
            queued.add_metric([tenant], count)
        yield queued
        yield from self._tunnel_traffic()
        yield GaugeMetricFamily(
            "llmtunnel_edge_audit_backlog_events",
            "Audit events waiting to be written to the store",
            value=self._recorder.backlog,
        )
        yield CounterMetricFamily(
            "llmtunnel_edge_audit_dropped_events",
            "Audit events dropped: the store refused them, or stayed unwritable too long",
            value=self._recorder.dropped,
        )
        labels = GaugeMetricFamily(
            "llmtunnel_edge_label_values",
            "Distinct values a capped label has taken (past its cap: counted as (other))",
            labels=["label"],
        )
        labels.add_metric(["tenant"], len(self._names.tenants))
        labels.add_metric(["model"], len(self._names.models))
        yield labels

    def _sessions(self) -> Iterator[Metric]:
        machines = GaugeMetricFamily(
            "llmtunnel_edge_machines_online",
            "Machines with a tunnel open, by tenant and state (ready, degraded, draining)",
            labels=["tenant", "state"],
        )
        streams = GaugeMetricFamily(
            "llmtunnel_edge_streams_in_flight",
            "Streams running on machines, by tenant",
            labels=["tenant"],
        )
        rtt = GaugeMetricFamily(
            "llmtunnel_edge_tunnel_rtt_seconds",
            "Round trip of the last heartbeat PING on each machine's tunnel",
            labels=["tenant", "machine"],
        )
        states: Counter[tuple[str, str]] = Counter()
        in_flight: Counter[str] = Counter()
        series = 0
        for tenant_id in sorted(self._machines.tenants()):
            tenant = self._tenant(tenant_id)
            for session in self._machines.sessions(tenant_id):
                states[tenant, machine_state(session)] += 1
                in_flight[tenant] += session.in_flight
                if session.rtt is not None and series < MAX_MACHINE_SERIES:
                    rtt.add_metric([tenant, session.machine_name], session.rtt)
                    series += 1
        for (tenant, state), count in states.items():
            machines.add_metric([tenant, state], count)
        for tenant, count in in_flight.items():
            streams.add_metric([tenant], count)
        yield from (machines, streams, rtt)

    def _tunnel_traffic(self) -> Iterator[Metric]:
        for unit, received, sent in self._traffic.totals():
            family = CounterMetricFamily(
                f"llmtunnel_edge_tunnel_{unit}",
                f"Tunnel {unit} after login, all machines; in: from the machines",
                labels=["direction"],
            )
            family.add_metric(["in"], received)
            family.add_metric(["out"], sent)
            yield family
