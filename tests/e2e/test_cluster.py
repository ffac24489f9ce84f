"""Three edge nodes on one PostgreSQL and one Redis, as real processes (tests/e2e/cluster.py):
limits that hold across nodes, revocation everywhere at once, Redis and PostgreSQL restarted
under load. One cluster serves the module; each test has a tenant of its own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.cluster import LLMTUNNEL, Cluster, free_port, running_cluster
from tests.postgres_server import PostgresServer
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

MODEL = "llama3.2:3b"


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    redis_server: RedisServer,
) -> Iterator[Cluster]:
    redis_server.start()
    redis_server.flush()
    url = postgres_server.new_schema()
    try:
        with running_cluster(tmp_path_factory.mktemp("cluster"), url, redis_server.url) as running:
            yield running
    finally:
        postgres_server.drop_schema(url)  # other tests look at every schema's tables


@pytest.fixture(scope="module")
def acme(cluster: Cluster) -> str:
    """Tenant ``acme`` with three machines, paired through nodes 1, 2 and 3, each holding
    tunnels to two nodes; shared by the module's tests (each uses keys of its own)."""

    async def setup() -> None:
        await cluster.tenant("acme")
        for i, node in enumerate(cluster.nodes):
            await cluster.agent("acme", f"gpu-{i + 1}", node)
        await wait_online(cluster, "acme", ["gpu-1", "gpu-2", "gpu-3"])

    asyncio.run(setup())
    return "acme"


async def wait_online(cluster: Cluster, slug: str, names: list[str], tunnels: int = 2) -> None:
    """Until every running node sees each machine online with ``tunnels`` tunnels."""

    async def online() -> bool:
        for node in (n for n in cluster.nodes if n.alive):
            machines = await cluster.machines(slug, node)
            for name in names:
                machine = machines.get(name, {})
                if not machine.get("online") or len(machine.get("nodes", ())) != tunnels:
                    return False
        return True

    await cluster.wait_until("machines online", online)


