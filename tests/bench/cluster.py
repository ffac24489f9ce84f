"""Several edge nodes: throughput through one node and through three, what a node costs per idle
agent and per stream, and how long failing over takes.

    python -m tests.bench.cluster [--quick]

Throwaway PostgreSQL and Redis servers (tests/postgres_server.py, tests/redis_server.py), the
token source (tests/bench/source.py), ``llmtunnel edge serve --redis`` nodes and ``llmtunnel
agent run`` processes, all on loopback; this process is the client.

    (h) 32 users, 16-token replies not streamed, as fast as possible, and 64 users of 512-token
        streams: one node, then three nodes with the users spread over them; three agents, each
        holding a tunnel to one node (one node) or to two (three nodes)
    (i) idle agents joining three nodes, two tunnels each: each node's RSS per tunnel it holds
    (j) 256 streams at 10 ms a token over three nodes: each node's RSS while they run, per stream,
        and its CPU per stream
    (k) kill -9 one node under load: failed requests sent after it, and how long until every
        machine holds two tunnels again

Not part of the pass/fail suite. On a small machine every process shares the same cores, so
three nodes cannot be faster than one there: the figure that carries over is the CPU each
request costs each process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from agent.config import AgentConfig, new_key, save
from edge.credentials import KeyHasher, load_or_create_server_secret
from edge.store.postgres import PostgresStore
from edge.tls import ensure_self_signed
from tests.bench.client import Target
from tests.bench.procs import Proc, free_port, llmtunnel, started, tail, wait_for_port
from tests.bench.scenarios import Measurement, Scenario, run
from tests.postgres_server import PostgresServer, find_bindir
from tests.redis_server import RedisServer, find_redis_server


@dataclass
class Node:
    index: int
    port: int
    proc: Proc
    process: subprocess.Popen[bytes]

    @property
    def node_id(self) -> str:
        return f"node-{self.index + 1}"


@dataclass
class World:
    tmp: Path
    database_url: str
    redis_url: str
    source_port: int
    cert: Path
    key_file: Path
    ca: Path
    key: str  # the API key
    configs: list[AgentConfig]
    stack: contextlib.ExitStack

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


async def _provision(
    world_dir: Path, database_url: str, machines: int
) -> tuple[str, list[AgentConfig]]:
    hasher = KeyHasher(load_or_create_server_secret(world_dir / "server.secret"))
    store = await PostgresStore.open(database_url)
    await store.tenants.create("t_bench", "bench")
    key = "sk-lt-" + secrets.token_urlsafe(24)
    await store.keys.add("k_bench", "t_bench", "bench", key[:12], hasher.digest(key), None)
    configs = []
    for n in range(machines):
        private, public = new_key()
        code = hasher.digest(f"code{n}")
        await store.machines.add_pairing_code(code, "t_bench", f"gpu-{n}", time.time() + 600)
        await store.machines.redeem_pairing_code(code, f"m_{n}", base64.b64decode(public))
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


def _start_node(world: World, index: int, port: int | None = None) -> Node:
    port = port or free_port()
    data_dir = world.tmp / f"node-{index + 1}"
    data_dir.mkdir(mode=0o700, exist_ok=True)
    secret = world.tmp / "server.secret"
    (data_dir / "server.secret").write_bytes(secret.read_bytes())
    os.chmod(data_dir / "server.secret", 0o600)
    command = llmtunnel(
        "edge", "serve", "--domain", "bench.test", "--listen", f"127.0.0.1:{port}",
        "--data-dir", str(data_dir), "--tls-cert", str(world.cert), "--tls-key",
        str(world.key_file), "--peer-ca-file", str(world.ca), "--node-id", f"node-{index + 1}",
        "--advertise", f"https://localhost:{port}", "--drain-timeout", "2",
    )  # fmt: skip
    env = {
        **os.environ,
        "LLMTUNNEL_DATABASE_URL": world.database_url,
        "LLMTUNNEL_REDIS_URL": world.redis_url,
    }
    with (world.tmp / f"node-{index + 1}.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_for_port(port, process, timeout=60)
    return Node(index, port, Proc(f"edge-{index + 1}", process.pid), process)


def _spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)


def _print_logs(tmp: Path) -> None:
    for log in sorted(tmp.glob("*.log")):
        print(f"--- {log.name}\n{tail(log)}", file=sys.stderr)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _agent(world: World, config: AgentConfig, node: Node, name: str) -> subprocess.Popen[bytes]:
    path = world.tmp / f"{name}.json"
    url = f"https://localhost:{node.port}"
    save(config.model_copy(update={"edge_url": url, "ca_file": str(world.ca)}), path)
    command = llmtunnel(
        "agent", "run", "--config", str(path), "--ollama",
        f"http://127.0.0.1:{world.source_port}", "--max-concurrency", "256",
    )  # fmt: skip
    return _spawn(command, world.tmp / f"{name}.log")


async def _machines(world: World, node: Node) -> dict[str, dict[str, Any]]:
    """The machine list as ``node`` sees it (through the operator key of node 1's data dir)."""
    admin = (world.tmp / "node-1" / "admin.key").read_text().strip()
    url = f"https://localhost:{node.port}/admin/v1/tenants/bench/machines"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, headers={"Authorization": f"Bearer {admin}"}, ssl=world.tls()) as r,
    ):
        return {m["name"]: m for m in (await r.json())["machines"]}


