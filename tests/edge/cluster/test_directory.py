"""The node directory's NODES: an entry in Redis that NODES' rules refuse is left out (and
logged once) instead of making the whole frame unsendable."""

from __future__ import annotations

import logging
from typing import cast

import pytest
from redis.asyncio import Redis

from edge.agents.registry import Registry
from edge.agents.session import AgentSession
from edge.cluster.directory import Directory, NodeEntry


def entry(node_id: str, url: str) -> NodeEntry:
    return NodeEntry(node_id, url, False, ())


def test_entries_nodes_would_refuse_are_left_out(caplog: pytest.LogCaptureFixture) -> None:
    registry: Registry[AgentSession] = Registry()
    directory = Directory(cast(Redis, None), "node-1", "https://node-1.example.com", registry)
    directory.view = {
        "node-2": entry("node-2", "https://node-2.example.com"),
        "long": entry("n" * 65, "https://node-3.example.com"),
        "bare": entry("node-4", "node-4.example.com"),  # no scheme
        "ctl": entry("node\x005", "https://node-5.example.com"),
    }
    with caplog.at_level(logging.WARNING):
        frame = directory.nodes_frame()
        assert frame is not None
        frame.check()  # sendable
        assert frame.nodes == [
            ["node-1", "https://node-1.example.com"],
            ["node-2", "https://node-2.example.com"],
        ]
        directory.nodes_frame()
    refused = [r for r in caplog.records if "left out of NODES" in r.getMessage()]
    assert len(refused) == 3  # once each, not once per announcement
