"""The registry's wake-ups: a machine's event costs only its own tenant a dispatch pass."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from edge.agents.registry import Registry
from edge.agents.session import AgentSession


async def test_notify_with_a_tenant_dispatches_only_that_tenants_queues(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry: Registry[AgentSession] = Registry()
    for tenant in ("t1", "t2", "t3"):
        registry._queues[tenant] = OrderedDict()
    dispatched: list[str] = []
    monkeypatch.setattr(registry, "_dispatch", dispatched.append)
    changed = registry._changed
    registry.notify("t2")
    assert dispatched == ["t2"]
    assert changed.is_set()  # whoever waits for any change (wait_idle) still wakes
    registry.notify()
    assert dispatched == ["t2", "t1", "t2", "t3"]