async def _wait_tunnels(
    world: World, nodes: list[Node], names: list[str], each: int, timeout: float = 120
) -> float:
    """Seconds until every node in ``nodes`` sees each machine with ``each`` tunnels."""
    began = time.perf_counter()
    async with asyncio.timeout(timeout):
        while not all([await _sees(world, node, names, each) for node in nodes]):
            await asyncio.sleep(0.1)
    return time.perf_counter() - began


async def _sees(world: World, node: Node, names: list[str], each: int) -> bool:
    try:
        seen = await _machines(world, node)
    except (aiohttp.ClientError, KeyError, ValueError):
        return False
    return all(len(seen.get(name, {}).get("nodes", [])) == each for name in names)


def _target(world: World, node: Node) -> Target:
    return Target(
        node.node_id, "127.0.0.1", node.port, world.tls(), "localhost",
        {"Authorization": f"Bearer {world.key}"},
    )  # fmt: skip


async def _spread(
    world: World, nodes: list[Node], scenario: Scenario, procs: list[Proc]
) -> Measurement:
    """``scenario``'s users spread evenly over ``nodes``, measured as one run."""
    share = replace(scenario, concurrency=max(1, scenario.concurrency // len(nodes)))
    before = {p.name: p.cpu() for p in procs}
    runs = await asyncio.gather(*(run(_target(world, n), share, [], 0) for n in nodes))
    total = Measurement(scenario.key, f"{len(nodes)} node(s)", 0)
    total.seconds = max(r.seconds for r in runs)
    total.requests = sum(r.requests for r in runs)
    total.tokens = sum(r.tokens for r in runs)
    total.errors = sum(r.errors for r in runs)
    total.failure = next((r.failure for r in runs if r.failure), "")
    total.cpu = {p.name: p.cpu() - before[p.name] for p in procs}
    return total


def _line(m: Measurement) -> str:
    per_request = {k: v / m.requests * 1000 for k, v in m.cpu.items()} if m.requests else {}
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per_request.items()))
    errors = f", {m.errors} errors ({m.failure})" if m.errors else ""
    return (
        f"{m.requests_per_second:8.0f} requests/s, {m.tokens_per_second:9.0f} tokens/s{errors};"
        f" CPU ms per request: {cpu}"
    )


