"""Scenarios (a)-(d): closed-loop load on one peer at a time, and what it cost each process.

Each simulated user has its own kept-alive connection, opened and warmed (one small request)
before the clock starts, so the figures time requests, not handshakes. The users start together
and each sends its next request as soon as the last one ended: for a number of requests, or
until a deadline (the requests running then are finished and counted, and the elapsed time runs
to the last of them). Every response must be a 200 with exactly the tokens asked for; anything
else is counted as an error and the first one is kept to print.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field

from tests.bench.client import Connection, ResponseFailed, Target, connect
from tests.bench.procs import Proc, box_busy

PATH = "/v1/chat/completions"
STATS = b"GET /_source/stats HTTP/1.1\r\nHost: source\r\n\r\n"
REQUEST_TIMEOUT = 120.0


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    concurrency: int
    tokens: int
    model: str
    stream: bool
    requests: int = 0  # per user, when the run is a number of requests
    seconds: float = 0.0  # otherwise, how long users keep sending
    warmup: int = 1  # requests per user before the clock starts
    gaps: bool = False


def scenarios(quick: bool) -> list[Scenario]:
    return [
        Scenario(
            "a",
            "C=1, 32 tokens, streamed, as fast as possible",
            1,
            32,
            "fast",
            True,
            requests=100 if quick else 500,
            warmup=20,
        ),
        Scenario(
            "b",
            "C=64, 512 tokens, streamed, as fast as possible",
            64,
            512,
            "fast",
            True,
            seconds=2 if quick else 10,
        ),
        Scenario(
            "c",
            "C=256, 64 tokens, streamed, 10 ms per token",
            256,
            64,
            "delay-10ms",
            True,
            requests=1 if quick else 4,
            gaps=True,
        ),
        Scenario(
            "d",
            "C=32, 16 tokens, not streamed, as fast as possible",
            32,
            16,
            "fast",
            False,
            seconds=2 if quick else 10,
        ),
    ]


def pct(values: list[float], q: float) -> float:
    """The nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Measurement:
    scenario: str
    peer: str
    round: int
    seconds: float = 0.0
    requests: int = 0
    tokens: int = 0
    events: int = 0  # server-sent events that carried tokens
    errors: int = 0
    failure: str = ""
    ttft: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds during the run
    others: float = 0.0  # CPU seconds the rest of the machine used meanwhile
    source_connections: int = 0  # connections the source accepted meanwhile
    source_requests: int = 0  # requests it answered
    rss: dict[str, int] = field(default_factory=dict)  # KiB after the run
    hwm: dict[str, int] = field(default_factory=dict)  # KiB, peak since the process started

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def cpu_per_million_tokens(self, name: str) -> float:
        return self.cpu.get(name, 0.0) / self.tokens * 1e6 if self.tokens else float("nan")

    def line(self) -> str:
        ms = 1000
        text = (
            f"{self.requests} requests in {self.seconds:.2f} s: {self.tokens_per_second:,.0f}"
            f" tokens/s, {self.requests_per_second:,.0f} requests/s;"
        )
        if self.ttft:
            text += (
                f" TTFT p50 {pct(self.ttft, 0.5) * ms:.2f} ms p99 {pct(self.ttft, 0.99) * ms:.2f}"
                " ms;"
            )
        else:
            text += f" total p50 {pct(self.total, 0.5) * ms:.2f} ms;"
        if self.gaps:
            gap50, gap99 = pct(self.gaps, 0.5) * ms, pct(self.gaps, 0.99) * ms
            text += f" gap p50 {gap50:.1f} ms p99 {gap99:.1f} ms;"
        if self.events:
            text += f" {self.tokens / self.events:.1f} tokens per event;"
        if self.source_connections:
            text += f" {self.source_connections} new connections to the source;"
        busy = ", ".join(f"{name} {cpu / self.seconds:.0%}" for name, cpu in self.cpu.items())
        text += f"\n        CPU: {busy}; everything else {self.others / self.seconds:.0%}"
        if self.errors:
            text += f"\n        {self.errors} ERRORS, the first: {self.failure}"
        return text


