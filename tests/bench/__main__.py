"""Benchmarks: llmtunnel beside a direct connection to the same simulated Ollama, in one run.

    ./dev bench            # all scenarios
    ./dev bench --quick    # fewer requests, for a smoke run

Every figure is printed next to the direct figure and as a ratio. Not part of the pass/fail suite:
the numbers depend on the machine; the ratios are what to compare between changes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from tests.e2e.stack import Stack, running_stack

CHAT_MODEL = "llama3.2:3b"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _ollama_stream(
    http: httpx.AsyncClient, url: str, prompt: str
) -> tuple[float, float, int]:
    """Direct: time to first token, total time, tokens."""
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": prompt}], "stream": True}
    start = time.perf_counter()
    first = 0.0
    tokens = 0
    async with http.stream("POST", url + "/api/chat", json=body) as response:
        async for line in response.aiter_lines():
            chunk = json.loads(line)
            if chunk["message"].get("content"):
                tokens += 1
                first = first or time.perf_counter() - start
    return first, time.perf_counter() - start, tokens


async def _tunnel_stream(
    http: httpx.AsyncClient, url: str, key: str, prompt: str
) -> tuple[float, float, int]:
    """Through the edge and the agent, OpenAI SSE: same three figures."""
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": prompt}], "stream": True}
    start = time.perf_counter()
    first = 0.0
    pieces = 0
    headers = {"Authorization": f"Bearer {key}"}
    async with http.stream("POST", url + "/v1/chat/completions", json=body, headers=headers) as r:
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            delta = json.loads(line[6:])["choices"]
            if delta and delta[0]["delta"].get("content"):
                pieces += 1
                first = first or time.perf_counter() - start
    return first, time.perf_counter() - start, pieces


Runner = Callable[[str], Awaitable[tuple[float, float, int]]]


async def sequential(direct: Runner, tunnel: Runner, count: int) -> None:
    print(f"(a) one request at a time, 32 tokens, {count} requests")
    for name, run in (("direct", direct), ("tunnel", tunnel)):
        for _ in range(5):
            await run("warm up tokens=32")
        results = [await run(f"request {i} tokens=32") for i in range(count)]
        ttft = [r[0] * 1000 for r in results]
        total = [r[1] * 1000 for r in results]
        print(
            f"    {name}: TTFT p50 {statistics.median(ttft):.2f} ms p99 {_pct(ttft, 0.99):.2f} ms;"
            f" total p50 {statistics.median(total):.2f} ms p99 {_pct(total, 0.99):.2f} ms"
        )
        if name == "direct":
            base = (statistics.median(ttft), statistics.median(total))
    print(
        f"    overhead: TTFT p50 +{statistics.median(ttft) - base[0]:.2f} ms,"
        f" total p50 +{statistics.median(total) - base[1]:.2f} ms"
    )


async def concurrent(direct: Runner, tunnel: Runner, streams: int, tokens: int) -> None:
    print(f"(b) {streams} concurrent streams, {tokens} tokens each, backend as fast as it can")
    rates = {}
    for name, run in (("direct", direct), ("tunnel", tunnel)):
        start = time.perf_counter()
        results = await asyncio.gather(*(run(f"s{i} tokens={tokens}") for i in range(streams)))
        elapsed = time.perf_counter() - start
        rates[name] = streams * tokens / elapsed
        assert all(r[2] > 0 for r in results)
        print(f"    {name}: {rates[name]:,.0f} tokens/s ({elapsed:.2f} s)")
    print(f"    ratio tunnel/direct: {rates['tunnel'] / rates['direct']:.2f}x")


async def main(quick: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(Path(tmp)) as stack:
            key = await _setup(stack)
            limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
            async with (
                httpx.AsyncClient(timeout=120, limits=limits) as direct_http,
                httpx.AsyncClient(timeout=120, limits=limits, verify=stack.tls()) as tunnel_http,
            ):

                async def direct(prompt: str) -> tuple[float, float, int]:
                    return await _ollama_stream(direct_http, stack.ollama_url, prompt)

                async def tunnel(prompt: str) -> tuple[float, float, int]:
                    return await _tunnel_stream(tunnel_http, stack.edge_url, key, prompt)

                await sequential(direct, tunnel, 50 if quick else 300)
                await concurrent(direct, tunnel, 64, 128 if quick else 512)


async def _setup(stack: Stack) -> str:
    await stack.tenant("bench")
    key = await stack.key("bench")
    await stack.agent("bench", max_concurrency=1024)
    return key


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    asyncio.run(main(parser.parse_args().quick))
