"""Benchmarks: llmtunnel beside nginx and a direct connection, in front of one token source.

    ./dev bench                # scenarios (a)-(g), three rounds (about 7 minutes)
    ./dev bench --quick        # shorter runs of the same scenarios (under 2 minutes)
    ./dev bench --governance   # only (f): what key limits and the audit cost per request
    ./dev bench --cluster      # several edge nodes instead: (h)-(k), tests/bench/cluster.py
    ./dev bench --only bd --peers nginx,llmtunnel --rounds 1 --profile /tmp/prof
                               # a part of it; edge and agent under cProfile
    ./dev bench --quick --only d --peers llmtunnel --metrics
                               # edge and agent counting metrics (--metrics-listen)

Every peer stands in front of the same token source (tests/bench/source.py, its own process):

    direct     client → source                                   (OpenAI SSE, plain HTTP)
    nginx      client → nginx (TLS) → source                     (OpenAI SSE; skipped without nginx)
    llmtunnel  client → edge (TLS) → WebSocket → agent → source  (the source speaks Ollama NDJSON)
    openai     the same, the agent on the source's OpenAI SSE    (--backend openai=…/v1, as vLLM)

The two tunnel peers are two machines of two tenants on the one edge (a key routes to its own
tenant's machine), so each request takes the path its peer names.

The edge and the agent are ``llmtunnel edge serve`` and ``llmtunnel agent run`` processes, as
deployed; this process is the client (tests/bench/client.py). The scenarios (--quick: shorter):

    (a) 1 user: 32-token streams from the ``fast`` model, one after another (500)
    (b) 64 users: 512-token streams from ``fast``, each user back to back, for 10 s
    (c) 256 users: 64-token streams at 10 ms a token (``delay-10ms``), 4 each, started together
    (d) 32 users: 16-token replies, not streamed, from ``fast``, for 10 s
    (e) 1,000 idle agents join a fresh edge: its RSS before and after, per agent
    (f) key governance per request, in this process (tests/bench/governance.py)
    (g) cancellation: a client drops a stream after 3 tokens; how soon the source's request
        closes (tests/bench/cancel.py), 20 times per peer (--quick: 10)

Scenarios (a)-(d) run on each peer
in turn, three rounds with the peers' order rotated each round, and the summary gives the
median of the rounds with each figure's CPU per process. Not part of the pass/fail suite: the
numbers depend on the machine, and on a small one every process shares the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import ssl
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import aiohttp
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from agent.config import AgentConfig, new_key, save
from edge.credentials import KeyHasher, load_or_create_server_secret
from edge.store import SqliteStore
from tests.bench import cancel, governance, nginx, report
from tests.bench.client import Target
from tests.bench.procs import Proc, established, free_port, llmtunnel, started, tail, wait_for_port
from tests.bench.scenarios import Measurement, Scenario, median, pct, run, scenarios

ROUNDS = 3
MODELS = ("fast", "delay-10ms")


@dataclass
class Peer:
    target: Target
    procs: list[Proc]
    source: Target  # the token source behind it, for its counters


async def _provision(
    data_dir: Path, machines: int
) -> tuple[str, list[AgentConfig], tuple[str, AgentConfig]]:
    """Tenant, key and machines written straight into the edge's store before it starts
    (pairing is rate limited per address, and a thousand pairings are not what is measured);
    and a second tenant's key and machine, for the agent on the OpenAI-compatible path."""
    hasher = KeyHasher(load_or_create_server_secret(data_dir / "server.secret"))
    store = SqliteStore(data_dir / "edge.db")
    await store.tenants.create("t_bench", "bench")
    key = "sk-lt-" + secrets.token_urlsafe(24)
    await store.keys.add("k_bench", "t_bench", "bench", key[:12], hasher.digest(key), None)
    await store.tenants.create("t_openai", "openai")
    openai_key = "sk-lt-" + secrets.token_urlsafe(24)
    digest = hasher.digest(openai_key)
    await store.keys.add("k_openai", "t_openai", "openai", openai_key[:12], digest, None)
    openai_config = await _machine(store, hasher, "t_openai", "openai", "gpu-openai", "m_openai")
    configs = [
        await _machine(store, hasher, "t_bench", "bench", f"gpu-{n}", f"m_{n}")
        for n in range(machines)
    ]
    await store.close()
    return key, configs, (openai_key, openai_config)


