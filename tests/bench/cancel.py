"""Scenario (g): how soon a client going away stops the backend's generation.

A client asks for a long stream (``delay-10ms``, 10,000 tokens), reads the first tokens and drops
its connection; the token source notes when its own connection for that reply is lost
(``time.monotonic()``, one clock for every process on the machine). The figure is the time in
between: through llmtunnel, the edge noticing, CANCEL through the tunnel and the agent closing
its request to the runtime (docs/PROTOCOL.md §7). The issue's bound is 100 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from tests.bench.client import Connection, Target, connect

STATS = b"GET /_source/stats HTTP/1.1\r\nHost: source\r\n\r\n"
POLL = 0.002  # seconds between looks at the source's stats
TIMEOUT = 5.0


async def _stats(counter: Connection) -> dict[str, float]:
    reply = await counter.request(STATS, keep=True)
    stats: dict[str, float] = json.loads(reply.body)
    return stats


async def _read_some(connection: Connection, tokens: int) -> None:
    """Until ``tokens`` tokens arrived (counted by the client as they come)."""
    async with asyncio.timeout(TIMEOUT):
        while connection.tokens_so_far < tokens:
            await asyncio.sleep(POLL)


async def measure(target: Target, source: Target, times: int) -> list[float]:
    """Seconds from each client's close to the source's connection being lost."""
    counter = await connect(source)
    delays: list[float] = []
    try:
        for _ in range(times):
            before = await _stats(counter)
            connection = await connect(target)
            body = {
                "model": "delay-10ms",
                "stream": True,
                "messages": [{"role": "user", "content": "cancel me tokens=10000"}],
            }
            request = target.request("/v1/chat/completions", body)
            reply = asyncio.ensure_future(connection.request(request))
            await _read_some(connection, 3)
            closed_at = time.monotonic()
            assert connection.transport is not None
            connection.transport.abort()
            async with asyncio.timeout(TIMEOUT):
                while (after := await _stats(counter))["aborted"] == before["aborted"]:
                    await asyncio.sleep(POLL)
            delays.append(after["last_aborted_at"] - closed_at)
            reply.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reply
    finally:
        counter.close()
    return delays


def report(delays: dict[str, list[float]]) -> list[str]:
    """The table of (g): per peer, the delay's median and worst, in milliseconds."""
    lines = [
        "| (g) client gone → source request closed | runs | p50 | max |",
        "| --- | --- | --- | --- |",
    ]
    for peer, values in delays.items():
        ordered = sorted(values)
        if ordered:
            p50 = ordered[len(ordered) // 2] * 1000
            lines.append(
                f"| {peer} | {len(ordered)} | {p50:.1f} ms | {ordered[-1] * 1000:.1f} ms |"
            )
    return lines