def _chat(text: str = "hi tokens=4", **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


async def _ask(client: httpx.AsyncClient, **extra: Any) -> httpx.Response:
    return await client.post("/chat/completions", json=_chat(**extra))


async def test_revocation_through_one_node_is_refused_by_another_on_the_next_request(
    cluster: Cluster, acme: str
) -> None:
    key = await cluster.key(acme, "revoked")
    first, third = cluster.nodes[0], cluster.nodes[2]
    async with cluster.client(third, key) as on_third:
        assert (await _ask(on_third)).status_code == 200  # node 3 has the key cached now
        async with cluster.admin(first) as admin:
            (await admin.delete(f"/tenants/{acme}/keys/revoked")).raise_for_status()
        refused = await _ask(on_third)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"


async def test_a_rotation_through_one_node_holds_on_every_node(cluster: Cluster, acme: str) -> None:
    old = await cluster.key(acme, "rotated")
    async with cluster.client(cluster.nodes[1], old) as on_second:
        models = await on_second.get("/models")
        assert models.status_code == 200  # cached on node 2
        async with cluster.admin(cluster.nodes[2]) as admin:
            rotated = await admin.post(
                f"/tenants/{acme}/keys/rotated/rotate", json={"grace_seconds": 0}
            )
        rotated.raise_for_status()
        assert (await on_second.get("/models")).status_code == 401  # retired at once
    async with cluster.client(cluster.nodes[1], rotated.json()["secret"]) as with_new:
        assert (await with_new.get("/models")).status_code == 200


async def test_a_revoked_machines_tunnels_close_on_every_node(cluster: Cluster, acme: str) -> None:
    agent = await cluster.agent(acme, "doomed", cluster.nodes[2])
    await wait_online(cluster, acme, ["doomed"])
    holding = (await cluster.machines(acme, cluster.nodes[2]))["doomed"]["nodes"]
    # Revoked through the node that holds none of its tunnels: the two others close theirs.
    outsider = next(n for n in cluster.nodes if f"node-{n.index + 1}" not in holding)
    bound = await cluster.key(acme, "bound", machine="doomed")
    async with cluster.admin(outsider) as admin:
        revoked = await admin.delete(f"/tenants/{acme}/machines/doomed")
    revoked.raise_for_status()
    assert revoked.json()["revoked_keys"] == ["bound"]
    # Both its nodes close its tunnels with machine_revoked: the agent stops (exit code 2).
    assert await asyncio.to_thread(agent.wait, 15) == 2
    for node in cluster.nodes:
        assert "doomed" not in await cluster.machines(acme, node)
    async with cluster.client(cluster.nodes[2], bound) as client:
        assert (await _ask(client)).status_code == 401  # its bound key, revoked with it
    async with cluster.client(cluster.nodes[2], bound) as client:
        assert (await _ask(client)).status_code == 401  # its bound key, revoked with it


async def test_requests_per_minute_hold_across_three_nodes(cluster: Cluster, acme: str) -> None:
    key = await cluster.key(acme, "rpm", rpm=60)
    clients = [cluster.client(node, key) for node in cluster.nodes]
    started = time.monotonic()
    try:
        replies = await asyncio.gather(
            *(_ask(clients[i % 3], text="hi tokens=1") for i in range(180))
        )
    finally:
        for client in clients:
            await client.aclose()
    elapsed = time.monotonic() - started
    served = sum(r.status_code == 200 for r in replies)
    refused = [r for r in replies if r.status_code != 200]
    assert {(r.status_code, r.json()["error"]["code"]) for r in refused} == {
        (429, "rate_limit_exceeded")
    }
    # 60 a minute, refilled at one a second: 60 plus what the test's own seconds refilled,
    # never 180 (three nodes counting alone).
    assert 60 <= served <= 60 + int(elapsed) + 1, (served, elapsed)


async def test_a_budget_holds_over_sixty_concurrent_requests_on_three_nodes(
    cluster: Cluster, acme: str
) -> None:
    # Each request reserves its prompt estimate (a few dozen tokens) + max_tokens 40 ≈ 80;
    # a budget of 800 fits about 10 of them at once.
    key = await cluster.key(acme, "budget", budget_tokens=800, budget_period="day")
    clients = [cluster.client(node, key) for node in cluster.nodes]
    try:
        replies = await asyncio.gather(
            *(_ask(clients[i % 3], text="hi tokens=40", max_tokens=40) for i in range(60))
        )
    finally:
        for client in clients:
            await client.aclose()
    served = [r.json()["usage"]["total_tokens"] for r in replies if r.status_code == 200]
    refused = {r.json()["error"]["code"] for r in replies if r.status_code != 200}
    assert refused == {"budget_exceeded"}
    assert len(served) >= 5 and sum(served) <= 800, (len(served), sum(served))


class Load:
    """Requests sent round robin over the nodes, each key in turn, until stopped; every reply
    kept with when it was sent (seconds from the start)."""

    def __init__(self, cluster: Cluster, keys: dict[str, str]) -> None:
        self.cluster = cluster
        self.keys = keys
        self.replies: list[tuple[float, str, int, str, int]] = []  # at, key, status, code, tokens
        self.started = time.monotonic()
        self._stop = asyncio.Event()

    async def run(self, workers: int = 6) -> None:
        await asyncio.gather(*(self._worker(i) for i in range(workers)))

    async def _worker(self, worker: int) -> None:
        clients = {
            name: [self.cluster.client(node, key, timeout=10) for node in self.cluster.nodes]
            for name, key in self.keys.items()
        }
        try:
            for i in range(10_000):  # bounded; stopped long before
                if self._stop.is_set():
                    return
                name = list(self.keys)[(worker + i) % len(self.keys)]
                client = clients[name][(worker + i) % len(self.cluster.nodes)]
                at = time.monotonic() - self.started
                try:
                    reply = await _ask(client, text="hi tokens=3")
                except httpx.HTTPError as exc:
                    self.replies.append((at, name, 0, type(exc).__name__, 0))
                    continue
                body = reply.json()
                code = body["error"]["code"] if reply.status_code != 200 else ""
                tokens = body["usage"]["completion_tokens"] if reply.status_code == 200 else 0
                self.replies.append((at, name, reply.status_code, code, tokens))
        finally:
            for each in clients.values():
                for client in each:
                    await client.aclose()

    def stop(self) -> None:
        self._stop.set()

    def outcomes(self, key: str, since: float = 0.0, until: float = 1e9) -> set[tuple[int, str]]:
        return {(s, c) for at, k, s, c, _ in self.replies if k == key and since <= at < until}


async def test_redis_killed_and_restarted_under_load(
    cluster: Cluster, acme: str, redis_server: RedisServer
) -> None:
    keys = {
        "open": await cluster.key(acme, "redis-open"),
        "rated": await cluster.key(acme, "redis-rated", rpm=100_000),
        "budget": await cluster.key(acme, "redis-budget", budget_tokens=10**9, budget_period="day"),
    }
    load = Load(cluster, keys)
    running = asyncio.create_task(load.run())
    try:
        await asyncio.sleep(1.0)
        killed = time.monotonic() - load.started
        await asyncio.to_thread(redis_server.stop)  # SIGKILL: every counter is lost
        await asyncio.sleep(1.5)
        await asyncio.to_thread(redis_server.start)
        back = time.monotonic() - load.started
        await asyncio.sleep(3.5)
    finally:
        load.stop()
        await running
    # Keys without a budget never noticed (rate limits fell back to each node's buckets).
    assert load.outcomes("open") == load.outcomes("rated") == {(200, "")}
    # A budgeted key was refused, and only as the README says, while Redis was away …
    assert load.outcomes("budget", killed, back) <= {(200, ""), (503, "limits_unavailable")}
    assert (503, "limits_unavailable") in load.outcomes("budget", killed, back)
    # … and served again soon after its return (the budget reseeded from PostgreSQL): each node
    # asks Redis again a second after its last failure.
    refused = [at for at, k, s, *_ in load.replies if k == "budget" and s != 200 and at > back]
    recovered = max(refused, default=back) - back
    assert recovered < 2.5, recovered
    assert load.outcomes("budget", back + 2.5) == {(200, "")}


async def test_postgresql_restarted_under_load_loses_no_usage(
    cluster: Cluster, acme: str, postgres_server: PostgresServer
) -> None:
    keys = {"ci": await cluster.key(acme, "pg")}
    load = Load(cluster, keys)
    running = asyncio.create_task(load.run(workers=3))
    try:
        await asyncio.sleep(1.0)
        down = time.monotonic() - load.started
        await asyncio.to_thread(postgres_server.stop)
        await asyncio.sleep(1.5)
        await asyncio.to_thread(postgres_server.start)
        up = time.monotonic() - load.started
        await asyncio.sleep(2.0)
    finally:
        load.stop()
        await running
    # Requests went on with the nodes' cached keys; what needed the database was a 503 that
    # says so, never a 500.
    assert load.outcomes("ci") <= {(200, ""), (503, "store_unavailable")}
    assert load.outcomes("ci", up + 1.0) == {(200, "")}
    served = sum(tokens for *_, tokens in load.replies)
    assert served and any(s == 200 for at, _, s, _, _ in load.replies if down < at < up)

    async def recorded() -> int:
        async with cluster.admin() as admin:
            rows = (await admin.get(f"/tenants/{acme}/usage", params={"key": "pg"})).json()
        return sum(row["completion_tokens"] for row in rows["usage"])

    # The usage every node kept in memory while the database was down is written once it is
    # back: nothing lost (each node flushes every second).
    async def all_written() -> bool:
        return await recorded() == served

    await cluster.wait_until("usage written", all_written, timeout=10)


async def test_a_response_stored_through_one_node_is_continued_through_another(
    cluster: Cluster, acme: str
) -> None:
    async with cluster.admin(cluster.nodes[0]) as admin:
        patched = await admin.patch(f"/tenants/{acme}", json={"store_responses": True})
    patched.raise_for_status()
    key = await cluster.key(acme, "responses")
    async with cluster.client(cluster.nodes[0], key) as first:
        made = await first.post("/responses", json={"model": MODEL, "input": "hi tokens=3"})
    assert made.status_code == 200, made.text
    response_id = made.json()["id"]
    async with cluster.client(cluster.nodes[2], key) as third:
        assert (await third.get(f"/responses/{response_id}")).json()["id"] == response_id
        follow = await third.post(
            "/responses",
            json={"model": MODEL, "input": "more tokens=2", "previous_response_id": response_id},
        )
    assert follow.status_code == 200, follow.text


def _serve(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *LLMTUNNEL, "edge", "serve", "--domain", "example.test", "--plain-http",
            "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )  # fmt: skip


def test_edge_serve_with_an_unreachable_redis_is_one_line(
    tmp_path: Path, postgres_url: str
) -> None:
    done = _serve(
        tmp_path,
        {
            "LLMTUNNEL_DATABASE_URL": postgres_url,
            "LLMTUNNEL_REDIS_URL": f"redis://:hunter2@127.0.0.1:{free_port()}/0",
        },
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: cannot reach Redis") and "Traceback" not in done.stderr
    assert "hunter2" not in done.stderr and "127.0.0.1" in done.stderr
    # Redis without a shared database would share limits between nodes that share nothing else.
    alone = _serve(tmp_path, {"LLMTUNNEL_REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert alone.returncode == 1 and "--database-url" in alone.stderr