async def throughput(world: World, quick: bool) -> None:
    seconds = 3.0 if quick else 10.0
    plan = [
        Scenario("d", "C=32, 16 tokens, not streamed", 32, 16, "fast", False, seconds=seconds),
        Scenario("b", "C=64, 512 tokens, streamed", 64, 512, "fast", True, seconds=seconds),
    ]
    results: dict[str, list[Measurement]] = {}
    for count in (1, 3):
        nodes = [_start_node(world, i) for i in range(count)]
        agents = [
            _agent(world, world.configs[i], nodes[i % count], f"agent-{count}-{i}")
            for i in range(3)
        ]
        try:
            await _wait_tunnels(world, nodes, ["gpu-0", "gpu-1", "gpu-2"], min(2, count))
            procs = [n.proc for n in nodes] + [
                Proc(f"agent-{i}", a.pid) for i, a in enumerate(agents)
            ]
            for scenario in plan:
                await _spread(world, nodes, replace(scenario, seconds=1.0), [])  # warm up
                measured = await _spread(world, nodes, scenario, procs)
                results.setdefault(scenario.key, []).append(measured)
                print(f"  (h{scenario.key}) {count} node(s), {scenario.title}: {_line(measured)}")
        finally:
            for process in [*agents, *(n.process for n in nodes)]:
                _stop(process)
    for key, (one, three) in results.items():
        ratio = three.requests_per_second / one.requests_per_second if one.requests else 0
        print(f"  (h{key}) three nodes / one node: {ratio:.2f}x requests/s")


async def idle_and_streams(world: World, quick: bool) -> None:
    idle = 60 if quick else 300
    nodes = [_start_node(world, i) for i in range(3)]
    working = [_agent(world, world.configs[i], nodes[i], f"agent-w{i}") for i in range(3)]
    host: subprocess.Popen[bytes] | None = None
    try:
        await _wait_tunnels(world, nodes, ["gpu-0", "gpu-1", "gpu-2"], 2)
        await asyncio.sleep(2)
        before = {n.node_id: n.proc.rss_kib() for n in nodes}
        idle_dir = world.tmp / "idle"
        idle_dir.mkdir(exist_ok=True)
        for n, config in enumerate(world.configs[3 : 3 + idle]):
            node = nodes[n % 3]
            url = f"https://localhost:{node.port}"
            save(
                config.model_copy(update={"edge_url": url, "ca_file": str(world.ca)}),
                idle_dir / f"{n:05d}.json",
            )
        command = [
            sys.executable,
            "-m",
            "tests.bench.idle",
            str(idle_dir),
            f"http://127.0.0.1:{world.source_port}",
        ]
        host = _spawn(command, world.tmp / "idle.log")
        names = [f"gpu-{n}" for n in range(3, 3 + idle)]
        took = await _wait_tunnels(world, nodes[:1], names, 2, timeout=300)
        await asyncio.sleep(3)
        tunnels = 2 * idle / 3
        for node in nodes:
            grown = node.proc.rss_kib() - before[node.node_id]
            print(
                f"  (i) {node.node_id}: RSS {before[node.node_id] / 1024:.1f} → "
                f"{node.proc.rss_kib() / 1024:.1f} MiB with ~{tunnels:.0f} more idle tunnels:"
                f" {grown / tunnels:.0f} KiB per tunnel"
            )
        print(f"  (i) {idle} idle agents held two tunnels each {took:.1f} s after they started")
        # (j): 256 slow streams over the three nodes, measured while they run.
        scenario = Scenario(
            "c", "C=256, 64 tokens at 10 ms", 256, 64, "delay-10ms", True, requests=1
        )
        rss_before = {n.node_id: n.proc.rss_kib() for n in nodes}
        peak: dict[str, int] = dict(rss_before)

        async def sample() -> None:
            while True:
                for n in nodes:
                    peak[n.node_id] = max(peak[n.node_id], n.proc.rss_kib())
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        measured = await _spread(world, nodes, scenario, [n.proc for n in nodes])
        sampler.cancel()
        per_node = scenario.concurrency / 3
        for node in nodes:
            grown = peak[node.node_id] - rss_before[node.node_id]
            cpu = measured.cpu[node.proc.name] / (measured.requests / 3) * 1000
            print(
                f"  (j) {node.node_id}: +{grown / 1024:.1f} MiB at the peak of ~{per_node:.0f}"
                f" streams: {grown / per_node:.0f} KiB per stream; {cpu:.2f} CPU ms per stream"
                f" (64 tokens)"
            )
        print(f"  (j) {measured.requests} streams, {measured.errors} errors")
    finally:
        if host is not None:
            _stop(host)
        for process in [*working, *(n.process for n in nodes)]:
            _stop(process)


