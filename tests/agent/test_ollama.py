"""The Ollama backend against the simulated Ollama: the neutral ``generate`` op (and ``chat``
through the same reading loop), ``embed``, their errors, and cancellation."""

from __future__ import annotations

import asyncio
import re
import struct
from collections.abc import AsyncIterator
from typing import Any

import ollama
import pytest

from agent.backend import BackendError, Finish, Piece, Vectors
from agent.ollama import OllamaBackend
from llmtunnel import sim_ollama
from protocol import ErrorCode, RemoteProtocolError
from protocol.requests import from_wire


@pytest.fixture
async def sim() -> AsyncIterator[str]:
    runner = await sim_ollama.serve("127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{sim_ollama.bound_port(runner)}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def backend(sim: str) -> AsyncIterator[OllamaBackend]:
    made = OllamaBackend(sim)
    try:
        yield made
    finally:
        await made.aclose()


def _stream(
    backend: OllamaBackend, request: dict[str, Any]
) -> AsyncIterator[Piece | Vectors | Finish]:
    """The backend run on ``request`` written as the tunnel carries it (PROTOCOL.md §7)."""
    return backend.stream(from_wire(request))


async def _run(backend: OllamaBackend, request: dict[str, Any]) -> tuple[list[Piece], Finish]:
    items = [item async for item in _stream(backend, request)]
    *pieces, finish = items
    assert all(isinstance(p, Piece) for p in pieces)
    assert isinstance(finish, Finish)
    return [p for p in pieces if isinstance(p, Piece)], finish


async def test_generate_yields_the_response_and_its_counts(
    sim: str, backend: OllamaBackend
) -> None:
    prompt = "tunnels carry tokens tokens=9"
    direct = await ollama.AsyncClient(host=sim).generate(model="llama3.2:3b", prompt=prompt)
    pieces, finish = await _run(
        backend, {"op": "generate", "model": "llama3.2:3b", "prompt": prompt}
    )
    # Lines that arrive together make one piece; together they are the whole reply.
    assert 1 <= len(pieces) <= 9
    assert "".join(p.content for p in pieces) == direct.response
    assert not any(p.thinking or p.tool_calls for p in pieces)
    assert finish.finish_reason == "stop"
    assert (finish.prompt_tokens, finish.completion_tokens) == (
        direct.prompt_eval_count,
        direct.eval_count,
    )
    assert direct.eval_count == 9
    assert {"total_duration", "eval_duration"} <= set(finish.timings)


async def test_generate_passes_options_system_and_think(sim: str, backend: OllamaBackend) -> None:
    pieces, finish = await _run(
        backend,
        {
            "op": "generate",
            "model": "qwen3:8b",
            "prompt": "go on tokens=30",
            "system": "be brief and clear",
            "options": {"num_predict": 8},
        },
    )
    thinking = "".join(p.thinking for p in pieces)
    content = "".join(p.content for p in pieces)
    assert thinking == "Let me think about this."  # a thinking model thinks unless told not to
    assert finish.finish_reason == "length"
    assert finish.completion_tokens == 8
    # The system prompt reached Ollama: it counts in the prompt tokens.
    _, plain = await _run(
        backend, {"op": "generate", "model": "qwen3:8b", "prompt": "go on tokens=30"}
    )
    assert finish.prompt_tokens == plain.prompt_tokens + 4
    options = {"num_predict": 8, "stop": ["tunnel"]}
    direct = await ollama.AsyncClient(host=sim).generate(
        model="qwen3:8b", prompt="go on tokens=30", think=False, options=options
    )
    pieces, finish = await _run(
        backend,
        {
            "op": "generate",
            "model": "qwen3:8b",
            "prompt": "go on tokens=30",
            "think": False,
            "options": options,
        },
    )
    assert not any(p.thinking for p in pieces)
    text = "".join(p.content for p in pieces)
    assert text == direct.response == "go on the"  # cut where the stop string begins
    assert content == "go on the"  # with thinking, 5 of the 8 tokens went to thoughts
    assert finish.finish_reason == "stop"


async def test_generate_errors_map_like_chat(backend: OllamaBackend) -> None:
    cases: list[tuple[dict[str, Any], ErrorCode, str]] = [
        ({"model": "nope", "prompt": "x"}, ErrorCode.MODEL_NOT_FOUND, "model 'nope' not found"),
        (
            {"model": "tinyllama:1.1b", "prompt": "x", "suffix": "y"},
            ErrorCode.BAD_REQUEST,
            "insert",
        ),
        ({"model": "tinyllama:1.1b", "prompt": "x", "think": True}, ErrorCode.BAD_REQUEST, "think"),
    ]
    for request, code, text in cases:
        with pytest.raises(BackendError) as caught:
            await _run(backend, {"op": "generate", **request})
        assert caught.value.code == code
        assert text in str(caught.value)
        assert not caught.value.retryable
    unreachable = OllamaBackend("http://127.0.0.1:9")
    with pytest.raises(BackendError) as down:
        await _run(unreachable, {"op": "generate", "model": "m", "prompt": "x"})
    assert (down.value.code, down.value.retryable) == (ErrorCode.BACKEND_UNAVAILABLE, True)
    assert str(down.value).startswith("cannot reach Ollama: ")
    await unreachable.aclose()


async def test_a_generate_failing_mid_stream_yields_then_raises(backend: OllamaBackend) -> None:
    received: list[str] = []
    request = {"op": "generate", "model": "llama3.2:3b", "prompt": "go fail-after=3"}
    with pytest.raises(BackendError) as caught:
        async for item in _stream(backend, request):
            assert isinstance(item, Piece)  # never a Finish
            received.append(item.content)
    assert "".join(received) == "go the tunnel"  # everything before Ollama's error line
    assert caught.value.code == ErrorCode.BACKEND_ERROR
    assert "llama runner process has terminated" in str(caught.value)


async def test_chat_still_runs_through_the_shared_loop(sim: str, backend: OllamaBackend) -> None:
    messages = [{"role": "user", "content": "hello there tokens=5"}]
    direct = await ollama.AsyncClient(host=sim).chat(model="llama3.2:3b", messages=messages)
    pieces, finish = await _run(
        backend, {"op": "chat", "model": "llama3.2:3b", "messages": messages}
    )
    assert "".join(p.content for p in pieces) == direct.message.content
    assert finish.completion_tokens == 5


async def test_tool_calls_carry_their_arguments_as_compact_json_text(
    backend: OllamaBackend,
) -> None:
    # PROTOCOL.md §2: {id, name, arguments} with arguments the JSON text of Ollama's object.
    parameters = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    }
    tools = [
        {"type": "function", "function": {"name": name, "parameters": parameters}}
        for name in ("get_weather", "get_time")
    ]
    messages = [{"role": "user", "content": "call get_weather and get_time"}]
    request = {"op": "chat", "model": "llama3.2:3b", "messages": messages, "tools": tools}
    pieces, finish = await _run(backend, request)
    calls = [call for piece in pieces for call in piece.tool_calls]
    assert [(c["name"], c["arguments"]) for c in calls] == [
        ("get_weather", '{"city":"example","days":1}'),
        ("get_time", '{"city":"example","days":1}'),
    ]
    assert all(set(c) == {"id", "name", "arguments"} for c in calls)
    assert len({c["id"] for c in calls}) == 2 and all(c["id"].startswith("call_") for c in calls)
    assert finish.finish_reason == "tool_calls"


