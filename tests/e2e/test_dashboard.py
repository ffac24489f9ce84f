"""The Grafana dashboard in deploy/grafana/ is valid JSON whose every query names metrics and
labels that a real edge and agent expose: scraped here after real requests."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.metrics import AgentMetrics, serve_metrics
from protocol import TunnelLimits
from tests.e2e.stack import running_stack, user
from tests.metrics_scrape import Scrape, scrape

pytestmark = pytest.mark.e2e

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "llmtunnel.json"
METRIC = re.compile(r"\b(?:llmtunnel|process)_[a-z0-9_]+\b")
SELECTOR = re.compile(r"\b((?:llmtunnel|process)_[a-z0-9_]+)\{([^}]*)\}")
MATCHER = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)")
BY = re.compile(r"\bby \(([^)]*)\)")
LEGEND = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
ADDED_BY_PROMETHEUS = {"instance", "job"}


def queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(panel title, expression, legend) of every query, template variables included."""
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["name"], variable["definition"], ""
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"], target.get("legendFormat", "")


def test_the_dashboard_is_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}"
            assert panel["targets"], panel["title"]


async def test_every_query_names_metrics_and_labels_a_real_scrape_has(tmp_path: Path) -> None:
    limits = TunnelLimits(heartbeat_interval=0.2)  # round trips measured within the test
    async with running_stack(tmp_path, limits=limits, metrics_address=("127.0.0.1", 0)) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        agent_metrics = AgentMetrics()
        listener = await serve_metrics(agent_metrics, "127.0.0.1", 0)
        try:
            await stack.agent("acme", metrics=agent_metrics)
            client = stack.openai(key)
            await client.chat.completions.create(model="qwen3:8b", messages=[user("tokens=3")])
            await client.embeddings.create(model="nomic-embed-text", input=["a"])
            assert stack.edge.metrics is not None
            async with asyncio.timeout(5):
                while (
                    "llmtunnel_edge_tunnel_rtt_seconds"
                    not in (edge := await scrape(stack.edge.metrics.port)).names()
                ):
                    await asyncio.sleep(0.05)
            agent = await scrape(listener.port)
        finally:
            await listener.stop()
    scraped = Scrape(edge.text + agent.text)
    exposed = scraped.names()
    dashboard = json.loads(DASHBOARD.read_text())
    checked = 0
    for title, expr, legend in queries(dashboard):
        names = set(METRIC.findall(expr))
        assert names, f"{title}: {expr!r} names no metric"
        assert names <= exposed, f"{title}: {sorted(names - exposed)} are not exposed"
        labels = set().union(*(scraped.labels_of(n) for n in names)) | ADDED_BY_PROMETHEUS
        for name, matchers in SELECTOR.findall(expr):
            used = set(MATCHER.findall(matchers))
            known = scraped.labels_of(name) | ADDED_BY_PROMETHEUS
            assert used <= known, f"{title}: {name} has no label {sorted(used - known)}"
        for group in BY.findall(expr):
            used = {label.strip() for label in group.split(",")}
            assert used <= labels, f"{title}: no label {sorted(used - labels)} to group by"
        missing = set(LEGEND.findall(legend)) - labels
        assert not missing, f"{title}: the legend names {sorted(missing)}"
        checked += 1
    assert checked >= 30
