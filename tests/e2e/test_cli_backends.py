"""``llmtunnel agent run`` and ``agent status`` with several runtimes, as processes, against an
edge and simulated runtimes on loopback: the flags as a GPU-box owner writes them."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from agent import config as agent_config
from agent.pairing import pair
from llmtunnel import sim_openai
from tests.e2e.stack import Stack, running_stack, user

pytestmark = pytest.mark.e2e

LLMTUNNEL = [sys.executable, "-m", "llmtunnel"]
RUNTIME_KEY = "sk-vllm-secret"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    config = sim_openai.SimOpenAIConfig(api_key=RUNTIME_KEY)
    async with running_stack(tmp_path, openai=config) as running:
        yield running


async def _paired(stack: Stack, tmp_path: Path) -> Path:
    await stack.tenant("acme")
    path = tmp_path / "agent.json"
    agent_config.save(
        await pair(await stack.pairing_code("acme", "gpu-1"), stack.edge_url, stack.ca), path
    )
    return path


async def _llmtunnel(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *LLMTUNNEL,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "OLLAMA_HOST": "http://127.0.0.1:9"},  # never used with --backend
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_agent_run_serves_every_runtime_and_status_shows_each(
    stack: Stack, tmp_path: Path
) -> None:
    config = await _paired(stack, tmp_path)
    key_file = tmp_path / "vllm.key"
    key_file.write_text(RUNTIME_KEY + "\n")
    backends = [
        "--backend", f"ollama={stack.ollama_url}",
        "--backend", f"openai={stack.openai_url}",
        "--backend-key-file", str(key_file),
    ]  # fmt: skip
    agent = await asyncio.create_subprocess_exec(
        *LLMTUNNEL, "agent", "run", "--config", str(config), *backends,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        key = await stack.key("acme")
        await stack.wait_online("acme", "gpu-1")
        client = stack.openai(key)
        async with asyncio.timeout(20):
            while "Qwen/Qwen3-8B" not in {m.id for m in (await client.models.list()).data}:
                await asyncio.sleep(0.05)
        for model in ("llama3.2:3b", "meta-llama/Llama-3.2-3B-Instruct"):
            reply = await client.chat.completions.create(
                model=model, messages=[user("both tokens=2")]
            )
            assert reply.choices[0].message.content == "both the"

        code, out = await _llmtunnel("agent", "status", "--config", str(config), *backends)
        assert code == 0, out
        assert "this machine is accepted" in out
        assert f"backend:  ollama {stack.ollama_url} answers, 5 models" in out
        assert f"backend:  openai {stack.openai_url} answers, 4 models" in out
        assert "Qwen/Qwen3-8B  completion, tools; context 8192" in out
        assert "nomic-ai/nomic-embed-text-v1.5  embedding; context 2048" in out

        # One runtime down, one without its key: each says so, and status exits 1.
        down = f"http://127.0.0.1:{_closed_port()}/v1"
        code, out = await _llmtunnel(
            "agent", "status", "--config", str(config),
            "--backend", f"openai={stack.openai_url}", "--backend", f"openai={down}",
        )  # fmt: skip
        assert code == 1
        assert f"backend:  openai {stack.openai_url} NOT answering: the runtime at" in out
        assert "asks for an API key (HTTP 401)" in out
        assert f"backend:  openai {down} NOT answering: cannot reach the runtime at {down}" in out
    finally:
        agent.terminate()
        assert await asyncio.wait_for(agent.wait(), 20) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "vllm=http://127.0.0.1:8000/v1"], "KIND ollama or openai"),
        (["--backend", "openai=http://127.0.0.1:8000"], "ends in /v1"),
        (["--backend", "ollama=http://127.0.0.1:11434/v1"], "is Ollama's OpenAI layer"),
        (["--backend", "openai=http://h:1/v1,key=x"], "the one there is is key-file=PATH"),
        (["--backend", "openai=http://h:1/v1,key-file=/nonexistent"], "cannot read the key file"),
        (["--backend", "ollama=http://h:1", "--ollama", "http://h:2"], "--ollama and --backend"),
        (["--backend-key-file", "/k"], "none is configured"),
        (["--capabilities", "m=tools,flying"], "unknown 'flying'"),
    ],
)
async def test_bad_backend_flags_are_one_line_errors(
    stack: Stack, tmp_path: Path, args: list[str], message: str
) -> None:
    config = await _paired(stack, tmp_path)
    code, out = await _llmtunnel("agent", "run", "--config", str(config), *args)
    assert code == 1
    assert out.startswith("error: ") and message in out
    assert "Traceback" not in out and out.count("\n") == 1