@pytest.mark.parametrize("op", ["show", "pull", "transcribe"])
async def test_other_ops_are_unsupported(backend: OllamaBackend, op: str) -> None:
    with pytest.raises(BackendError) as caught:
        await _run(backend, {"op": op, "model": "llama3.2:3b", "prompt": "x"})
    assert caught.value.code == ErrorCode.UNSUPPORTED


@pytest.mark.parametrize("op", [None, 3])
def test_an_op_that_is_not_a_name_is_a_malformed_request(op: object) -> None:
    # Refused where the OPEN is decoded (the tunnel fails), before any backend sees it.
    with pytest.raises(RemoteProtocolError, match="op"):
        from_wire({"op": op, "model": "llama3.2:3b", "prompt": "x"})


async def test_cancelling_a_generate_stops_it_on_ollama() -> None:
    runner = await sim_ollama.serve("127.0.0.1", 0, sim_ollama.SimConfig(tokens_per_second=200))
    stats = runner.app[sim_ollama.STATS_KEY]
    backend = OllamaBackend(f"http://127.0.0.1:{sim_ollama.bound_port(runner)}")
    started = asyncio.Event()

    async def consume() -> None:
        request = {"op": "generate", "model": "llama3.2:3b", "prompt": "tokens=5000"}
        async for _item in _stream(backend, request):
            started.set()

    try:
        task = asyncio.create_task(consume())
        async with asyncio.timeout(5):
            await started.wait()
            task.cancel()  # what the session does on CANCEL
            with pytest.raises(asyncio.CancelledError):
                await task
            while stats.cancelled == 0:
                await asyncio.sleep(0.01)
        assert (stats.started, stats.completed, stats.cancelled, stats.active) == (1, 0, 1, 0)
    finally:
        await backend.aclose()
        await runner.cleanup()


async def test_embed_returns_float32_vectors_equal_to_ollamas(
    sim: str, backend: OllamaBackend
) -> None:
    inputs = ["the first text", "a second, longer text to embed"]
    direct = await ollama.AsyncClient(host=sim).embed(model="nomic-embed-text:latest", input=inputs)
    request = {"op": "embed", "model": "nomic-embed-text:latest", "input": inputs}
    items = [item async for item in _stream(backend, request)]
    assert len(items) == 2
    vectors, finish = items
    assert isinstance(vectors, Vectors) and isinstance(finish, Finish)
    assert len(vectors.vectors) == 2
    for packed, expected in zip(vectors.vectors, direct.embeddings, strict=True):
        values = struct.unpack(f"<{len(packed) // 4}f", packed)
        assert values == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert direct.prompt_eval_count
    assert finish.prompt_tokens == direct.prompt_eval_count
    assert finish.completion_tokens == 0


async def test_embed_passes_dimensions(backend: OllamaBackend) -> None:
    request = {"op": "embed", "model": "nomic-embed-text:latest", "input": ["x"], "dimensions": 8}
    items = [item async for item in _stream(backend, request)]
    assert isinstance(items[0], Vectors)
    assert [len(v) for v in items[0].vectors] == [32]


async def test_embed_with_a_chat_model_is_ollamas_400(backend: OllamaBackend) -> None:
    request = {"op": "embed", "model": "llama3.2:3b", "input": ["x"]}
    with pytest.raises(BackendError) as caught:
        [item async for item in _stream(backend, request)]
    assert caught.value.code == ErrorCode.BAD_REQUEST
    assert "does not support embeddings" in str(caught.value)


async def test_a_prompt_over_the_context_is_refused_not_cut(backend: OllamaBackend) -> None:
    long = "word " * 9000
    for request in (
        {"op": "chat", "model": "llama3.2:3b", "messages": [{"role": "user", "content": long}]},
        {"op": "generate", "model": "llama3.2:3b", "prompt": long},
    ):
        with pytest.raises(BackendError) as caught:
            await _run(backend, request)
        assert caught.value.code == ErrorCode.CONTEXT_LENGTH_EXCEEDED
        assert re.match(r"prompt is too long: 900\d tokens > 8192 maximum", str(caught.value))
