from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.stack import Stack, running_stack


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path) as running:
        yield running


@pytest.fixture
async def acme(stack: Stack) -> tuple[Stack, str]:
    """Tenant ``acme`` with one online machine; returns the stack and an API key."""
    await stack.tenant("acme")
    key = await stack.key("acme")
    await stack.agent("acme")
    return stack, key