async def failover(world: World) -> None:
    nodes = [_start_node(world, i) for i in range(3)]
    agents = [_agent(world, world.configs[i], nodes[i], f"agent-f{i}") for i in range(3)]
    names = ["gpu-0", "gpu-1", "gpu-2"]
    try:
        await _wait_tunnels(world, nodes, names, 2)
        alive = list(nodes)
        outcomes: list[tuple[float, int]] = []
        stop = asyncio.Event()

        async def user(n: int) -> None:
            body = {"model": "fast", "messages": [{"role": "user", "content": "tokens=16"}]}
            headers = {"Authorization": f"Bearer {world.key}"}
            async with aiohttp.ClientSession() as http:
                for i in range(1_000_000):
                    if stop.is_set():
                        return
                    node = alive[(n + i) % len(alive)]
                    sent = time.perf_counter()
                    try:
                        async with http.post(
                            f"https://localhost:{node.port}/v1/chat/completions",
                            json=body, headers=headers, ssl=world.tls(),
                        ) as reply:  # fmt: skip
                            await reply.read()
                            outcomes.append((sent, reply.status))
                    except aiohttp.ClientError:
                        outcomes.append((sent, 0))

        users = [asyncio.create_task(user(n)) for n in range(12)]
        await asyncio.sleep(3)
        victim = nodes[0]
        alive.remove(victim)
        killed = time.perf_counter()
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait()
        back = await _wait_tunnels(world, alive, names, 2)
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*users)
        after = [s for sent, s in outcomes if sent > killed]
        failed = sum(1 for s in after if s != 200)
        print(
            f"  (k) kill -9 of {victim.node_id} under load: {len(after)} requests sent after it,"
            f" {failed} failed; every machine held two tunnels on the live nodes, as every live"
            f" node sees it, {back:.2f} s after the kill (the directory forgets a dead node"
            f" within 3 s)"
        )
        for i in range(3):
            lines = (world.tmp / f"agent-f{i}.log").read_text().splitlines()
            recent = [line[11:23] + " " + line[24:][:90] for line in lines[-4:]]
            print(f"      agent gpu-{i}: " + " | ".join(recent))
    finally:
        for process in [*agents, *(n.process for n in nodes)]:
            _stop(process)


async def main(quick: bool, only: str) -> None:
    bindir, redis_program = find_bindir(), find_redis_server()
    if bindir is None or redis_program is None:
        raise SystemExit("the cluster bench needs PostgreSQL and redis-server installed")
    postgres, redis = PostgresServer(bindir), RedisServer(redis_program)
    with (
        tempfile.TemporaryDirectory(prefix="llmtunnel-cluster-bench-") as name,
        contextlib.ExitStack() as stack,
    ):
        tmp = Path(name)
        postgres.start()
        stack.callback(postgres.destroy)
        redis.start()
        stack.callback(redis.destroy)
        database_url = postgres.new_schema()
        bundle = ensure_self_signed(tmp / "tls", "bench.test")
        idle = 60 if quick else 300
        key, configs = await _provision(tmp, database_url, 3 + idle)
        source = stack.enter_context(
            started(
                [sys.executable, "-m", "tests.bench.source"], tmp / "source.log", stdout_pipe=True
            )
        )
        assert source.stdout is not None
        source_port = int(source.stdout.readline().decode().split()[-1])
        world = World(
            tmp,
            database_url,
            redis.url,
            source_port,
            bundle.cert,
            bundle.key,
            bundle.ca_cert,
            key,
            configs,
            stack,
        )
        try:
            if "h" in only:
                print("(h) throughput, one node and three")
                await throughput(world, quick)
            if "i" in only or "j" in only:
                print("(i) idle agents, (j) streams in flight: three nodes")
                await idle_and_streams(world, quick)
            if "k" in only:
                print("(k) failover")
                await failover(world)
        except BaseException:
            _print_logs(tmp)
            raise
    print(f"{os.cpu_count()} CPUs")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer idle agents")
    parser.add_argument("--only", default="hijk", help="the parts to run (default: hijk)")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.quick, arguments.only.lower()))
