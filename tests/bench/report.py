"""The summary tables: each figure the median of the rounds, next to direct's."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from tests.bench.scenarios import Measurement, Scenario, pct

PROXIES = ("nginx", "edge", "agent")  # the processes a request crosses that direct skips


@dataclass(frozen=True)
class Metric:
    scenario: str
    label: str
    value: Callable[[Measurement], float]
    unit: str  # "ms", "/s", or "" for a plain number
    compare: str  # "diff": shown as +x over direct; "ratio": as xx direct; "" for neither


def _ms(values: Callable[[Measurement], list[float]], q: float) -> Callable[[Measurement], float]:
    return lambda m: pct(values(m), q) * 1000


def _per_event(m: Measurement) -> float:
    return m.tokens / m.events if m.events else float("nan")


def _dials(m: Measurement) -> float:
    return m.source_connections / m.requests if m.requests else float("nan")


METRICS = (
    Metric("a", "TTFT p50", _ms(lambda m: m.ttft, 0.5), "ms", "diff"),
    Metric("a", "total p50", _ms(lambda m: m.total, 0.5), "ms", "diff"),
    Metric("a", "tokens per event", _per_event, "", ""),
    Metric("b", "tokens/s", lambda m: m.tokens_per_second, "/s", "ratio"),
    Metric("b", "TTFT p50", _ms(lambda m: m.ttft, 0.5), "ms", "diff"),
    Metric("b", "tokens per event", _per_event, "", ""),
    Metric("c", "TTFT p99", _ms(lambda m: m.ttft, 0.99), "ms", "diff"),
    Metric("c", "inter-token gap p99", _ms(lambda m: m.gaps, 0.99), "ms", "diff"),
    Metric("c", "tokens per event", _per_event, "", ""),
    Metric("c", "new connections to the source per request", _dials, "", ""),
    Metric("d", "requests/s", lambda m: m.requests_per_second, "/s", "ratio"),
    Metric("d", "new connections to the source per request", _dials, "", ""),
)


@dataclass
class IdleResult:
    agents: int
    before_kib: int
    after_kib: int
    edge_cpu: float  # share of one core while they idle
    host_kib: int  # the agents' own process

    @property
    def per_agent_kib(self) -> float:
        return (self.after_kib - self.before_kib) / self.agents


def _number(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit == "ms":
        digits = 2 if value < 10 else 1 if value < 100 else 0
        return f"{value:,.{digits}f} ms"
    if not unit:
        return f"{value:,.2f}" if value < 10 else f"{value:,.1f}"
    return f"{value:,.0f}"


def _median(results: list[Measurement], metric: Metric, peer: str) -> float:
    values = [metric.value(m) for m in results if m.scenario == metric.scenario and m.peer == peer]
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def _cell(value: float, direct: float, metric: Metric, is_direct: bool) -> str:
    text = _number(value, metric.unit)
    if is_direct or math.isnan(value) or math.isnan(direct):
        return text
    if metric.compare == "diff":
        return (
            f"{text} (+{value - direct:,.2f})"
            if value >= direct
            else f"{text} ({value - direct:,.2f})"
        )
    if metric.compare == "ratio" and direct:
        return f"{text} ({value / direct:.2f}x)"
    return text


def table(
    results: list[Measurement],
    scenarios: list[Scenario],
    peers: list[str],
    idle: IdleResult | None,
) -> list[str]:
    titles = {s.key: s.title for s in scenarios}
    peers = peers or ["llmtunnel"]
    lines = [
        "| scenario | " + " | ".join(peers) + " |",
        "| --- |" + " --- |" * len(peers),
    ]
    for metric in METRICS:
        if metric.scenario not in titles:
            continue
        direct = _median(results, metric, "direct")
        cells = [
            _cell(_median(results, metric, peer), direct, metric, peer == "direct")
            for peer in peers
        ]
        lines.append(
            f"| ({metric.scenario}) {titles[metric.scenario]}: {metric.label} | "
            + " | ".join(cells)
            + " |"
        )
    errors = sum(m.errors for m in results)
    busy = [m for m in results if m.seconds and m.others / m.seconds > 0.25]
    if idle:
        cells = ["" for _ in peers]
        cells[-1] = f"{idle.per_agent_kib:,.0f} KiB of edge RSS each"
        lines.append(f"| (e) {idle.agents:,} idle agents on one edge | " + " | ".join(cells) + " |")
    if errors:
        lines.append(f"\n{errors} requests failed (see the rounds above)")
    if busy:
        lines.append(
            f"\nDuring {len(busy)} of {len(results)} runs other processes used more than a"
            ' quarter of a core ("everything else" below): those figures are noisy.'
        )
    return lines


def cpu_table(results: list[Measurement], scenarios: list[Scenario]) -> list[str]:
    """CPU seconds per million relayed tokens, by process, median of the rounds."""

    def per_million(key: str, peer: str, name: str) -> float:
        values = [
            m.cpu_per_million_tokens(name)
            for m in results
            if m.scenario == key and m.peer == peer and name in m.cpu
        ]
        return statistics.median(values) if values else float("nan")

    lines = [
        "| CPU s per million tokens | source (direct) | nginx | edge | agent | edge ÷ nginx"
        " | edge + agent ÷ nginx | edge (openai) | agent (openai) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for scenario in scenarios:
        source = per_million(scenario.key, "direct", "source")
        nginx = per_million(scenario.key, "nginx", "nginx")
        edge = per_million(scenario.key, "llmtunnel", "edge")
        agent = per_million(scenario.key, "llmtunnel", "agent")
        ratio = edge / nginx if nginx and not math.isnan(nginx) else float("nan")
        both = (edge + agent) / nginx if nginx and not math.isnan(nginx) else float("nan")
        # The OpenAI-compatible path: the same edge, its own agent (tests/bench/__main__.py).
        openai_edge = per_million(scenario.key, "openai", "edge")
        openai_agent = per_million(scenario.key, "openai", "agent")
        lines.append(
            f"| ({scenario.key}) {scenario.title} | {_seconds(source)} | {_seconds(nginx)}"
            f" | {_seconds(edge)} | {_seconds(agent)} | {_times(ratio)} | {_times(both)}"
            f" | {_seconds(openai_edge)} | {_seconds(openai_agent)} |"
        )
    return lines


def _seconds(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f} s"


def _times(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.1f}x"


def busy_table(
    results: list[Measurement], scenarios: list[Scenario], peers: list[str]
) -> list[str]:
    """How busy each process was during the run (share of one core), median of the rounds:
    a process near 100 % is what bounds that figure."""
    lines = [
        "| CPU busy (one core = 100 %) | " + " | ".join(peers) + " |",
        "| --- |" + " --- |" * len(peers),
    ]
    for scenario in scenarios:
        cells = []
        for peer in peers:
            runs = [m for m in results if m.scenario == scenario.key and m.peer == peer]
            if not runs:
                cells.append("-")
                continue
            names = list(runs[0].cpu)
            shares = {
                name: statistics.median(m.cpu.get(name, 0.0) / m.seconds for m in runs if m.seconds)
                for name in names
            }
            shares["everything else"] = statistics.median(
                m.others / m.seconds for m in runs if m.seconds
            )
            cells.append(", ".join(f"{name} {share:.0%}" for name, share in shares.items()))
        lines.append(f"| ({scenario.key}) | " + " | ".join(cells) + " |")
    return lines


def memory_table(results: list[Measurement], scenarios: list[Scenario]) -> list[str]:
    """Resident memory of each process after each scenario (the largest of the rounds), and its
    peak over the whole run."""
    names = [n for n in ("nginx", "edge", "agent", "source") if any(n in m.rss for m in results)]
    lines = ["| RSS, MiB | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for scenario in scenarios:
        cells = []
        for name in names:
            values = [m.rss[name] for m in results if m.scenario == scenario.key and name in m.rss]
            cells.append(f"{max(values) / 1024:,.1f}" if values else "-")
        lines.append(f"| after ({scenario.key}) | " + " | ".join(cells) + " |")
    peaks = []
    for name in names:
        values = [m.hwm[name] for m in results if name in m.hwm]
        peaks.append(f"{max(values) / 1024:,.1f}" if values else "-")
    lines.append("| peak (VmHWM) | " + " | ".join(peaks) + " |")
    return lines


def rounds_table(results: list[Measurement], peers: list[str], rounds: int) -> list[str]:
    """Every round's figure, for the spread behind the medians."""
    lines = [
        "| figure | peer | " + " | ".join(f"round {r + 1}" for r in range(rounds)) + " |",
        "| --- | --- |" + " --- |" * rounds,
    ]
    for metric in METRICS:
        if not any(m.scenario == metric.scenario for m in results):
            continue
        for peer in peers:
            cells = []
            for r in range(rounds):
                found = [
                    metric.value(m)
                    for m in results
                    if m.scenario == metric.scenario and m.peer == peer and m.round == r
                ]
                cells.append(_number(found[0], metric.unit) if found else "-")
            lines.append(
                f"| ({metric.scenario}) {metric.label} | {peer} | " + " | ".join(cells) + " |"
            )
    return lines