def _body(model: str, tokens: int, stream: bool) -> dict[str, object]:
    body: dict[str, object] = {
        "model": model,
        "messages": [{"role": "user", "content": f"Tell me about tunnels tokens={tokens}"}],
        "stream": stream,
    }
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


async def _open(target: Target, count: int) -> list[Connection]:
    # Handshakes 32 at a time: a burst beyond the listen backlogs is not what is measured.
    limit = asyncio.Semaphore(32)

    async def one() -> Connection:
        async with limit, asyncio.timeout(30):
            return await connect(target)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def _source_stats(connection: Connection | None) -> dict[str, int]:
    if connection is None:
        return {}
    reply = await connection.request(STATS, keep=True)
    stats: dict[str, int] = json.loads(reply.body)
    return stats


async def run(
    target: Target,
    scenario: Scenario,
    procs: list[Proc],
    round_number: int,
    source: Target | None = None,
) -> Measurement:
    """One scenario on one peer; ``procs`` are measured during it (and this process), and the
    ``source``'s counters if given."""
    result = Measurement(scenario.key, target.name, round_number)
    data = target.request(PATH, _body(scenario.model, scenario.tokens, scenario.stream))
    warm = target.request(PATH, _body("fast", 4, scenario.stream))
    connections = await _open(target, scenario.concurrency)
    counter = await connect(source) if source else None
    try:
        for _ in range(scenario.warmup):
            await asyncio.gather(*(_warm(c, warm) for c in connections))
        counted = await _source_stats(counter)
        before = {p.name: p.cpu() for p in procs}
        client_before, box_before = time.process_time(), box_busy()
        started = time.perf_counter()
        deadline = started + scenario.seconds if scenario.seconds else None
        await asyncio.gather(
            *(
                _user(target, connections, i, data, scenario, deadline, result)
                for i in range(len(connections))
            )
        )
        result.seconds = time.perf_counter() - started
        result.cpu = {p.name: p.cpu() - before[p.name] for p in procs}
        result.cpu["client"] = time.process_time() - client_before
        result.others = max(0.0, box_busy() - box_before - sum(result.cpu.values()))
        if counter:
            after = await _source_stats(counter)
            result.source_connections = after["connections"] - counted["connections"]
            result.source_requests = after["requests"] - counted["requests"]
        result.rss = {p.name: p.rss_kib() for p in procs}
        result.hwm = {p.name: p.hwm_kib() for p in procs}
    finally:
        for connection in connections:
            connection.close()
        if counter:
            counter.close()
    return result


async def _warm(connection: Connection, data: bytes) -> None:
    async with asyncio.timeout(REQUEST_TIMEOUT):
        reply = await connection.request(data)
    if reply.status != 200:
        raise RuntimeError(f"warm-up answered {reply.status}: {reply.body[:300]!r}")


async def _user(
    target: Target,
    connections: list[Connection],
    index: int,
    data: bytes,
    scenario: Scenario,
    deadline: float | None,
    result: Measurement,
) -> None:
    done = 0
    while (deadline is None and done < scenario.requests) or (
        deadline is not None and time.perf_counter() < deadline
    ):
        done += 1
        connection = connections[index]
        try:
            if connection.closed or not connection.reusable:
                connection = connections[index] = await connect(target)
            async with asyncio.timeout(REQUEST_TIMEOUT):
                reply = await connection.request(data, scenario.gaps)
        except (ResponseFailed, OSError, TimeoutError) as exc:
            result.errors += 1
            result.failure = result.failure or f"{type(exc).__name__}: {exc}"
            connection.close()
            await asyncio.sleep(0.1)
            continue
        if reply.status != 200 or reply.tokens != scenario.tokens:
            result.errors += 1
            result.failure = result.failure or (
                f"status {reply.status}, {reply.tokens} tokens: {reply.body[:300]!r}"
            )
            continue
        result.requests += 1
        result.tokens += reply.tokens
        result.total.append(reply.total)
        if scenario.stream:
            result.ttft.append(reply.ttft)
        result.gaps.extend(reply.gaps)
        if scenario.stream:
            result.events += max(0, reply.events - 4)  # role, finish, usage and [DONE] carry none


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
