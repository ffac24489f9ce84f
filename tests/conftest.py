"""Fixtures shared by the whole suite."""

from __future__ import annotations

import logging

import pytest

# The agent and edge log every connect and reconnect; keep test output for what failed.
logging.getLogger("edge").setLevel(logging.WARNING)
logging.getLogger("agent").setLevel(logging.WARNING)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
