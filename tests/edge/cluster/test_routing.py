"""``ClusterRouter`` when another node refuses this node's hop signature (another server secret,
clocks apart): that node counts as failing, the client never sees its 403."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import aiohttp
import pytest
from aiohttp import web
from redis.asyncio import Redis

from edge.agents.registry import Registry
from edge.agents.session import AgentSession
from edge.cluster.directory import Directory, NodeEntry, RemoteMachine
from edge.cluster.hop import Hop
from edge.cluster.hop_auth import SeenNonces, hop_key
from edge.cluster.hop_server import PREFIX, create_hop_app
from edge.cluster.routing import ClusterRouter
from edge.config import EdgeConfig
from edge.context import CONTEXT, EdgeContext
from edge.errors import ApiError
from protocol.requests import GenerateRequest


@pytest.fixture
async def other_secret_node() -> AsyncIterator[str]:
    """node-2 on a real socket, holding another server secret than this node's."""
    root = web.Application()
    cluster = SimpleNamespace(hop_key=hop_key(b"t" * 32), node_id="node-2", nonces=SeenNonces())
    root[CONTEXT] = cast(EdgeContext, SimpleNamespace(cluster=cluster, registry=None))
    root.add_subapp(PREFIX, create_hop_app(1024))
    runner = web.AppRunner(root)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_a_peer_refusing_our_signature_is_suspected_and_the_client_sees_no_403(
    other_secret_node: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry: Registry[AgentSession] = Registry()
    directory = Directory(cast(Redis, None), "node-1", "https://node-1", registry)
    machine = RemoteMachine(
        "node-2", other_secret_node, "t", "m1", "gpu", {"m": {}}, None, True, 0, 1
    )
    directory.view = {"node-2": NodeEntry("node-2", other_secret_node, False, (machine,))}
    async with aiohttp.ClientSession() as http:
        hop = Hop("node-1", hop_key(b"s" * 32), http)
        router = ClusterRouter(registry, directory, hop, EdgeConfig("example.test", tmp_path))
        with caplog.at_level(logging.WARNING), pytest.raises(ApiError) as refused:
            await router.acquire("t", GenerateRequest("m", "hi"), 0.1)
        assert refused.value.status != 403 and refused.value.code != "forbidden"
        assert refused.value.code == "no_machine_online"
        assert directory.machines("t") == []  # suspected: not tried again for a while
        with pytest.raises(ApiError):
            await router.acquire("t", GenerateRequest("m", "hi"), 0.1)
    lines = [
        r.getMessage() for r in caplog.records if "refuses our hop signature" in r.getMessage()
    ]
    assert len(lines) == 1
    assert "node-2" in lines[0] and "server.secret" in lines[0]
