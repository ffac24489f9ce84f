"""Three edge nodes as real ``llmtunnel edge serve`` processes on loopback, sharing one PostgreSQL
(a schema of the session's server) and one Redis, with simulated Ollama and ``agent run``
processes: what an operator runs, on one machine.

The nodes share what the README says they must: ``server.secret`` (copied from the first node's
data directory, as an operator copies it) and one certificate (``--tls-cert``/``--tls-key``).
Every wait is bounded; every process is stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from agent import config as agent_config
from agent.pairing import pair
from edge.tls import ensure_self_signed

LLMTUNNEL = [sys.executable, "-m", "llmtunnel"]
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_http(
    url: str, verify: ssl.SSLContext | bool = True, timeout: float = START_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, verify=verify, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError(f"{url} did not come up within {timeout} s")


@dataclass
class Node:
    index: int
    port: int
    data_dir: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"  # where it listens: "localhost" may try ::1 first

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Cluster:
    root: Path
    ca: str
    cert: Path
    tls_key: Path
    database_url: str
    redis_url: str
    ollama_url: str
    nodes: list[Node] = field(default_factory=list)
    agents: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sim: subprocess.Popen[bytes] | None = None
    admin_key: str = ""
    extra_args: tuple[str, ...] = ()

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)

    # ------------------------------------------------------------------ nodes

    def start_node(self, node: Node) -> None:
        args = [
            *LLMTUNNEL,
            *("edge", "serve", "--domain", "example.test"),
            *("--listen", f"127.0.0.1:{node.port}", "--data-dir", str(node.data_dir)),
            *("--tls-cert", str(self.cert), "--tls-key", str(self.tls_key)),
            *("--peer-ca-file", self.ca),
            *("--node-id", f"node-{node.index + 1}", "--advertise", node.url),
            "--drain-timeout",
            "5",
            *self.extra_args,
        ]
        env = {
            **os.environ,
            "LLMTUNNEL_DATABASE_URL": self.database_url,
            "LLMTUNNEL_REDIS_URL": self.redis_url,
        }
        with node.log.open("ab") as log:
            node.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)

    def wait_node(self, node: Node) -> None:
        try:
            wait_http(node.url + "/healthz", self.tls())
        except AssertionError:
            message = f"node {node.index + 1} did not start:\n{self.log_of(node)}"
            raise AssertionError(message) from None

    def log_of(self, node: Node) -> str:
        return node.log.read_text(errors="replace")[-4000:]

    def kill(self, node: Node) -> None:
        """``kill -9``: no drain, no last flush."""
        assert node.process is not None
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=10)

    def terminate(self, node: Node, timeout: float = 20) -> int:
        """SIGTERM: the node drains (GOAWAY to its agents) and exits; its exit code."""
        assert node.process is not None
        node.process.send_signal(signal.SIGTERM)
        return node.process.wait(timeout=timeout)

    # ------------------------------------------------------------------ the admin API

    def admin(self, node: Node | None = None) -> httpx.AsyncClient:
        target = node or self.nodes[0]
        return httpx.AsyncClient(
            base_url=target.url + "/admin/v1",
            headers={"Authorization": f"Bearer {self.admin_key}"},
            verify=self.tls(),
            timeout=30,
        )

    def client(self, node: Node, key: str, timeout: float = 30) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=node.url + "/v1",
            headers={"Authorization": f"Bearer {key}"},
            verify=self.tls(),
            timeout=timeout,
        )

    async def tenant(self, slug: str) -> None:
        async with self.admin() as admin:
            (await admin.post("/tenants", json={"slug": slug})).raise_for_status()

    async def key(self, slug: str, name: str = "test", **limits: Any) -> str:
        async with self.admin() as admin:
            response = await admin.post(f"/tenants/{slug}/keys", json={"name": name, **limits})
            response.raise_for_status()
            secret: str = response.json()["secret"]
            return secret

    # ------------------------------------------------------------------ agents

    async def agent(self, slug: str, name: str, node: Node, *extra: str) -> subprocess.Popen[bytes]:
        """Pair machine ``name`` through ``node`` and start its ``agent run`` process."""
        async with self.admin(node) as admin:
            response = await admin.post(f"/tenants/{slug}/machines/pair", json={"name": name})
            response.raise_for_status()
            code = response.json()["code"]
        config = await pair(code, node.url, self.ca)
        path = self.root / f"agent-{slug}-{name}.json"
        agent_config.save(config, path)
        process = self.start_agent(path, f"agent-{slug}-{name}.log", *extra)
        self.agents.append(process)
        return process

    def start_agent(self, config: Path, log_name: str, *extra: str) -> subprocess.Popen[bytes]:
        with (self.root / log_name).open("ab") as log:
            return subprocess.Popen(
                [*LLMTUNNEL, "agent", "run", "--config", str(config),
                 "--ollama", self.ollama_url, *extra],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def machines(self, slug: str, node: Node) -> dict[str, dict[str, Any]]:
        async with self.admin(node) as admin:
            response = await admin.get(f"/tenants/{slug}/machines")
            response.raise_for_status()
            return {m["name"]: m for m in response.json()["machines"]}

    async def wait_until(self, what: str, check: Any, timeout: float = 20) -> None:
        """Poll the coroutine function ``check`` until it returns true (bounded)."""
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.05)
        del what

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        for process in [*self.agents, *(n.process for n in self.nodes if n.process), self.sim]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [*self.agents, *(n.process for n in self.nodes if n.process), self.sim]:
            if process is None:
                continue
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def running_cluster(
    root: Path,
    database_url: str,
    redis_url: str,
    *,
    nodes: int = 3,
    tokens_per_second: float = 200.0,
    extra_args: tuple[str, ...] = (),
) -> Iterator[Cluster]:
    """``nodes`` edge nodes and a simulated Ollama, started; stopped on leaving."""
    bundle = ensure_self_signed(root / "tls", "example.test")
    ollama_port = free_port()
    cluster = Cluster(
        root,
        str(bundle.ca_cert),
        bundle.cert,
        bundle.key,
        database_url,
        redis_url,
        f"http://127.0.0.1:{ollama_port}",
        extra_args=extra_args,
    )
    try:
        cluster.sim = subprocess.Popen(
            [*LLMTUNNEL, "sim-ollama", "--port", str(ollama_port),
             "--tokens-per-second", str(tokens_per_second)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for i in range(nodes):
            node_dir = root / f"node-{i + 1}"
            cluster.nodes.append(Node(i, free_port(), node_dir, root / f"node-{i + 1}.log"))
        first = cluster.nodes[0]
        cluster.start_node(first)  # it makes the server secret and the operator key
        cluster.wait_node(first)
        cluster.admin_key = (first.data_dir / "admin.key").read_text().strip()
        for node in cluster.nodes[1:]:
            node.data_dir.mkdir(mode=0o700)
            shutil.copy2(first.data_dir / "server.secret", node.data_dir / "server.secret")
            cluster.start_node(node)
        for node in cluster.nodes[1:]:
            cluster.wait_node(node)
        wait_http(cluster.ollama_url + "/api/version")
        yield cluster
    finally:
        cluster.stop()
