"""Node clients, unmodified, through the whole path: tests/node/client.mjs (the official OpenAI
Node SDK) runs against the in-process edge and its observations are checked against the Python
SDK's; tests/node/ai_sdk.mjs (Vercel's AI SDK on its defaults, the Responses API) runs a
two-step tool call on a thinking model."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import ollama
import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam

from tests.e2e.stack import Stack, user

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT = NODE_DIR / "client.mjs"
AI_SDK_SCRIPT = NODE_DIR / "ai_sdk.mjs"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed"),
]

# The same requests as tests/node/client.mjs.
CHAT_MODEL = "llama3.2:3b"
TOOL_MODEL = "qwen3:8b"
PROMPT = "Tell me about tunnels tokens=12"
TOOL_PROMPT = "call get_weather for Paris"
UNKNOWN_MODEL = "nope:1b"
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "look up get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


async def _run_node(stack: Stack, key: str, script: Path = SCRIPT) -> dict[str, Any]:
    """Run a script of tests/node without blocking the loop: the edge it talks to runs in this
    process."""
    packages = ("openai", "ai", "@ai-sdk/openai")
    if not all((NODE_DIR / "node_modules" / package).is_dir() for package in packages):
        pytest.fail(
            "tests/node/node_modules is missing: run ./dev test, which installs it, "
            "or npm ci --prefix tests/node"
        )
    env = {
        **os.environ,
        "LLMTUNNEL_BASE_URL": stack.edge_url + "/v1",
        "LLMTUNNEL_API_KEY": key,
        "NODE_EXTRA_CA_CERTS": stack.ca,
    }
    node = shutil.which("node")
    assert node is not None
    process = await asyncio.create_subprocess_exec(
        node,
        str(script),
        cwd=NODE_DIR,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(60):
            out, err = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        pytest.fail(f"node tests/node/{script.name} did not finish within 60 s")
    stderr = err.decode(errors="replace")
    assert process.returncode == 0, f"{script.name} exited {process.returncode}:\n{stderr}"
    lines = out.decode().strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got:\n{out.decode()}\n{stderr}"
    observed: dict[str, Any] = json.loads(lines[0])
    return observed


def _usage(usage: Any) -> dict[str, int]:
    assert usage is not None
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


async def test_the_openai_node_sdk_works_unmodified(acme: tuple[Stack, str]) -> None:
    stack, key = acme
    node = await _run_node(stack, key)

    # What the Python SDK gets for the same requests through the same stack.
    client = stack.openai(key)
    models = sorted(m.id for m in (await client.models.list()).data)
    chat = await client.chat.completions.create(model=CHAT_MODEL, messages=[user(PROMPT)])
    completion = await client.completions.create(model=CHAT_MODEL, prompt=PROMPT)
    tooled = await client.chat.completions.create(
        model=TOOL_MODEL, messages=[user(TOOL_PROMPT)], tools=[WEATHER_TOOL]
    )
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model=UNKNOWN_MODEL, messages=[user(PROMPT)])

    assert node["sdk_version"]  # the installed SDK, as the lock file pins it
    assert node["models"] == models
    assert {"qwen3:8b", "llama3.2:3b", "tinyllama:1.1b"} <= set(node["models"])

    assert chat.choices[0].message.content
    assert node["chat"]["text"] == chat.choices[0].message.content
    assert node["chat"]["finish_reason"] == "stop"
    assert node["chat"]["model"] == CHAT_MODEL
    assert node["chat"]["usage"] == _usage(chat.usage)
    assert node["chat"]["usage"]["completion_tokens"] == 12

    assert node["stream"]["text"] == chat.choices[0].message.content
    assert node["stream"]["role"] == "assistant"
    assert node["stream"]["finish_reason"] == "stop"
    assert node["stream"]["usage"] == _usage(chat.usage)

    assert tooled.choices[0].message.tool_calls is not None
    python_calls = [
        (c.function.name, json.loads(c.function.arguments))
        for c in tooled.choices[0].message.tool_calls
        if c.type == "function"
    ]
    assert node["tools"]["finish_reason"] == "tool_calls"
    node_calls = node["tools"]["calls"]
    assert [(c["name"], c["parsed"]) for c in node_calls] == python_calls
    assert python_calls == [("get_weather", {"city": "example"})]
    assert all(c["id"].startswith("call_") and c["type"] == "function" for c in node_calls)

    assert completion.choices[0].text
    assert node["completion"]["text"] == completion.choices[0].text
    assert node["completion"]["finish_reason"] == "stop"
    assert node["completion"]["usage"] == _usage(completion.usage)

    assert node["error"]["class"] == "NotFoundError"
    assert node["error"]["status"] == caught.value.status_code == 404
    assert node["error"]["code"] == caught.value.code == "model_not_found"
    assert node["error"]["param"] == caught.value.param == "model"


async def test_the_ai_sdk_runs_a_two_step_tool_call_on_a_thinking_model(
    acme: tuple[Stack, str],
) -> None:
    """generateText and streamText with one tool on qwen3:8b, the provider's defaults: step one
    thinks and calls the tool, step two sends the reasoning back as an item_reference with the
    call and its output (tests/e2e/fixtures/ai_sdk_second_step_request.json), and the model
    answers from the tool's output."""
    stack, key = acme
    observed = await _run_node(stack, key, AI_SDK_SCRIPT)
    direct = await ollama.AsyncClient(host=stack.ollama_url).chat(
        model=TOOL_MODEL, messages=[user("hi")], stream=False
    )
    for run in (observed["generate"], observed["stream"]):
        assert run["text"] == "The tool said: sunny, 21 C"
        assert run["finish_reason"] == "stop"
        assert run["calls"] == [{"city": "example"}]  # the tool ran once, with the model's input
        first, second = run["steps"]
        assert first["finish_reason"] == "tool-calls"
        assert first["reasoning"] == direct.message.thinking
        assert first["tool_calls"] == [{"name": "get_weather", "input": {"city": "example"}}]
        assert first["tool_results"] == ["sunny, 21 C"]
        assert second["text"] == "The tool said: sunny, 21 C"
        assert second["tool_calls"] == []
        assert first["warnings"] == second["warnings"] == []
    assert observed["stream"]["deltas"] == "The tool said: sunny, 21 C"
    assert observed["stream"]["errors"] == []
    # a hosted tool beside a function tool: dropped, and the SDK hands back the header saying so
    assert observed["hosted"]["dropped"] == "web_search"
    assert observed["hosted"]["tools"] == ["get_weather"]
    assert observed["hosted"]["text"]
