"""Benchmarks: llmtunnel beside a direct connection to the same simulated Ollama, in one run.

    ./dev bench            # all scenarios
    ./dev bench --quick    # fewer requests, for a smoke run
    ./dev bench --governance   # only (f): what key limits and the audit cost per request

Ollama (simulated), the edge and the agent each run in their own process, as deployed; this
process is the client. Every figure is printed next to the direct figure (client → Ollama) and
as a ratio. Not part of the pass/fail suite: the numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import secrets
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from agent.config import AgentConfig, new_key
from agent.ollama import OllamaBackend
from agent.runner import RunOptions, run_agent
from edge.credentials import KeyHasher, load_or_create_server_secret
from edge.store import SqliteStore
from tests.bench import governance

MODEL = "llama3.2:3b"
Result = tuple[float, float, list[float]]  # time to first token, total, gaps between tokens
Runner = Callable[[str], Awaitable[Result]]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _process(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "llmtunnel", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@dataclass
class Setup:
    ollama: str
    edge: str
    key: str
    tls: ssl.SSLContext
    edge_pid: int


async def _provision(data_dir: Path, machines: int) -> tuple[str, list[AgentConfig]]:
    """Tenant, key and machines written straight into the edge's store before it starts
    (pairing is rate limited per address, and a thousand pairings are not what is measured)."""
    hasher = KeyHasher(load_or_create_server_secret(data_dir / "server.secret"))
    store = SqliteStore(data_dir / "edge.db")
    await store.tenants.create("t_bench", "bench")
    key = "sk-lt-" + secrets.token_urlsafe(24)
    await store.keys.add("k_bench", "t_bench", "bench", key[:12], hasher.digest(key), None)
    configs = []
    for n in range(machines):
        private, public = new_key()
        code = f"code{n}"
        await store.machines.add_pairing_code(
            hasher.digest(code), "t_bench", f"gpu-{n}", time.time() + 600
        )
        await store.machines.redeem_pairing_code(
            hasher.digest(code), f"m_{n}", base64.b64decode(public)
        )
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
        )

        seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        configs.append(
            AgentConfig(
                edge_url="",
                machine_id=f"m_{n}",
                machine_name=f"gpu-{n}",
                tenant="bench",
                private_key=base64.b64encode(seed).decode(),
            )
        )
    await store.close()
    return key, configs


async def _wait_http(url: str, tls: ssl.SSLContext | None = None) -> None:
    async with aiohttp.ClientSession() as http, asyncio.timeout(30):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(url, ssl=tls or False) as response:
                    if response.status < 500:
                        return
            await asyncio.sleep(0.1)


async def direct_stream(http: aiohttp.ClientSession, base: str, prompt: str) -> Result:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": True}
    return await _timed(http.post(base + "/api/chat", json=body), _ollama_token)


async def tunnel_stream(http: aiohttp.ClientSession, base: str, key: str, prompt: str) -> Result:
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": True}
    headers = {"Authorization": f"Bearer {key}"}
    request = http.post(base + "/v1/chat/completions", json=body, headers=headers)
    return await _timed(request, _sse_token)


def _ollama_token(line: bytes) -> bool:
    return bool(line.strip()) and bool(json.loads(line)["message"].get("content"))


def _sse_token(line: bytes) -> bool:
    if not line.startswith(b"data: {"):
        return False
    choices = json.loads(line[6:])["choices"]
    return bool(choices and choices[0]["delta"].get("content"))


async def _timed(request: object, is_token: Callable[[bytes], bool]) -> Result:
    start = time.perf_counter()
    first = 0.0
    gaps: list[float] = []
    last = start
    async with request as response:  # type: ignore[attr-defined]
        async for line in response.content:
            if is_token(line):
                now = time.perf_counter()
                if first:
                    gaps.append(now - last)
                else:
                    first = now - start
                last = now
    return first, time.perf_counter() - start, gaps


async def scenario_a(direct: Runner, tunnel: Runner, count: int) -> tuple[float, float]:
    """Returns the total p50 in seconds, direct and through the tunnel."""
    print(f"(a) one request at a time, 32 tokens, {count} requests")
    medians = {}
    for name, run in (("direct", direct), ("tunnel", tunnel)):
        for _ in range(10):
            await run("warm up tokens=32")
        results = [await run(f"request {i} tokens=32") for i in range(count)]
        ttft = [r[0] * 1000 for r in results]
        total = [r[1] * 1000 for r in results]
        medians[name] = (statistics.median(ttft), statistics.median(total))
        print(
            f"    {name}: TTFT p50 {medians[name][0]:.2f} ms p99 {_pct(ttft, 0.99):.2f} ms;"
            f" total p50 {medians[name][1]:.2f} ms p99 {_pct(total, 0.99):.2f} ms"
        )
    print(
        f"    overhead: TTFT p50 +{medians['tunnel'][0] - medians['direct'][0]:.2f} ms,"
        f" total p50 +{medians['tunnel'][1] - medians['direct'][1]:.2f} ms"
    )
    return medians["direct"][1] / 1000, medians["tunnel"][1] / 1000


async def scenario_b(direct: Runner, tunnel: Runner, streams: int, tokens: int) -> None:
    print(f"(b) {streams} concurrent streams, {tokens} tokens each, backend as fast as it can")
    rates = {}
    for name, run in (("direct", direct), ("tunnel", tunnel)):
        start = time.perf_counter()
        await asyncio.gather(*(run(f"s{i} tokens={tokens}") for i in range(streams)))
        rates[name] = streams * tokens / (time.perf_counter() - start)
        print(f"    {name}: {rates[name]:,.0f} tokens/s")
    print(f"    ratio tunnel/direct: {rates['tunnel'] / rates['direct']:.2f}x")


async def scenario_c(direct: Runner, tunnel: Runner, streams: int) -> None:
    print(f"(c) {streams} concurrent streams at 100 tokens/s each, 200 tokens")
    p99 = {}
    for name, run in (("direct", direct), ("tunnel", tunnel)):
        results = await asyncio.gather(*(run(f"p{i} tokens=200") for i in range(streams)))
        ttft = [r[0] * 1000 for r in results]
        gaps = [g * 1000 for r in results for g in r[2]]
        p99[name] = _pct(ttft, 0.99)
        print(
            f"    {name}: TTFT p50 {statistics.median(ttft):.1f} ms p99 {p99[name]:.1f} ms;"
            f" inter-token gap p50 {statistics.median(gaps):.1f} ms p99 {_pct(gaps, 0.99):.1f} ms"
        )
    print(f"    TTFT p99 overhead: +{p99['tunnel'] - p99['direct']:.1f} ms")


async def scenario_d(direct_url: str, setup: Setup, seconds: float) -> None:
    print(f"(d) non-streaming small requests, concurrency 32, {seconds:g} s each")
    rates = {}
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "hi tokens=8"}],
    }
    targets: dict[str, tuple[str, dict[str, object], dict[str, str]]] = {
        "direct": (direct_url + "/api/chat", {**body, "stream": False}, {}),
        "tunnel": (
            setup.edge + "/v1/chat/completions",
            body,
            {"Authorization": f"Bearer {setup.key}"},
        ),
    }
    connector = aiohttp.TCPConnector(limit=64, ssl=setup.tls)
    async with aiohttp.ClientSession(connector=connector) as http:
        for name, (url, payload, headers) in targets.items():
            deadline = time.perf_counter() + seconds
            counts = await asyncio.gather(
                *(_requests_until(http, url, payload, headers, deadline) for _ in range(32))
            )
            done = sum(counts)
            rates[name] = done / seconds
            print(f"    {name}: {rates[name]:,.0f} requests/s")
    print(f"    ratio tunnel/direct: {rates['tunnel'] / rates['direct']:.2f}x")


async def _requests_until(
    http: aiohttp.ClientSession,
    url: str,
    payload: dict[str, object],
    headers: dict[str, str],
    deadline: float,
) -> int:
    done = 0
    while time.perf_counter() < deadline:
        async with http.post(url, json=payload, headers=headers) as response:
            await response.read()
            assert response.status == 200
        done += 1
    return done


class _IdleBackend(OllamaBackend):
    """Idle agents only need a model list; asking Ollama a thousand times is not measured."""

    async def discover(self) -> list[dict[str, object]]:
        return [{"name": MODEL, "capabilities": ["completion"]}]


async def scenario_e(setup: Setup, configs: list[AgentConfig]) -> None:
    print(f"(e) {len(configs)} idle agents connected to one edge")
    before = _rss_kib(setup.edge_pid)
    backend = _IdleBackend(setup.ollama)
    options = RunOptions(model_refresh=3600)
    tasks = [asyncio.create_task(run_agent(c, backend, options)) for c in configs]
    try:
        async with aiohttp.ClientSession() as http, asyncio.timeout(300):
            while True:
                async with http.get(
                    setup.edge + "/v1/models",
                    headers={"Authorization": f"Bearer {setup.key}"},
                    ssl=setup.tls,
                ) as response:
                    await response.read()
                await asyncio.sleep(1)
                online = sum(1 for t in tasks if not t.done())
                if _connected(setup) >= len(configs) or online == 0:
                    break
        await asyncio.sleep(2)
        after = _rss_kib(setup.edge_pid)
        per_agent = (after - before) / len(configs)
        print(
            f"    edge RSS {before / 1024:.1f} MiB → {after / 1024:.1f} MiB:"
            f" {per_agent:.1f} KiB per agent"
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _connected(setup: Setup) -> int:
    # Established TCP connections to the edge's port, counted from /proc (the edge side).
    port = int(setup.edge.rsplit(":", 1)[1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port and fields[3] == "01":
            count += 1
    return count


async def main(quick: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "edge"
        data_dir.mkdir(mode=0o700)
        idle_agents = 200 if quick else 1000
        key, configs = await _provision(data_dir, 1 + idle_agents)
        ollama_port, fast_port, edge_port = _free_port(), _free_port(), _free_port()
        paced = f"http://127.0.0.1:{ollama_port}"
        fast = f"http://127.0.0.1:{fast_port}"
        edge = f"https://localhost:{edge_port}"
        with (
            _process("sim-ollama", "--port", str(fast_port)),
            _process("sim-ollama", "--port", str(ollama_port), "--tokens-per-second", "100"),
            _process(
                "edge", "serve", "--domain", "bench.test", "--listen", f"127.0.0.1:{edge_port}",
                "--data-dir", str(data_dir), "--self-signed",
            ) as edge_process,
        ):  # fmt: skip
            await _wait_http(fast + "/api/version")
            await _wait_http(paced + "/api/version")
            ca = data_dir / "tls" / "ca.pem"
            async with asyncio.timeout(30):
                while not ca.exists():
                    await asyncio.sleep(0.1)
            tls = ssl.create_default_context(cafile=str(ca))
            await _wait_http(edge + "/healthz", tls)
            setup = Setup(fast, edge, key, tls, edge_process.pid)
            for c in configs:
                c.edge_url, c.ca_file = edge, str(ca)
            agent_file = Path(tmp) / "agent.json"
            from agent.config import save

            save(configs[0], agent_file)
            await _run_scenarios(setup, fast, paced, agent_file, configs[1:], quick)


async def _run_scenarios(
    setup: Setup, fast: str, paced: str, agent_file: Path, idle: list[AgentConfig], quick: bool
) -> None:
    request_p50: tuple[float | None, float | None] = (None, None)
    connector = aiohttp.TCPConnector(limit=1024, ssl=setup.tls)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(600)
    ) as http:
        for ollama, label in ((fast, "fast"), (paced, "paced")):
            with _process(
                "agent", "run", "--config", str(agent_file), "--ollama", ollama,
                "--max-concurrency", "1024",
            ):  # fmt: skip
                await _wait_models(http, setup)

                async def direct(prompt: str, ollama: str = ollama) -> Result:
                    return await direct_stream(http, ollama, prompt)

                async def tunnel(prompt: str) -> Result:
                    return await tunnel_stream(http, setup.edge, setup.key, prompt)

                if label == "fast":
                    request_p50 = await scenario_a(direct, tunnel, 100 if quick else 500)
                    await scenario_b(direct, tunnel, 64, 128 if quick else 512)
                    await scenario_d(ollama, setup, 3 if quick else 10)
                else:
                    await scenario_c(direct, tunnel, 64 if quick else 256)
    await scenario_e(setup, idle)
    governance.report(await governance.measure(2000 if quick else 20_000), *request_p50)


async def _wait_models(http: aiohttp.ClientSession, setup: Setup) -> None:
    headers = {"Authorization": f"Bearer {setup.key}"}
    async with asyncio.timeout(30):
        while True:
            async with http.get(setup.edge + "/v1/models", headers=headers) as response:
                if (await response.json())["data"]:
                    return
            await asyncio.sleep(0.1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument(
        "--governance", action="store_true", help="only (f), the per-request cost of key limits"
    )
    arguments = parser.parse_args()
    if arguments.governance:
        governance.report(asyncio.run(governance.measure(20_000)), None, None)
    else:
        asyncio.run(main(arguments.quick))
