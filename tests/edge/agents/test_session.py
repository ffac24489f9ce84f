"""An edge session's own rules, without sockets: the MODELS budget (PROTOCOL.md §5)."""

from __future__ import annotations

import pytest

from edge.agents.session import MODELS_BURST, MODELS_REFILL, ModelsBudget
from protocol import RemoteProtocolError


def test_models_budget_allows_a_burst_then_one_per_refill() -> None:
    budget = ModelsBudget(now=100.0)
    for _ in range(MODELS_BURST):
        budget.spend(100.0)
    with pytest.raises(RemoteProtocolError, match="at most 5 at once, then one per 2 s"):
        budget.spend(100.5)
    budget.spend(100.0 + MODELS_REFILL)  # one token came back
    with pytest.raises(RemoteProtocolError):
        budget.spend(100.0 + MODELS_REFILL)
    for n in range(MODELS_BURST):  # a long quiet time refills the burst, and no more
        budget.spend(1000.0 + n * 0.001)
    with pytest.raises(RemoteProtocolError):
        budget.spend(1000.01)
