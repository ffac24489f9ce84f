"""A real engine, not a simulator: llama.cpp, through llama-cpp-python's OpenAI server, behind
the agent's OpenAI-compatible backend, with a tiny model written at test time
(tests/e2e/tiny_gguf.py). What is checked is the plumbing: streaming, usage (this server reports
none in a stream, so the edge's upper bound is what shows), cancellation reaching the engine,
and its errors.

The engine lives in its own environment, ``.venv-engine`` (``./dev engine`` builds
llama-cpp-python from source once: about 4 to 8 minutes on two cores, then pip's cache makes it
seconds). Without it these tests skip, except in CI, where .ci/run builds it and they must run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from agent.backend_config import build, parse_backend
from tests.e2e.stack import Stack, running_stack, user

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
ENGINE_ENV = "LLMTUNNEL_ENGINE_PYTHON"  # a Python with llama-cpp-python[server] and gguf
CONTEXT = 4096


def _engine_python() -> str:
    python = os.environ.get(ENGINE_ENV) or str(ROOT / ".venv-engine" / "bin" / "python")
    found = (
        Path(python).exists()
        and subprocess.run(
            [python, "-c", "import llama_cpp.server, gguf"], capture_output=True, check=False
        ).returncode
        == 0
    )
    if not found:
        if os.environ.get("CI"):
            pytest.fail(f"no llama.cpp engine at {python}, and CI must run its tests (.ci/run)")
        pytest.skip(f"no llama.cpp engine at {python}: ./dev engine builds it (once, minutes)")
    return python


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """llama-cpp-python's server on the tiny model: its base URL and its log."""
    python = _engine_python()
    folder = tmp_path_factory.mktemp("engine")
    model = folder / "tiny.gguf"
    subprocess.run([python, str(ROOT / "tests" / "e2e" / "tiny_gguf.py"), str(model)], check=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = folder / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                python, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "tiny",
                "--n_ctx", str(CONTEXT), "--host", "127.0.0.1", "--port", str(port),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the engine did not start within 60 s"
            time.sleep(0.1)
        yield url, log
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture
async def acme(tmp_path: Path, engine: tuple[str, Path]) -> AsyncIterator[tuple[Stack, str]]:
    async with running_stack(tmp_path) as stack:
        await stack.tenant("acme")
        key = await stack.key("acme")
        # Configured to embed, so that the request reaches the engine and its refusal shows.
        capabilities = {"tiny": ("completion", "tools", "embedding")}
        backends = build([parse_backend(f"openai={engine[0]}")], capabilities, 4)
        await stack.agent("acme", backends=backends)
        yield stack, key


def _runs(log: Path) -> int:
    """Generations the engine finished: llama.cpp prints its timings after each."""
    return log.read_text().count("llama_perf_context_print:        eval time")


async def test_chat_and_completions_stream_from_the_engine(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    client = stack.openai(key)
    assert [m.id for m in (await client.models.list()).data] == ["tiny"]
    stream = await client.chat.completions.create(
        model="tiny",
        messages=[user("hello")],
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert 0 < len(text) <= 24 and text.isprintable()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    usage = chunks[-1].usage
    assert usage is not None
    # The server counts nothing in a stream (usage_reported false): the bound is charged.
    assert usage.completion_tokens == len(text.encode())
    assert usage.prompt_tokens >= len("hello")
    completion = await client.completions.create(model="tiny", prompt="once", max_tokens=8)
    assert len(completion.choices[0].text) > 0
    assert completion.choices[0].finish_reason == "length"


async def test_a_client_that_leaves_stops_the_engine(
    acme: tuple[Stack, str], engine: tuple[str, Path]
) -> None:
    stack, key = acme
    client = stack.openai(key)
    runs = _runs(engine[1])
    stream = await client.chat.completions.create(
        model="tiny", messages=[user("go")], max_tokens=3000, stream=True
    )
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == 5:
            break
    await stream.close()
    # The engine runs one generation at a time: had the cancelled one gone on, 3,000 tokens
    # (seconds here), the next would wait for it.
    started = time.monotonic()
    reply = await client.chat.completions.create(model="tiny", messages=[user("hi")], max_tokens=4)
    waited = time.monotonic() - started
    assert reply.choices[0].finish_reason == "length"
    assert waited < 2.0, f"the next request waited {waited:.1f} s"
    await asyncio.sleep(0.2)
    assert _runs(engine[1]) == runs + 1  # the cancelled one never finished


async def test_the_engines_errors(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    client = stack.openai(key)
    # A prompt over the context: this server answers 200 and closes without a word when
    # streaming (the agent always streams), which the client hears as the backend's error.
    with pytest.raises(openai.APIStatusError) as over:
        await client.chat.completions.create(
            model="tiny", messages=[user("x" * (CONTEXT + 100))], max_tokens=4
        )
    assert over.value.status_code == 502
    assert "the runtime at http://127.0.0.1:" in str(over.value.body)
    # Started without embeddings, the server answers 500 saying so: 501 unsupported.
    with pytest.raises(openai.APIStatusError) as embed:
        await client.embeddings.create(model="tiny", input="x")
    assert embed.value.status_code == 501
    assert "cannot embed: Llama model must be created with embedding=True" in str(embed.value)
