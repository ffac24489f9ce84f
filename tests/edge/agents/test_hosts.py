"""Agents log in only through the edge's own names (PROTOCOL.md §3): its domain, a subdomain,
this node's advertised host, or loopback from loopback; anything else is 421 before the
WebSocket upgrade, over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import cast

import aiohttp
import pytest
from aiohttp import web

from edge.agents.endpoint import accept_agent
from edge.agents.hosts import AgentHosts
from edge.agents.registry import Registry
from edge.agents.session import AgentSession
from edge.middleware import json_errors, openai_shape
from edge.store import Store
from protocol import TunnelLimits

HOSTS = AgentHosts.of("Example.com", "https://edge-2.internal.net:8443/")


@pytest.mark.parametrize(
    "host",
    [
        "example.com",
        "EXAMPLE.COM:443",
        "acme.example.com",
        "acme.example.com.:8443",
        "edge-2.internal.net:8443",
    ],
)
def test_the_edges_own_names_are_taken(host: str) -> None:
    assert HOSTS.accepts(host, "203.0.113.9")


@pytest.mark.parametrize(
    "host",
    ["rogue.test", "example.com.rogue.test", "badexample.com", "", ":443", "[::1", "edge-3.net"],
)
def test_other_names_are_refused(host: str) -> None:
    assert not HOSTS.accepts(host, "203.0.113.9")


def test_loopback_names_only_from_loopback() -> None:
    for host in ("localhost:8443", "127.0.0.1:8443", "[::1]:8443"):
        assert HOSTS.accepts(host, "127.0.0.1")
        assert HOSTS.accepts(host, "::1")
        assert not HOSTS.accepts(host, "203.0.113.9")  # a relay elsewhere gains nothing
        assert not HOSTS.accepts(host, None)


def test_an_ip_domain_is_its_own_name() -> None:
    assert AgentHosts.of("192.0.2.7", None).accepts("192.0.2.7:8443", "198.51.100.1")
    assert not AgentHosts.of("192.0.2.7", None).accepts("192.0.2.8", "198.51.100.1")


@pytest.fixture
async def edge_url() -> AsyncIterator[str]:
    async def connect(request: web.Request) -> web.StreamResponse:
        registry: Registry[AgentSession] = Registry()
        limits = TunnelLimits(handshake_timeout=0.2)
        hosts = AgentHosts.of("example.com", None)
        return await accept_agent(request, cast(Store, None), registry, limits, hosts=hosts)

    app = web.Application(middlewares=[json_errors(openai_shape)])
    app.router.add_get("/agent/connect", connect)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/agent/connect"
    await runner.cleanup()


async def test_a_foreign_host_is_refused_before_the_upgrade(edge_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(edge_url, headers={"Host": "rogue.test"})
        assert refused.value.status == 421
        async with http.get(edge_url, headers={"Host": "rogue.test"}) as response:
            assert response.status == 421
            assert "does not serve 'rogue.test'" in (await response.json())["error"]["message"]


async def test_the_edges_own_host_is_upgraded(edge_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(edge_url, headers={"Host": "acme.example.com"})
        await ws.close()
