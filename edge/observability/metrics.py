"""The edge's Prometheus metrics (README "Operating it" lists them with their labels).

Two kinds, so that serving requests costs as little as possible:

- What requests did is counted once per request, when it ends, from its audit record
  (``request_ended``, the recorder's observer): requests by tenant, endpoint and status, tokens
  by tenant and model, the duration and time-to-first-token histograms. Nothing is counted per
  token or per frame here; a label set's child metric is looked up in a dict, not built again.
- What is true now (machines, streams, queues, round trips, tunnel traffic, the audit backlog)
  is read from the registry, the sessions and the recorder only when Prometheus scrapes
  (``edge.observability.live``).

Label values are bounded (``BoundedLabel``): tenants and models are capped per process, the
endpoint is the route (``POST /v1/chat/completions``, ``GET /v1/models/{model}``), never the path,
and the status is one the edge answers with. No key, no secret and no request id is a label.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector

from edge.observability.labels import BoundedLabel
from edge.observability.live import LiveCollector
from edge.store import StoreError

if TYPE_CHECKING:
    from prometheus_client.metrics import MetricWrapperBase

    from edge.agents.registry import Registry
    from edge.audit import Recorder, RequestRecord
    from edge.store import Store
    from llmtunnel.tunnel import Traffic

MAX_TENANTS = 1000  # tenant label values per process; the rest are "(other)"
MAX_MODELS = 200  # model label values per process; the rest are "(other)"
NO_TENANT = "(none)"  # a request no key authenticated
NO_ROUTE = "(unmatched)"  # a path the API has no route for (its 404s, 405s)
# Seconds. A request lasts from milliseconds (a refusal) to minutes (a long stream); a first
# token from milliseconds to the first-token timeout (a model loading, 300 s).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class EdgeMetrics:
    """The edge's metrics in a registry of their own (``registry``), read by ``serve_metrics``."""

    def __init__(
        self, machines: Registry[Any], recorder: Recorder, traffic: Traffic, store: Store
    ) -> None:
        self.registry = CollectorRegistry()
        self._machines = machines
        self._store = store
        self.tenants = BoundedLabel(MAX_TENANTS)
        self.models = BoundedLabel(MAX_MODELS)
        self.tenant_slugs: dict[str, str] = {}  # tenant id → slug, for the live metrics
        r = self.registry
        self.requests = Counter(
            "llmtunnel_edge_requests",
            "API requests that ended, by tenant, endpoint and HTTP status",
            ["tenant", "endpoint", "status"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "llmtunnel_edge_prompt_tokens",
            "Prompt tokens machines reported, by tenant and model",
            ["tenant", "model"],
            registry=r,
        )
        self.completion_tokens = Counter(
            "llmtunnel_edge_completion_tokens",
            "Completion tokens machines reported, by tenant and model",
            ["tenant", "model"],
            registry=r,
        )
        self.duration = Histogram(
            "llmtunnel_edge_request_duration_seconds",
            "API requests from their head to their last byte, by endpoint",
            ["endpoint"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "llmtunnel_edge_time_to_first_token_seconds",
            "From a request's head to the first output a machine sent, by model",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self._children: dict[tuple[Any, ...], Any] = {}
        r.register(LiveCollector(machines, recorder, traffic, self))
        ProcessCollector(registry=r)

    def _child(self, metric: MetricWrapperBase, *values: str) -> Any:
        # labels() hashes and validates its arguments and takes a lock on every call: a dict
        # of the children already made is several times cheaper per request.
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def request_ended(self, record: RequestRecord, status: int) -> None:
        """Count a request that ended with ``status`` (the recorder calls it for each one)."""
        now = time.monotonic()
        slug = record.tenant_slug
        tenant = NO_TENANT if slug is None else self.tenants(slug)
        if slug is not None and record.tenant_id is not None:
            self.tenant_slugs[record.tenant_id] = slug
        endpoint = record.route or NO_ROUTE
        self._child(self.requests, tenant, endpoint, str(status)).inc()
        self._child(self.duration, endpoint).observe(now - record.started)
        if record.model is None or record.machine is None:
            return  # no machine took it: no model worth a label, no tokens, no first token
        model = self.models(record.model)
        if record.first_output is not None:
            self._child(self.ttft, model).observe(record.first_output - record.started)
        end = record.end
        # The counts the machine reported: a broken stream has none, and a runtime that reports
        # no usage sends zeros (END's usage_reported), which are not counts (PROTOCOL.md §7).
        if end is not None and end.usage_reported:
            self._child(self.prompt_tokens, tenant, model).inc(end.prompt_tokens)
            self._child(self.completion_tokens, tenant, model).inc(end.completion_tokens)

    async def learn_tenants(self) -> None:
        """Look up the slugs of tenants whose machines are online but that no request named
        yet, before a scrape names them (a store that cannot answer leaves them as ids)."""
        for tenant_id in self._machines.tenants():
            if tenant_id in self.tenant_slugs:
                continue
            try:
                tenant = await self._store.tenants.by_id(tenant_id)
            except StoreError:
                return
            if tenant is not None:
                self.tenant_slugs[tenant_id] = tenant.slug