async def _machine(
    store: SqliteStore, hasher: KeyHasher, tenant_id: str, tenant: str, name: str, machine: str
) -> AgentConfig:
    private, public = new_key()
    await store.machines.add_pairing_code(
        hasher.digest(machine), tenant_id, name, time.time() + 600
    )
    await store.machines.redeem_pairing_code(
        hasher.digest(machine), machine, base64.b64decode(public)
    )
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return AgentConfig(
        edge_url="",
        machine_id=machine,
        machine_name=name,
        tenant=tenant,
        private_key=base64.b64encode(seed).decode(),
    )


async def _wait_models(edge: str, key: str, tls: ssl.SSLContext) -> None:
    """Until the edge lists every model of the source (the agent is in)."""
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http, asyncio.timeout(60):
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(edge + "/v1/models", headers=headers, ssl=tls) as response:
                    if response.status == 200:
                        listed = {m["id"] for m in (await response.json())["data"]}
                        if set(MODELS) <= listed:
                            return
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def _source(log: Path) -> Iterator[tuple[int, Proc]]:
    with started([sys.executable, "-m", "tests.bench.source"], log, stdout_pipe=True) as process:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("listening on "):
            raise RuntimeError(f"the token source did not start: {line!r}\n{tail(log)}")
        yield int(line.split()[-1]), Proc("source", process.pid)


# With --metrics: what edge and agent add to serve their metrics (each on a port of its own).
METRICS = ("--metrics-listen", "127.0.0.1:0")


@contextlib.contextmanager
def _edge(
    data_dir: Path, port: int, log: Path, profile: Path | None = None, metrics: bool = False
) -> Iterator[Proc]:
    command = llmtunnel(
        "edge", "serve", "--domain", "bench.test", "--listen", f"127.0.0.1:{port}",
        "--data-dir", str(data_dir), "--self-signed", *(METRICS if metrics else ()),
        profile=profile,
    )  # fmt: skip
    with started(command, log) as process:
        wait_for_port(port, process)
        yield Proc("edge", process.pid)


@contextlib.contextmanager
def _agent(
    config: Path,
    source: int,
    log: Path,
    profile: Path | None = None,
    openai: bool = False,
    metrics: bool = False,
) -> Iterator[Proc]:
    """An agent on the source: Ollama's API, or (``openai``) its OpenAI-compatible one."""
    runtime = (
        ["--backend", f"openai=http://127.0.0.1:{source}/v1"]
        if openai
        else ["--ollama", f"http://127.0.0.1:{source}"]
    )
    command = llmtunnel(
        "agent", "run", "--config", str(config), *runtime,
        "--max-concurrency", "1024", *(METRICS if metrics else ()), profile=profile,
    )  # fmt: skip
    with started(command, log) as process:
        yield Proc("agent", process.pid)


def _agent_file(config: AgentConfig, edge_port: int, ca: Path, path: Path) -> Path:
    save(
        config.model_copy(
            update={"edge_url": f"https://localhost:{edge_port}", "ca_file": str(ca)}
        ),
        path,
    )
    return path


async def _check(peer: Peer) -> None:
    """One request through the peer before anything is timed."""
    one = Scenario("check", "check", 1, 4, "fast", True, requests=1, warmup=0)
    result = await run(peer.target, one, [], -1)
    if result.errors or result.requests != 1:
        raise RuntimeError(f"{peer.target.name} does not answer: {result.failure}")


