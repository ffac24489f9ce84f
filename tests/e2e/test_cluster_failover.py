"""Agents on several nodes, forwarding between nodes, a node drained and a node killed under a
load of streams: three real edge nodes and real agents (tests/e2e/cluster.py).

The load generator plays the load balancer: it spreads streaming requests over the nodes it
believes alive, and stops sending to a node once it has stopped or been killed, as a health
check would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.e2e.cluster import Cluster, Node, running_cluster
from tests.e2e.test_cluster import wait_online
from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

MODEL = "llama3.2:3b"
TOKENS = 20  # per reply; at 200 tokens/s a stream lasts about a tenth of a second


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
) -> Iterator[Cluster]:
    redis_server.start()
    redis_server.flush()
    url = postgres_server.new_schema()
    root = tmp_path_factory.mktemp("failover")
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(postgres_server.drop_schema, url)  # other tests look at every schema
        running = cleanup.enter_context(running_cluster(root, url, redis_server.url))

        async def setup() -> None:
            await running.tenant("acme")
            # Paired through nodes 1 and 3, each holding two tunnels (to the nodes its own
            # order prefers: agent/fleet.py).
            await running.agent("acme", "gpu-a", running.nodes[0], "--max-concurrency", "4")
            await running.agent("acme", "gpu-b", running.nodes[2], "--max-concurrency", "4")
            await wait_online(running, "acme", ["gpu-a", "gpu-b"])

        asyncio.run(setup())
        yield running


@dataclass
class Outcome:
    node: int
    sent_at: float
    ended_at: float
    result: str  # "ok", "error-event", "status-N", "transport"
    tokens: int


@dataclass
class Load:
    """Streams over the nodes in ``alive``, ``workers`` at a time, until stopped."""

    cluster: Cluster
    key: str
    alive: set[int]
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def now(self) -> float:
        return time.monotonic() - self.started

    async def run(self, workers: int = 6) -> None:
        await asyncio.gather(*(self._worker(i) for i in range(workers)))

    async def _worker(self, worker: int) -> None:
        clients = [self.cluster.client(n, self.key, timeout=15) for n in self.cluster.nodes]
        try:
            for i in range(100_000):  # bounded; stopped long before
                if self.stopped.is_set():
                    return
                alive = sorted(self.alive)
                node = alive[(worker + i) % len(alive)]
                self.outcomes.append(await self._stream(clients[node], node))
        finally:
            for client in clients:
                await client.aclose()

    async def _stream(self, client: httpx.AsyncClient, node: int, tokens: int = TOKENS) -> Outcome:
        sent = self.now()
        body = {
            "model": MODEL,
            "stream": True,
            "messages": [{"role": "user", "content": f"hi tokens={tokens}"}],
        }
        text, result = "", "transport"
        try:
            async with client.stream("POST", "/chat/completions", json=body) as reply:
                if reply.status_code != 200:
                    await reply.aread()
                    return Outcome(node, sent, self.now(), f"status-{reply.status_code}", 0)
                async for line in reply.aiter_lines():
                    if line == "data: [DONE]":
                        result = "ok"
                    elif line.startswith("data: "):
                        event = json.loads(line[6:])
                        if "error" in event:
                            result = "error-event"
                        elif event.get("choices"):
                            text += event["choices"][0]["delta"].get("content") or ""
        except httpx.HTTPError:
            result = "transport"
        words = len(text.split())  # the simulator's tokens are words
        if result == "ok" and words != tokens:
            result = f"short-{words}"
        return Outcome(node, sent, self.now(), result, words)


async def _node_ids_of(cluster: Cluster, name: str) -> list[str]:
    for node in cluster.nodes:
        if node.alive:
            nodes: list[str] = (await cluster.machines("acme", node))[name]["nodes"]
            return nodes
    raise AssertionError("no node is alive")


def _index(node_id: str) -> int:
    return int(node_id.removeprefix("node-")) - 1


async def test_a_request_on_a_node_without_the_machine_is_forwarded(cluster: Cluster) -> None:
    key = await cluster.key("acme", "forwarded", machine="gpu-a")  # only gpu-a may serve it
    holding = await _node_ids_of(cluster, "gpu-a")
    assert len(holding) == 2
    outsider = next(n for n in cluster.nodes if f"node-{n.index + 1}" not in holding)
    load = Load(cluster, key, {outsider.index})
    outcomes = [await load._stream(cluster.client(outsider, key), outsider.index)]
    assert [o.result for o in outcomes] == ["ok"]
    async with cluster.client(outsider, key) as client:
        models = (await client.get("/models")).json()["data"]
        assert MODEL in {m["id"] for m in models}  # the outsider lists what gpu-a serves
    # The outsider audits it as its own request, served by gpu-a.
    async with cluster.admin(outsider) as admin:
        audit = (await admin.get("/tenants/acme/audit", params={"key": "forwarded"})).json()
    served = [e for e in audit["events"] if e["action"].endswith("/chat/completions")]
    assert [(e["machine"], e["status"]) for e in served] == [("gpu-a", 200)]


async def test_a_draining_node_hands_its_agents_over_and_no_request_fails(
    cluster: Cluster,
) -> None:
    key = await cluster.key("acme", "drain")
    load = Load(cluster, key, {0, 1, 2})
    running = asyncio.create_task(load.run())
    try:
        await asyncio.sleep(1.0)
        victim = cluster.nodes[1]
        load.alive.discard(victim.index)  # the load balancer stops sending it new requests
        drained_at = load.now()
        assert await asyncio.to_thread(cluster.terminate, victim) == 0
        # Each machine holds two tunnels again, on the nodes that remain.
        await wait_online(cluster, "acme", ["gpu-a", "gpu-b"])
        handed_over = load.now() - drained_at
        await asyncio.sleep(0.5)
    finally:
        load.stopped.set()
        await running
    bad = [o for o in load.outcomes if o.result != "ok"]
    assert not bad, bad[:5]
    assert len(load.outcomes) > 20
    count = len(load.outcomes)
    print(f"drain: {count} streams, none failed; tunnels handed over in {handed_over:.2f} s")
    cluster.start_node(victim)  # back for the next test
    cluster.wait_node(victim)
    await wait_online(cluster, "acme", ["gpu-a", "gpu-b"])


async def test_kill_9_a_node_under_load(cluster: Cluster) -> None:
    key = await cluster.key("acme", "kill")
    # Long streams of gpu-a sent to the node that holds none of its tunnels are forwarded, all
    # to the first of its two nodes (the machine idle, equal room: the lowest node id): that is
    # the node killed, under them.
    bound = await cluster.key("acme", "kill-gpu-a", machine="gpu-a")
    holders = sorted(await _node_ids_of(cluster, "gpu-a"))
    outsider = next(n for n in cluster.nodes if f"node-{n.index + 1}" not in holders)
    victim: Node = cluster.nodes[_index(holders[0])]
    load = Load(cluster, key, {0, 1, 2})
    forwarded = [
        asyncio.create_task(load._stream(cluster.client(outsider, bound), outsider.index, 300))
        for _ in range(3)
    ]
    await asyncio.sleep(0.3)
    running = asyncio.create_task(load.run(workers=9))
    try:
        await asyncio.sleep(1.0)
        load.alive.discard(victim.index)
        killed_at = load.now()
        await asyncio.to_thread(cluster.kill, victim)
        # Both machines stay online throughout, through their other tunnel …
        for name in ("gpu-a", "gpu-b"):
            await _node_ids_of_alive(cluster, name, victim)
        # … and each holds two tunnels again once it has dialed a replacement (what every node
        # sees once the killed node's directory entry has expired: at most 3 s).
        await wait_online_alive(cluster, victim)
        replaced = load.now() - killed_at
        await asyncio.sleep(1.0)
    finally:
        load.stopped.set()
        await running
    # The forwarded streams lost their machine's tunnel mid-stream: an error event, no hang.
    cut = await asyncio.gather(*forwarded)
    assert [o.result for o in cut] == ["error-event"] * 3, cut
    after = [o for o in load.outcomes if o.sent_at > killed_at]
    assert after and all(o.result == "ok" for o in after), [o for o in after if o.result != "ok"]
    # Streams in flight at the kill: those sent to the killed node lost their connection; those
    # forwarded through it, or on its tunnels, ended with an error event; none hung.
    during = [o for o in load.outcomes if o.sent_at <= killed_at < o.ended_at]
    assert {o.result for o in during} <= {"ok", "error-event", "transport"}
    assert all(o.ended_at - killed_at < 5 for o in during)
    print(
        f"kill -9: {len(after)} streams after it, none failed; {len(during)} in flight at it"
        f" ({sorted(o.result for o in during)}); forwarded ones cut"
        f" {[round(o.ended_at - killed_at, 3) for o in cut]} s after it;"
        f" every node sees two live tunnels per machine after {replaced:.2f} s"
    )


async def _node_ids_of_alive(cluster: Cluster, name: str, dead: Node) -> list[str]:
    live = next(n for n in cluster.nodes if n is not dead)
    machine = (await cluster.machines("acme", live))[name]
    assert machine["online"]
    nodes: list[str] = machine["nodes"]
    return nodes


async def wait_online_alive(cluster: Cluster, dead: Node) -> None:
    live = [n for n in cluster.nodes if n is not dead]

    async def two_tunnels() -> bool:
        for node in live:
            machines = await cluster.machines("acme", node)
            for name in ("gpu-a", "gpu-b"):
                holding = machines[name].get("nodes", [])
                if sorted(holding) != sorted(f"node-{n.index + 1}" for n in live):
                    return False
        return True

    await cluster.wait_until("two tunnels each", two_tunnels, timeout=20)
