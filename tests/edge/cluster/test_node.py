"""The node's background tasks are supervised (edge/cluster/node.py): one that fails in a way
its own loop did not foresee is logged and started again, not left dead and silent."""

from __future__ import annotations

import asyncio
import logging

import pytest

from edge.cluster import node


async def test_a_failed_task_is_logged_and_started_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(node, "RESTART_DELAY", 0.01)
    runs = 0
    running = asyncio.Event()

    async def run() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("a bug")
        if runs == 2:
            return
        running.set()
        await asyncio.Event().wait()

    with caplog.at_level(logging.ERROR, "edge.cluster.node"):
        task = asyncio.create_task(node.supervised("cluster-test", run))
        async with asyncio.timeout(5):
            await running.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert runs == 3
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "the cluster-test task failed: starting it again",
        "the cluster-test task ended: starting it again",
    ]
    assert caplog.records[0].exc_info is not None  # the traceback is in the log