async def _rounds(peers: list[Peer], plan: list[Scenario], rounds: int) -> list[Measurement]:
    results: list[Measurement] = []
    print("warming up every peer (not measured)")
    for peer in peers:
        for scenario in plan:
            short = replace(
                scenario,
                requests=min(scenario.requests, 1) if scenario.requests else 0,
                seconds=min(scenario.seconds, 1.0),
                warmup=1,
            )
            await run(peer.target, short, [], -1)
    for number in range(rounds):
        order = peers[number % len(peers) :] + peers[: number % len(peers)]
        print(f"\nround {number + 1} of {rounds}: " + ", ".join(p.target.name for p in order))
        for scenario in plan:
            print(f"  ({scenario.key}) {scenario.title}")
            for peer in order:
                measured = await run(peer.target, scenario, peer.procs, number, peer.source)
                print(f"    {peer.target.name:9s} {measured.line()}")
                results.append(measured)
    return results


async def _idle(
    tmp: Path,
    data_dir: Path,
    configs: list[AgentConfig],
    source: int,
    key: str,
) -> report.IdleResult:
    """(e): a fresh edge with one working agent, then the idle agents join it."""
    print(f"\n(e) {len(configs) - 1} idle agents on one edge (and one working agent)")
    port = free_port()
    ca = data_dir / "tls" / "ca.pem"  # made by the edge when it starts, if this run made none
    idle_dir = tmp / "idle"
    idle_dir.mkdir()
    for n, config in enumerate(configs[1:]):
        _agent_file(config, port, ca, idle_dir / f"{n:05d}.json")
    agent_file = _agent_file(configs[0], port, ca, tmp / "agent-e.json")
    with (
        _edge(data_dir, port, tmp / "edge-e.log") as edge,
        _agent(agent_file, source, tmp / "agent-e.log"),
    ):
        tls = ssl.create_default_context(cafile=str(ca))
        await _wait_models(f"https://localhost:{port}", key, tls)
        await asyncio.sleep(2)
        before = edge.rss_kib()
        command = [
            sys.executable,
            "-m",
            "tests.bench.idle",
            str(idle_dir),
            f"http://127.0.0.1:{source}",
        ]
        with started(command, tmp / "idle.log") as host:
            want = len(configs)  # the idle ones and the working agent
            async with asyncio.timeout(600):
                while (connected := established(port)) < want:
                    if host.poll() is not None:
                        raise RuntimeError(f"the idle agents exited\n{tail(tmp / 'idle.log')}")
                    await asyncio.sleep(1)
            print(f"    {connected} agents connected; settling")
            await asyncio.sleep(3)
            cpu, clock = edge.cpu(), time.perf_counter()
            await asyncio.sleep(5)
            share = (edge.cpu() - cpu) / (time.perf_counter() - clock)
            result = report.IdleResult(
                len(configs) - 1, before, edge.rss_kib(), share, Proc("idle", host.pid).rss_kib()
            )
    print(
        f"    edge RSS {result.before_kib / 1024:.1f} MiB → {result.after_kib / 1024:.1f} MiB:"
        f" {result.per_agent_kib:.1f} KiB per agent; edge CPU while they idle {share:.1%};"
        f" the agents' own process {result.host_kib / result.agents:.0f} KiB each"
    )
    return result


CANCELLED: dict[str, list[float]] = {}  # (g): per peer, seconds from close to the source


@dataclass(frozen=True)
class Options:
    quick: bool = False
    rounds: int = ROUNDS
    only: str = "abcdefg"  # the scenarios to run
    peers: tuple[str, ...] = ("direct", "nginx", "llmtunnel", "openai")
    profile: Path | None = None  # run edge and agent under cProfile, writing here
    metrics: bool = False  # edge and agent with --metrics-listen


