"""The agent's fleet against scripted nodes (``connect_once`` replaced): which refusals stop the
agent, and that NODES cannot downgrade a tunnel from https:// to http://."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, cast

import pytest

from agent import fleet as fleet_module
from agent.backend import Backend
from agent.config import AgentConfig
from agent.fleet import Fleet
from agent.tunnel import AgentStopped, EdgeRefused, RunOptions
from protocol import Nodes

EDGE = "https://edge.example.com"
NODES = Nodes("n1", [["n1", "https://n1"], ["n2", "https://n2"], ["n3", "http://n3"]])
Script = Callable[[str, int, Callable[[Nodes], None], asyncio.Event], Any]


def fleet_with(monkeypatch: pytest.MonkeyPatch, script: Script) -> tuple[Fleet, list[str]]:
    """A fleet whose tunnels run ``script(url, nth dial of that url, on_nodes, stop)``."""
    dialed: list[str] = []

    async def connect_once(config: AgentConfig, *args: Any, **kwargs: Any) -> None:
        dialed.append(config.edge_url)
        await script(config.edge_url, dialed.count(config.edge_url), kwargs["on_nodes"], args[2])

    monkeypatch.setattr(fleet_module, "connect_once", connect_once)
    config = AgentConfig(
        edge_url=EDGE, machine_id="m1", machine_name="gpu", tenant="t", private_key="A" * 44
    )
    options = RunOptions(backoff_base=0.01, backoff_cap=0.05, connections=2)
    fleet = Fleet(config, cast(Backend, None), options, asyncio.Event())
    return fleet, dialed


async def serve(stop: asyncio.Event) -> None:
    await stop.wait()


async def test_a_listed_node_refusing_the_machine_is_dropped_for_a_while_not_fatal(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def script(url: str, nth: int, on_nodes: Callable[[Nodes], None], stop: Any) -> None:
        if url == EDGE:
            on_nodes(NODES)
            return await serve(stop)
        raise EdgeRefused("auth_failed", "unknown machine, revoked machine or bad signature")

    fleet, dialed = fleet_with(monkeypatch, script)
    running = asyncio.create_task(fleet.run())
    with caplog.at_level(logging.WARNING):
        await asyncio.sleep(0.3)
    assert not running.done()  # still serving through the edge URL's tunnel
    assert dialed.count("https://n2") >= 2  # dropped for backoff_cap, then tried again
    assert dialed.count("https://n2") <= 8  # but not at once: 0.05 s apart at least
    assert any("node n2" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)
    fleet.stop.set()
    async with asyncio.timeout(5):
        await running  # no AgentStopped


async def test_the_edge_urls_refusal_stops_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    async def script(url: str, nth: int, on_nodes: Callable[[Nodes], None], stop: Any) -> None:
        raise EdgeRefused("auth_failed", "unknown machine, revoked machine or bad signature")

    fleet, _ = fleet_with(monkeypatch, script)
    with pytest.raises(AgentStopped, match="auth_failed"):
        async with asyncio.timeout(5):
            await fleet.run()


async def test_every_listed_node_refusing_stops_the_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    async def script(url: str, nth: int, on_nodes: Callable[[Nodes], None], stop: Any) -> None:
        if url == EDGE:
            if nth == 1:
                on_nodes(NODES)
                return  # the edge closed this tunnel: the listed nodes are dialed
            await serve(stop)  # later dials of the edge URL hang
        raise EdgeRefused("machine_revoked", "this machine was revoked by an admin")

    fleet, dialed = fleet_with(monkeypatch, script)
    with pytest.raises(AgentStopped, match="machine_revoked"):
        async with asyncio.timeout(5):
            await fleet.run()
    assert {"https://n1", "https://n2"} <= set(dialed)


async def test_an_http_node_listed_by_an_https_edge_is_never_dialed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def script(url: str, nth: int, on_nodes: Callable[[Nodes], None], stop: Any) -> None:
        if url == EDGE:
            on_nodes(Nodes("n1", [["n1", "https://n1"], ["n3", "http://n3"]]))
        await serve(stop)

    fleet, dialed = fleet_with(monkeypatch, script)
    running = asyncio.create_task(fleet.run())
    with caplog.at_level(logging.WARNING):
        await asyncio.sleep(0.2)
    assert "http://n3" not in dialed
    assert set(fleet.known) == {"n1"}
    warned = [r for r in caplog.records if "http://n3" in r.getMessage()]
    assert len(warned) == 1
    fleet.stop.set()
    async with asyncio.timeout(5):
        await running
