"""What every runtime's backend shares (agent/backend.py): the models the tunnel can carry,
counts, and the errors for an unreachable runtime and an overlong prompt."""

from __future__ import annotations

from agent.backend import context_exceeded, count, describable, unreachable
from protocol import ErrorCode


def test_models_the_tunnel_cannot_describe_are_left_out_not_the_whole_list() -> None:
    # PROTOCOL.md §5: one model beyond §2's bounds would make the edge refuse HELLO, and the
    # agent could never log in; it is left out instead, and the list capped at 1,024.
    fine = {"name": "llama3.2:3b", "capabilities": ["completion"], "family": "llama"}
    odd = [
        {"name": "n" * 257, "capabilities": []},
        {"name": "many", "capabilities": [f"c{i}" for i in range(33)]},
        {"name": "long-detail", "capabilities": [], "quantization": "q" * 65},
    ]
    assert describable([*odd, fine], "Ollama") == [fine]
    many = [{"name": f"m{i:04}", "capabilities": []} for i in range(1100)]
    assert describable(many, "Ollama") == many[:1024]


def test_counts_outside_the_tunnels_bounds_are_unknown_or_capped() -> None:
    values = (5, 0, -3, 1.5, "7", True, None, 250)
    assert [count(v, 100) for v in values] == [5, 0, 0, 0, 0, 0, 0, 100]


def test_an_overlong_prompt_is_said_the_same_way_for_every_runtime() -> None:
    over = context_exceeded(9000, 8192, "raise the runtime's context")
    assert over.code is ErrorCode.CONTEXT_LENGTH_EXCEEDED and not over.retryable
    assert str(over) == (
        "prompt is too long: 9000 tokens > 8192 maximum (the model's context on this machine;"
        " raise the runtime's context, or shorten the prompt)"
    )
    assert "4096 tokens >= 4096 maximum" in str(context_exceeded(4096, 4096, "x"))


def test_an_unreachable_runtime_is_retryable_and_named() -> None:
    error = unreachable("vLLM at http://127.0.0.1:8000/v1", ConnectionRefusedError(111, "refused"))
    assert error.code is ErrorCode.BACKEND_UNAVAILABLE and error.retryable
    assert str(error) == (
        "cannot reach vLLM at http://127.0.0.1:8000/v1: ConnectionRefusedError: [Errno 111] refused"
    )