async def main(options: Options) -> None:
    began = time.perf_counter()
    plan = [s for s in scenarios(options.quick) if s.key in options.only]
    idle_agents = (200 if options.quick else 1000) if "e" in options.only else 0
    results: list[Measurement] = []
    names: list[str] = []
    idle: report.IdleResult | None = None
    with tempfile.TemporaryDirectory(prefix="llmtunnel-bench-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "edge"
        data_dir.mkdir(mode=0o700)
        print(f"provisioning two tenants, their keys and {2 + idle_agents} machines")
        key, configs, openai_machine = await _provision(data_dir, 1 + idle_agents)
        with _source(tmp / "source.log") as (source_port, source):
            print(f"token source on port {source_port} (pid {source.pid})")
            try:
                if plan or "g" in options.only:
                    results, peers = await _scenarios(
                        tmp,
                        data_dir,
                        (key, configs[0]),
                        openai_machine,
                        source_port,
                        source,
                        plan,
                        options,
                    )
                    names = [p.target.name for p in peers]
                if idle_agents:
                    idle = await _idle(tmp, data_dir, configs, source_port, key)
            except BaseException:
                _print_logs(tmp)
                raise
    if "f" in options.only:
        figures = await governance.measure(2000 if options.quick else 20_000)
        governance.report(figures, _total_p50(results, "direct"), _total_p50(results, "llmtunnel"))
    if plan or idle:
        print(
            f"\nSummary: median of {options.rounds} rounds; (+x) over direct, (n x) a multiple"
            " of direct"
        )
        print("\n".join(report.table(results, plan, names, idle)))
    if plan:
        for lines in (
            report.cpu_table(results, plan),
            report.busy_table(results, plan, names),
            report.memory_table(results, plan),
        ):
            print()
            print("\n".join(lines))
        print(f"\nEvery round ({options.rounds}):")
        print("\n".join(report.rounds_table(results, names, options.rounds)))
    if CANCELLED:
        print()
        print("\n".join(cancel.report(CANCELLED)))
    print(f"\n{os.cpu_count()} CPUs; the whole run took {time.perf_counter() - began:.0f} s")


def _ssh_note() -> str:
    if shutil.which("sshd") or Path("/usr/sbin/sshd").exists():
        return "ssh -R: skipped, not implemented by this bench yet"
    return "ssh -R: skipped, no sshd on this machine"


def _print_logs(tmp: Path) -> None:
    for log in sorted(tmp.glob("*.log")) + sorted(tmp.glob("nginx/*.log")):
        print(f"--- {log.name}\n{tail(log)}", file=sys.stderr)


def _total_p50(results: list[Measurement], peer: str) -> float | None:
    values = [pct(m.total, 0.5) for m in results if m.scenario == "a" and m.peer == peer]
    return median(values) if values else None


async def _scenarios(
    tmp: Path,
    data_dir: Path,
    machine: tuple[str, AgentConfig],
    openai_machine: tuple[str, AgentConfig],
    source_port: int,
    source: Proc,
    plan: list[Scenario],
    options: Options,
) -> tuple[list[Measurement], list[Peer]]:
    key, config = machine
    edge_port = free_port()
    ca = data_dir / "tls" / "ca.pem"
    with contextlib.ExitStack() as stack:
        profiles = options.profile
        edge = stack.enter_context(
            _edge(
                data_dir,
                edge_port,
                tmp / "edge.log",
                profiles and profiles / "edge.prof",
                options.metrics,
            )
        )
        tls = ssl.create_default_context(cafile=str(ca))
        agent_file = _agent_file(config, edge_port, ca, tmp / "agent.json")
        agent = stack.enter_context(
            _agent(
                agent_file,
                source_port,
                tmp / "agent.log",
                profiles and profiles / "agent.prof",
                options.metrics,
            )
        )
        await _wait_models(f"https://localhost:{edge_port}", key, tls)
        print(f"edge on port {edge_port} (pid {edge.pid}), agent pid {agent.pid}")
        behind = Target("source", "127.0.0.1", source_port)
        peers = [Peer(replace(behind, name="direct"), [source], behind)]
        binary = nginx.binary()
        if binary and "nginx" in options.peers:
            port = free_port()
            command = nginx.command(
                binary, tmp / "nginx", port, source_port,
                data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem",
            )  # fmt: skip
            process = stack.enter_context(started(command, tmp / "nginx.log"))
            try:
                wait_for_port(port, process, timeout=10)
            except RuntimeError as exc:
                logs = (tail(tmp / "nginx.log", 5), tail(tmp / "nginx" / "error.log", 5))
                print(f"nginx: skipped, it did not start ({exc}):\n" + "\n".join(logs))
            else:
                proc = Proc("nginx", process.pid, with_children=True)
                target = Target("nginx", "127.0.0.1", port, tls, "localhost")
                peers.append(Peer(target, [proc, source], behind))
                print(f"nginx on port {port} (pid {process.pid}, workers {proc.pids()[1:]})")
        elif "nginx" in options.peers:
            print("nginx: skipped, not installed (apt-get install nginx)")
        print(_ssh_note())
        tunnel = Target(
            "llmtunnel", "127.0.0.1", edge_port, tls, "localhost",
            {"Authorization": f"Bearer {key}"},
        )  # fmt: skip
        peers.append(Peer(tunnel, [edge, agent, source], behind))
        if "openai" in options.peers:
            openai_key, openai_config = openai_machine
            openai_file = _agent_file(openai_config, edge_port, ca, tmp / "agent-openai.json")
            openai_agent = stack.enter_context(
                _agent(
                    openai_file,
                    source_port,
                    tmp / "agent-openai.log",
                    profiles and profiles / "agent-openai.prof",
                    openai=True,
                )
            )
            await _wait_models(f"https://localhost:{edge_port}", openai_key, tls)
            print(f"agent on the OpenAI-compatible path: pid {openai_agent.pid}")
            headers = {"Authorization": f"Bearer {openai_key}"}
            target = Target("openai", "127.0.0.1", edge_port, tls, "localhost", headers)
            peers.append(Peer(target, [edge, openai_agent, source], behind))
        peers = [p for p in peers if p.target.name in options.peers]
        for peer in peers:
            await _check(peer)
        measured = await _rounds(peers, plan, options.rounds) if plan else []
        if "g" in options.only:
            runs = 10 if options.quick else 20
            for peer in peers:
                CANCELLED[peer.target.name] = await cancel.measure(peer.target, behind, runs)
        return measured, peers
    raise AssertionError("unreachable")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds of (a)-(d), 1 to 10")
    parser.add_argument(
        "--only", default="abcdefg", help="the scenarios to run, e.g. --only bd (default: all)"
    )
    parser.add_argument(
        "--peers",
        default="direct,nginx,llmtunnel,openai",
        help="the peers for (a)-(d), comma-separated (default: direct,nginx,llmtunnel,openai)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the edge and the agent of (a)-(d) under cProfile; write edge.prof and"
        " agent.prof into this directory (read them with python -m pstats)",
    )
    parser.add_argument(
        "--governance", action="store_true", help="only (f), the per-request cost of key limits"
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="edge and agent count and serve their metrics (--metrics-listen), to see the cost",
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="several edge nodes on PostgreSQL and Redis instead: (h)-(k) (tests/bench/cluster.py)",
    )
    arguments = parser.parse_args()
    if arguments.cluster:
        from tests.bench import cluster

        asyncio.run(cluster.main(arguments.quick, "hijk"))
    elif arguments.governance:
        governance.report(asyncio.run(governance.measure(20_000)), None, None)
    else:
        chosen = Options(
            quick=arguments.quick,
            rounds=max(1, min(arguments.rounds, 10)),
            only=arguments.only.lower(),
            peers=tuple(p.strip() for p in arguments.peers.split(",") if p.strip()),
            profile=arguments.profile.resolve() if arguments.profile else None,
            metrics=arguments.metrics,
        )
        if chosen.profile:
            chosen.profile.mkdir(parents=True, exist_ok=True)
        asyncio.run(main(chosen))
