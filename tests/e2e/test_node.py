"""The official OpenAI Node SDK, unmodified, through the whole path: tests/node/client.mjs runs
against the in-process edge and its observations are checked against the Python SDK's."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam

from tests.e2e.stack import Stack, user

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
SCRIPT = NODE_DIR / "client.mjs"

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


async def _run_node(stack: Stack, key: str) -> dict[str, Any]:
    """Run client.mjs without blocking the loop: the edge it talks to runs in this process."""
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
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
        str(SCRIPT),
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
        pytest.fail("node tests/node/client.mjs did not finish within 60 s")
    stderr = err.decode(errors="replace")
    assert process.returncode == 0, f"client.mjs exited {process.returncode}:\n{stderr}"
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
